"""A local OAuth2 issuer standing in for a Cognito user pool's token endpoint.

A development tool: an RFC 6749 client_credentials server (werkzeug for HTTP, joserfc for
RS256 JWTs signed with a key generated at start) that answers as Cognito does, behind the
web ACL associated with the local user pool (read from the local AWS endpoint with the rule
groups and pattern sets it references, and evaluated by :mod:`local.waf_web_acl`); the requests
its rules match are kept as WAF's sampled requests (:mod:`local.waf_sampled_requests`). Requests
HTTP/1.1 does not allow (a wrapped header line, a truncated body, ...) are refused as a whole by
the domain's front end (:mod:`local.http_front_end`) as ``invalid_request``, with one log line.

Endpoints:
- ``POST /oauth2/token``: client_credentials, the client authenticated with HTTP Basic or
  ``client_id``/``client_secret`` parameters (body or query string, as Cognito takes them).
  Success ``{"access_token", "expires_in", "token_type": "Bearer"}``; errors
  ``{"error": ...}`` with status 400 as Cognito documents them (also ``invalid_client``:
  Cognito answers 400, not RFC 6749's 401, and sends no ``WWW-Authenticate``).
- ``POST /`` with ``X-Amz-Target: AWSCognitoIdentityProviderService.GetClientToken``: the user
  pools API's machine-to-machine operation, as the SDKs call it (AWS JSON 1.1,
  ``{"ClientId", "Secret", "Scopes"?}``), answering ``{"ClientAuthenticationResult":
  {"AccessToken", "ExpiresIn", "TokenType"}}`` or ``{"__type": "NotAuthorizedException" | ...}``
  with status 400. Cognito serves it on ``cognito-idp.<region>.amazonaws.com``, not on the
  pool's domain; here both share one port so the web ACL's GetClientToken rule can be tried
  over HTTP. WAF sees the operation also as ``x-amzn-cognito-operation-name``, the header
  Cognito adds for API requests (WAF logs show it:
  https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-waf.html). No other API
  operation is emulated (``UnknownOperationException``).
- ``GET /.well-known/jwks.json``: the public signing key.
- ``GET /.well-known/openid-configuration``: the OIDC discovery document, shaped as a user
  pool's (issuer, jwks_uri, token_endpoint, token_endpoint_auth_methods_supported, the
  response types, subject types, signing algorithms and scopes it lists, and the endpoints of
  the human flows). On Cognito (the "Identity provider and relying party endpoints" page,
  docs.aws.amazon.com/cognito/latest/developerguide/federation-endpoints.html) the document
  and the JWKS live under the issuer URL,
  ``https://cognito-idp.<region>.amazonaws.com/<pool id>`` (the tokens' ``iss``), while the
  endpoints it names (token, authorize, userInfo, revoke, logout) are on the pool's domain.
  Locally one origin plays both hosts: the issuer URL is ``http://127.0.0.1:<port>``, so the
  document is at ``{issuer}/.well-known/openid-configuration`` as on Cognito, and the domain's
  endpoints are on the same origin (only the token endpoint answers; see "Not emulated").
  Its ``token_endpoint`` is the pool's, as on Cognito: clients of the proxy set the proxy's
  token URL themselves, and resource servers use ``issuer`` and ``jwks_uri``.
- ``GET /stats``: ``{"issued": N}``, successful token responses since start.
- ``POST /admin/fail`` ``{"status": 503, "count": N, "body": {...}}``: the next N token requests
  (that pass the WAF) get that answer; ``POST /admin/delay`` ``{"seconds": S, "count": N}``:
  token requests wait S seconds first (N of them, or all when no count);
  ``POST /admin/reset``: no more injected faults. Only on a loopback-bound server and only
  from loopback peers. ``/stats`` and ``/admin/*`` are test hooks, not Cognito's, so the web
  ACL does not see them; every other request goes through it first.

Not emulated: the authorization_code and refresh_token grants (a client asking for them gets
``unauthorized_client``, as an M2M-only app client would), ID tokens, hosted UI pages,
pre-token-generation triggers (``aws_client_metadata`` is accepted and ignored), token
revocation, throttling quotas, and Cognito's HTTP headers.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from local.http_front_end import FrontEnd, Refusal
from local.moto_server import aws_client
from local.waf_sampled_requests import SampledRequests
from local.waf_web_acl import Request as WafRequest
from local.waf_web_acl import Verdict, WebAclEvaluator
from local.wsgi_serving import json_response, make_wsgi_server, wsgi_text
from local.wsgi_serving import serve_in_thread as serve_server_in_thread

logger = logging.getLogger("local.cognito_token_endpoint")

DEMO_CLIENTS_PATH = Path(__file__).resolve().parent / "clients.demo.json"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path
JWKS_PATH = "/.well-known/jwks.json"
API_PATH = "/"
API_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
API_CONTENT_TYPE = "application/x-amz-json-1.1"
#: The header Cognito adds to what WAF sees of a user pools API request.
OPERATION_NAME_HEADER = "x-amzn-cognito-operation-name"
DISCOVERY_PATH = "/.well-known/openid-configuration"
STATS_PATH = "/stats"
ADMIN_PREFIX = "/admin/"
#: Larger bodies are refused outright (WAF itself inspects only the first 16 KB).
MAX_BODY_BYTES = 64 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_JSON = "application/json;charset=UTF-8"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Grants Cognito serves at this endpoint to app clients set up for human sign-in.
_HUMAN_FLOWS = frozenset({"authorization_code", "refresh_token"})


# ---------------------------------------------------------------------- clients
@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """One app client with a secret, as a user pool would hold it."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    token_lifetime: int = 3600

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("a client needs a client_id and a client_secret")
        if self.token_lifetime < 1:
            raise ValueError(f"client {self.client_id}: token_lifetime must be >= 1 second")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClientRegistration:
        return cls(
            client_id=str(raw["client_id"]),
            client_secret=str(raw["client_secret"]),
            scopes=tuple(str(s) for s in raw.get("scopes") or ()),
            token_lifetime=int(raw.get("token_lifetime", 3600)),
        )


def load_clients(path: Path | str = DEMO_CLIENTS_PATH) -> list[ClientRegistration]:
    """Clients from a JSON file: a list of {client_id, client_secret, scopes, token_lifetime}."""
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of clients")
    clients = [ClientRegistration.from_dict(item) for item in raw]
    ids = [c.client_id for c in clients]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate client_id")
    return clients


# ---------------------------------------------------------------------- the web ACL
#: Returns the evaluator of the web ACL as it is now.
WebAclProvider = Callable[[], WebAclEvaluator]


class WebAclSource:
    """Reads a web ACL, the rule groups it references and the regex pattern sets they
    reference from the AWS endpoint, keeping them for ``max_age_seconds`` (0 reads them for
    every request).

    With ``resource_arn`` (the user pool's ARN) it reads whichever web ACL is associated with
    that resource (GetWebACLForResource), as WAF protects a user pool with the web ACL associated
    with it: none associated, none applies. With ``web_acl_name`` and ``web_acl_id`` it reads
    that web ACL whatever it protects.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        *,
        web_acl_name: str | None = None,
        web_acl_id: str | None = None,
        resource_arn: str | None = None,
        scope: str = "REGIONAL",
        max_age_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if resource_arn is None and (web_acl_name is None or web_acl_id is None):
            raise ValueError("name a web ACL (web_acl_name and web_acl_id) or a resource_arn")
        self._wafv2 = aws_client("wafv2", endpoint_url, region)
        self._name = web_acl_name
        self._id = web_acl_id
        self._resource_arn = resource_arn
        self._scope = scope
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, WebAclEvaluator] | None = None

    def __call__(self) -> WebAclEvaluator:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._max_age:
                return self._cached[1]
            evaluator = self._read()
            self._cached = (now, evaluator)
            return evaluator

    def _read(self) -> WebAclEvaluator:
        acl = self._web_acl()
        if acl is None:
            return WebAclEvaluator(NO_WEB_ACL, {})
        groups = {
            arn: self._wafv2.get_rule_group(ARN=arn)["RuleGroup"]
            for arn in _referenced(acl, "RuleGroupReferenceStatement")
        }
        pattern_sets = {
            arn
            for node in (acl, *groups.values())
            for arn in _referenced(node, "RegexPatternSetReferenceStatement")
        }
        regex_sets = {arn: self._regexes(arn) for arn in pattern_sets}
        return WebAclEvaluator(acl, regex_sets, rule_groups=groups)

    def _web_acl(self) -> dict[str, Any] | None:
        if self._resource_arn is not None:
            try:
                found = self._wafv2.get_web_acl_for_resource(ResourceArn=self._resource_arn)
            except self._wafv2.exceptions.WAFNonexistentItemException:
                return None
            acl = found.get("WebACL")
            return None if acl is None else dict(acl)
        response = self._wafv2.get_web_acl(Name=self._name, Scope=self._scope, Id=self._id)
        return dict(response["WebACL"])

    def _regexes(self, arn: str) -> list[str]:
        # arn:aws:wafv2:REGION:ACCOUNT:regional/regexpatternset/NAME/ID
        _, _, name, set_id = arn.split(":", 5)[5].split("/")
        response = self._wafv2.get_regex_pattern_set(Name=name, Scope=self._scope, Id=set_id)
        return [r["RegexString"] for r in response["RegexPatternSet"]["RegularExpressionList"]]


#: What protects a resource no web ACL is associated with: nothing.
NO_WEB_ACL: Mapping[str, Any] = {"Rules": [], "DefaultAction": {"Allow": {}}}


def _referenced(node: Any, statement: str) -> Iterator[str]:
    """The ARNs that statements of one kind reference anywhere in ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == statement:
                yield str(value.get("ARN") or value.get("Arn"))
            yield from _referenced(value, statement)
    elif isinstance(node, list):
        for item in node:
            yield from _referenced(item, statement)


# ---------------------------------------------------------------------- faults
@dataclass(slots=True)
class _Faults:
    fail_status: int = 0
    fail_body: bytes = b""
    fail_remaining: int = 0
    delay_seconds: float = 0.0
    delay_remaining: int | None = 0

    def take(self) -> tuple[float, tuple[int, bytes] | None]:
        """The delay and the failure (if any) the next token request gets."""
        delay = 0.0
        if self.delay_seconds > 0 and (self.delay_remaining is None or self.delay_remaining > 0):
            delay = self.delay_seconds
            if self.delay_remaining is not None:
                self.delay_remaining -= 1
        failure = None
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            failure = (self.fail_status, self.fail_body)
        return delay, failure


class _OAuthError(Exception):
    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


# ---------------------------------------------------------------------- the issuer
class LocalIssuer:
    """The WSGI application. One instance holds its clients, signing key and counters."""

    def __init__(
        self,
        clients: Iterable[ClientRegistration],
        *,
        web_acl: WebAclProvider | None,
        issuer_url: str | None = None,
        signing_key: RSAKey | None = None,
        clock: Callable[[], float] = time.time,
        admin_enabled: bool = True,
        sampled_requests: SampledRequests | None = None,
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self._web_acl = web_acl
        self._sampled_requests = sampled_requests
        self.issuer_url = issuer_url
        self._key = signing_key or _generate_signing_key()
        self._clock = clock
        self.admin_enabled = admin_enabled
        self._lock = threading.Lock()
        self._issued = 0
        self._faults = _Faults()

    @property
    def issued(self) -> int:
        with self._lock:
            return self._issued

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    def openid_configuration(self) -> dict[str, Any]:
        """The discovery document, with the fields (and values) a user pool's has."""
        issuer = self.issuer_url or "http://127.0.0.1"
        return {
            "authorization_endpoint": f"{issuer}/oauth2/authorize",
            "end_session_endpoint": f"{issuer}/logout",
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "response_types_supported": ["code", "token"],
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "scopes_supported": ["openid", "email", "phone", "profile"],
            "subject_types_supported": ["public"],
            "token_endpoint": issuer + TOKEN_PATH,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "userinfo_endpoint": f"{issuer}/oauth2/userInfo",
        }

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = _BoundedRequest(environ)
        try:
            response = self._dispatch(request)
        except RequestEntityTooLarge:
            response = _json_response({"error": "invalid_request"}, 413, _NO_STORE)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        request.get_data(cache=True)  # reads (and bounds) the body once, for WAF and the form
        if path == STATS_PATH:
            return _json_response({"issued": self.issued}, 200)
        if path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        blocked = self._waf_verdict(request)
        if blocked is not None:
            return blocked
        if path == TOKEN_PATH:
            if request.method != "POST":
                return _json_response({"error": "invalid_request"}, 405, {"Allow": "POST"})
            return self._token(request)
        if path == JWKS_PATH and request.method in ("GET", "HEAD"):
            return _json_response(self.jwks(), 200)
        if path == API_PATH and request.method == "POST" and "X-Amz-Target" in request.headers:
            return self._api(request)
        if path == DISCOVERY_PATH and request.method in ("GET", "HEAD"):
            return _json_response(self.openid_configuration(), 200)
        return _json_response({"error": "not_found"}, 404)

    def _waf_verdict(self, request: Request) -> Response | None:
        if self._web_acl is None:
            return None
        try:
            evaluator = self._web_acl()
            inspected = _waf_request(request)
            verdict: Verdict = evaluator.evaluate(inspected)
        except Exception:
            # Fail closed, as an unreachable WAF configuration is a broken stack, not a pass.
            logger.exception("web ACL evaluation failed", extra={"path": request.path})
            return _json_response({"error": "waf_unavailable"}, 503)
        if self._sampled_requests is not None and evaluator.web_acl_arn and verdict.matches:
            self._sampled_requests.record(
                evaluator.web_acl_arn,
                inspected,
                verdict,
                client_ip=request.remote_addr or "",
                http_version=str(request.environ.get("SERVER_PROTOCOL") or "HTTP/1.1"),
            )
        if not verdict.blocked:
            return None
        logger.info(
            "request blocked by the web ACL",
            extra={
                "rule": verdict.rule_name,
                "rule_group": verdict.rule_group,
                "path": request.path,
                "status": verdict.status,
            },
        )
        response = Response(verdict.body, status=verdict.status)
        if verdict.content_type:
            response.headers["Content-Type"] = verdict.content_type
        for name, value in verdict.headers:
            response.headers[name] = value
        return response

    # ------------------------------------------------------------------ token endpoint
    def _token(self, request: Request) -> Response:
        with self._lock:
            delay, failure = self._faults.take()
        if delay:
            time.sleep(delay)
        if failure is not None:
            status, body = failure
            return Response(body, status=status, headers={"Content-Type": _JSON, **_NO_STORE})
        try:
            body = request.get_data(cache=True)
            if request.mimetype != FORM_CONTENT_TYPE:
                raise _OAuthError("invalid_request")
            params = _single_valued([*_parse_form(request.query_string), *_parse_form(body)])
            answer = self._client_credentials(request, params)
        except _OAuthError as error:
            logger.info("token request refused", extra={"error": error.error})
            return _json_response({"error": error.error}, error.status, _NO_STORE)
        with self._lock:
            self._issued += 1
        return _json_response(answer, 200, _NO_STORE)

    def _client_credentials(self, request: Request, params: Mapping[str, str]) -> dict[str, Any]:
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _OAuthError("invalid_request")
        if grant_type != "client_credentials" and grant_type not in _HUMAN_FLOWS:
            raise _OAuthError("unsupported_grant_type")
        client = self._authenticate(request.headers.get("Authorization"), params)
        if grant_type != "client_credentials":
            raise _OAuthError("unauthorized_client")  # M2M clients have no human flows
        scopes = _granted_scopes(client, params.get("scope"))
        token = self._access_token(client, scopes, audience=params.get("resource"))
        return {"access_token": token, "expires_in": client.token_lifetime, "token_type": "Bearer"}

    def _access_token(
        self, client: ClientRegistration, scopes: Sequence[str], audience: str | None = None
    ) -> str:
        """An RS256 access token with Cognito's claims for the client and scopes."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": client.client_id,
            "token_use": "access",
            "scope": " ".join(scopes),
            "auth_time": now,
            "iss": self.issuer_url or "http://127.0.0.1",
            "exp": now + client.token_lifetime,
            "iat": now,
            "version": 2,
            "jti": str(uuid.uuid4()),
            "client_id": client.client_id,
        }
        if audience:
            claims["aud"] = audience
        token = jwt.encode({"alg": "RS256", "kid": self._key.kid}, claims, self._key)
        logger.info(
            "token issued",
            extra={"client_id": client.client_id, "scope": claims["scope"], "jti": claims["jti"]},
        )
        return token

    # ------------------------------------------------------------------ user pools API
    def _api(self, request: Request) -> Response:
        """``GetClientToken``, the API's client-credentials equivalent; errors as the API's."""
        if _api_operation(request.headers.get("X-Amz-Target")) != "GetClientToken":
            return _api_error("UnknownOperationException")
        try:
            payload = json.loads(request.get_data(cache=True) or b"{}")
            client_id, secret, scopes = _client_token_request(payload)
        except (ValueError, TypeError):
            return _api_error("InvalidParameterException")
        try:
            client = self._authenticate(None, {"client_id": client_id, "client_secret": secret})
            granted = _granted_scopes(client, " ".join(scopes))
        except _OAuthError as error:
            refused = "InvalidParameterException" if error.error == "invalid_scope" else None
            logger.info("GetClientToken refused", extra={"error": error.error})
            return _api_error(refused or "NotAuthorizedException")
        token = self._access_token(client, granted)
        with self._lock:
            self._issued += 1
        result = {"AccessToken": token, "ExpiresIn": client.token_lifetime, "TokenType": "Bearer"}
        return _json_response(
            {"ClientAuthenticationResult": result}, 200, {"Content-Type": API_CONTENT_TYPE}
        )

    def _authenticate(
        self, authorization: str | None, params: Mapping[str, str]
    ) -> ClientRegistration:
        if authorization is not None:
            client_id, secret = _basic_credentials(authorization)
            if "client_secret" in params:
                raise _OAuthError("invalid_request")  # two authentication methods
            if params.get("client_id", client_id) != client_id:
                raise _OAuthError("invalid_client")
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        client = self._clients.get(client_id)
        expected = client.client_secret if client is not None else "\0" * 64
        # Compare even for an unknown client, so the time taken does not tell ids apart.
        secret_ok = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
        if client is None or not secret or not secret_ok:
            raise _OAuthError("invalid_client")
        return client

    # ------------------------------------------------------------------ test hooks
    def _admin(self, request: Request) -> Response:
        if not self.admin_enabled or not _is_loopback(request.remote_addr):
            return _json_response({"error": "not_found"}, 404)
        if request.method != "POST":
            return _json_response({"error": "method_not_allowed"}, 405, {"Allow": "POST"})
        try:
            options = json.loads(request.get_data() or b"{}")
            if not isinstance(options, dict):
                raise ValueError("expected a JSON object")
            action = request.path.removeprefix(ADMIN_PREFIX)
            with self._lock:
                state = self._apply_admin(action, options)
        except (ValueError, TypeError, KeyError) as exc:
            return _json_response({"error": "invalid_request", "error_description": str(exc)}, 400)
        if state is None:
            return _json_response({"error": "not_found"}, 404)
        logger.info("fault injection changed", extra={"action": action})
        return _json_response(state, 200)

    def _apply_admin(self, action: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
        faults = self._faults
        if action == "fail":
            status = int(options.get("status", 503))
            if not 400 <= status <= 599:
                raise ValueError("status must be 4xx or 5xx")
            count = int(options.get("count", 1))
            if count < 0:
                raise ValueError("count must be >= 0")
            body = options.get("body", {"error": "temporarily_unavailable"})
            faults.fail_status, faults.fail_remaining = status, count
            faults.fail_body = json.dumps(body).encode("utf-8")
        elif action == "delay":
            seconds = float(options.get("seconds", 0))
            if not 0 <= seconds <= 60:
                raise ValueError("seconds must be between 0 and 60")
            raw_count = options.get("count")
            faults.delay_seconds = seconds
            faults.delay_remaining = None if raw_count is None else int(raw_count)
        elif action == "reset":
            self._faults = faults = _Faults()
        else:
            return None
        return {
            "fail": {"status": faults.fail_status, "remaining": faults.fail_remaining},
            "delay": {"seconds": faults.delay_seconds, "remaining": faults.delay_remaining},
        }


# ---------------------------------------------------------------------- helpers
class _BoundedRequest(Request):
    max_content_length = MAX_BODY_BYTES


def _generate_signing_key() -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, private=True)
    key.ensure_kid()
    return key


def _json_response(
    payload: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response(payload, status, headers, content_type=_JSON)


def _api_operation(target: str | None) -> str | None:
    """The user pools API operation an ``X-Amz-Target`` names (None for another service)."""
    if not target or not target.startswith(API_TARGET_PREFIX):
        return None
    return target.removeprefix(API_TARGET_PREFIX)


def _client_token_request(payload: Any) -> tuple[str, str, list[str]]:
    """GetClientToken's ClientId, Secret and Scopes (ValueError when malformed)."""
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    client_id, secret = payload.get("ClientId"), payload.get("Secret")
    scopes = payload.get("Scopes") or []
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise ValueError("ClientId and Secret are required strings")
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise ValueError("Scopes must be a list of strings")
    return client_id, secret, scopes


def _api_error(kind: str) -> Response:
    """An AWS JSON 1.1 error, as the user pools API answers (no detail about the caller)."""
    response = Response(json.dumps({"__type": kind, "message": kind}), status=400)
    response.headers["Content-Type"] = API_CONTENT_TYPE
    return response


def _waf_request(request: Request) -> WafRequest:
    environ = request.environ
    # The raw request target, as WAF sees it (werkzeug's request.path is already decoded).
    raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)
    if raw_uri.lower().startswith(("http://", "https://")):
        raw_uri = "/" + raw_uri.split("://", 1)[1].partition("/")[2]  # absolute-form target
    raw_path = raw_uri.split("?", 1)[0]
    headers = list(request.headers.items())
    operation = _api_operation(request.headers.get("X-Amz-Target"))
    if operation is not None:
        # Cognito names an API request's operation for WAF; a caller cannot choose it.
        headers = [(k, v) for k, v in headers if k.lower() != OPERATION_NAME_HEADER]
        headers.append((OPERATION_NAME_HEADER, operation))
    return WafRequest(
        method=request.method,
        path=wsgi_text(raw_path, "surrogateescape"),  # WAF sees the bytes as they came
        query_string=wsgi_text(str(environ.get("QUERY_STRING", "")), "surrogateescape"),
        headers=headers,
        body=request.get_data(cache=True),
    )


def _parse_form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _OAuthError("invalid_request") from exc


def _single_valued(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 3.2: a parameter must not be included more than once."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise _OAuthError("invalid_request")
        params[name] = value
    return params


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise _OAuthError("invalid_client")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _OAuthError("invalid_client") from exc
    client_id, separator, secret = decoded.partition(":")
    if not separator or not client_id:
        raise _OAuthError("invalid_client")
    return client_id, secret


def _granted_scopes(client: ClientRegistration, requested: str | None) -> list[str]:
    """No scope: all of the client's scopes. Any scope the client lacks: invalid_scope."""
    wanted = list(dict.fromkeys((requested or "").split()))
    if not wanted:
        return list(client.scopes)
    if any(scope not in client.scopes for scope in wanted):
        raise _OAuthError("invalid_scope")
    return wanted


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------- serving
class RunningIssuer(NamedTuple):
    """A served issuer: its base URL, the app (for counters) and the function that stops it."""

    url: str
    port: int
    issuer: LocalIssuer
    stop: Callable[[], None]

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH


def _refusal_body(refusal: Refusal) -> dict[str, str]:
    return {"error": "invalid_request", "error_description": refusal.problem}


#: The front end of the pool's domain: requests HTTP does not allow are refused as a whole,
#: in the token endpoint's error shape (see local.http_front_end).
FRONT_END = FrontEnd(
    logger=logger, body=_refusal_body, content_type=_JSON, max_body_bytes=MAX_BODY_BYTES
)


def make_issuer_server(
    issuer: LocalIssuer, host: str = "127.0.0.1", port: int = 0
) -> BaseWSGIServer:
    """A threaded HTTP server for the issuer (admin hooks only when bound to loopback)."""
    server = make_wsgi_server(issuer, host, port, front_end=FRONT_END)
    if not _is_loopback(host):
        issuer.admin_enabled = False
    if issuer.issuer_url is None:
        issuer.issuer_url = f"http://{host}:{server.server_port}"
    return server


def serve_in_thread(issuer: LocalIssuer, host: str = "127.0.0.1", port: int = 0) -> RunningIssuer:
    """Serve the issuer from a daemon thread; ``stop()`` shuts the server down."""
    server = make_issuer_server(issuer, host, port)
    served = serve_server_in_thread(server, thread_name="local-issuer")
    return RunningIssuer(served.url, served.port, issuer, served.stop)


def main(argv: list[str] | None = None) -> None:
    """``python -m local.cognito_token_endpoint``: the issuer alone, against an already
    bootstrapped endpoint."""
    parser = argparse.ArgumentParser(description="Local Cognito-compatible token endpoint")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--clients", default=str(DEMO_CLIENTS_PATH))
    parser.add_argument("--aws-endpoint-url", help="the AWS endpoint holding the web ACL")
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--web-acl-name")
    parser.add_argument("--web-acl-id")
    parser.add_argument("--user-pool-arn", help="evaluate the web ACL associated with this pool")
    args = parser.parse_args(argv)
    web_acl = None
    if args.aws_endpoint_url:
        web_acl = WebAclSource(
            args.aws_endpoint_url,
            args.region,
            web_acl_name=args.web_acl_name,
            web_acl_id=args.web_acl_id,
            resource_arn=args.user_pool_arn,
        )
    issuer = LocalIssuer(load_clients(args.clients), web_acl=web_acl)
    server = make_issuer_server(issuer, "127.0.0.1", args.port)
    print(f"issuer listening on http://127.0.0.1:{server.server_port}{TOKEN_PATH}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
