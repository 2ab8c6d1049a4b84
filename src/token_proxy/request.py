"""Parse and validate a token request from an HTTP API event (payload format 2.0).

The result is a :class:`~token_proxy.model.TokenRequest`; anything the token endpoint contract
(DESIGN.md section 2) refuses raises an :class:`~token_proxy.errors.OAuthError`. Nothing else
escapes, whatever the event holds. Error descriptions name parameters, never their values, so
they can never carry a credential.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

from token_proxy.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedGrantType,
)
from token_proxy.model import AuthMethod, TokenRequest

ENDPOINT_PATH = "/oauth2/token"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"

CREDENTIAL_PARAMETERS = frozenset({"client_id", "client_secret"})
#: Parameters forwarded to Cognito besides grant_type, scope and the credentials.
EXTRA_PARAMETER_LIMITS = {"aws_client_metadata": 4096, "resource": 2048}
ALLOWED_PARAMETERS = frozenset(
    {"grant_type", "scope", *CREDENTIAL_PARAMETERS, *EXTRA_PARAMETER_LIMITS}
)
_SHARED_PARAMETERS = tuple(sorted(ALLOWED_PARAMETERS - CREDENTIAL_PARAMETERS))
MAX_CREDENTIAL_CHARS = 512
MAX_ECHOED_NAME_CHARS = 32

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_UNSAFE_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")

_NO_CREDENTIALS = (
    "client authentication is required: HTTP Basic, or client_id and client_secret "
    "in the body or in the query string"
)
_TWO_METHODS = (
    "use exactly one client authentication method: HTTP Basic, or client_id and "
    "client_secret in the body, or both in the query string"
)


def parse_token_request(event: Mapping[str, Any], *, max_body_bytes: int = 8192) -> TokenRequest:
    """A validated client_credentials request, or an :class:`OAuthError` saying what is wrong."""
    if not isinstance(event, Mapping):
        raise InvalidRequest("the request is not an HTTP API event")
    _check_route(event)
    headers = _headers(event)
    body = _body_text(event, headers, max_body_bytes)
    body_all = _parse_form(body, where="body")
    query_all = _parse_form(_query_text(event, max_body_bytes), where="query string")
    # RFC 6749 section 3.1: a parameter sent without a value is treated as omitted.
    body_params, query_params = _non_empty(body_all), _non_empty(query_all)

    params = _merge(body_params, query_params)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("grant_type is required")
    if grant_type != GRANT_TYPE:  # before the parameter check: other grants have other ones
        raise UnsupportedGrantType("this endpoint supports grant_type=client_credentials only")
    _reject_unknown(body_all, where="body")
    _reject_unknown(query_all, where="query string")

    client_id, client_secret, method, basic_header = _authenticate(
        headers, body_params, query_params
    )
    return TokenRequest(
        client_id=client_id,
        client_secret=client_secret,
        scopes=_scopes(params.get("scope")),
        extras=_extras(params),
        auth_method=method,
        basic_authorization=basic_header,
    )


# ------------------------------------------------------------------ route, headers, body


def _check_route(event: Mapping[str, Any]) -> None:
    http = _mapping(_mapping(event.get("requestContext")).get("http"))
    path = event.get("rawPath", http.get("path"))
    if not isinstance(path, str) or not path.endswith(ENDPOINT_PATH):
        raise NotFound()
    if http.get("method") != "POST":
        raise MethodNotAllowed()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    """Header names lower-cased (as HTTP API sends them); repeated names joined by commas."""
    raw = event.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("the request headers are malformed")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest("the request headers are malformed")
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def _body_text(event: Mapping[str, Any], headers: Mapping[str, str], max_bytes: int) -> str:
    body = event.get("body")
    if body is None:
        return ""
    if not isinstance(body, str):
        raise InvalidRequest("the request body is malformed")
    too_large = PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    if event.get("isBase64Encoded") is True:
        if len(body) > 4 * ((max_bytes + 2) // 3):  # checked before decoding anything
            raise too_large
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise InvalidRequest("the request body is not valid base64") from exc
    else:
        if len(body) > max_bytes:  # UTF-8 never has fewer bytes than characters
            raise too_large
        try:
            raw = body.encode("utf-8")
        except UnicodeError as exc:
            raise InvalidRequest("the request body is not valid UTF-8") from exc
    if len(raw) > max_bytes:
        raise too_large
    if not raw:
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeError as exc:
        raise InvalidRequest("the request body is not valid UTF-8") from exc
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"Content-Type must be {FORM_MEDIA_TYPE}")
    return text


def _query_text(event: Mapping[str, Any], max_chars: int) -> str:
    raw = event.get("rawQueryString")
    if raw is None:  # hand-written events may carry only the decoded parameters
        decoded = event.get("queryStringParameters")
        if decoded is None:
            return ""
        if not isinstance(decoded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
        ):
            raise InvalidRequest("the query string is malformed")
        try:
            raw = urlencode(list(decoded.items()))
        except UnicodeError as exc:
            raise InvalidRequest("the query string is malformed") from exc
    if not isinstance(raw, str):
        raise InvalidRequest("the query string is malformed")
    if len(raw) > max_chars:
        raise InvalidRequest(f"the query string is longer than {max_chars} characters")
    return raw


# ------------------------------------------------------------------ form parameters


def _form_decode(text: str) -> str | None:
    """``application/x-www-form-urlencoded`` decoding: ``+`` is a space, strict %XX and UTF-8."""
    if _BAD_PERCENT.search(text):
        return None
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeError:
        return None


def _describe_name(name: str) -> str:
    """A parameter name fit for an error description: safe characters only, truncated."""
    shown = _UNSAFE_NAME_CHAR.sub("?", name[:MAX_ECHOED_NAME_CHARS])
    return f'"{shown}..."' if len(name) > MAX_ECHOED_NAME_CHARS else f'"{shown}"'


def _parse_form(text: str, *, where: str) -> dict[str, str]:
    """The parameters of one location; each may appear once (RFC 6749 section 3.2).

    Empty values are kept here: a repeated empty parameter is still a repeated parameter.
    """
    params: dict[str, str] = {}
    for segment in text.split("&"):
        if not segment:
            continue
        raw_name, has_value, raw_value = segment.partition("=")
        name = _form_decode(raw_name)
        if name is None:
            raise InvalidRequest(f"a parameter name in the {where} is not valid percent-encoding")
        if not has_value and name not in ALLOWED_PARAMETERS:  # maybe a bare value: never echo it
            raise InvalidRequest(f"the {where} must consist of name=value parameters")
        shown = name if name in ALLOWED_PARAMETERS else _describe_name(name)
        if name in params:
            raise InvalidRequest(f"parameter {shown} is repeated in the {where}")
        value = _form_decode(raw_value)
        if value is None:
            raise InvalidRequest(f"parameter {shown} in the {where} is not valid percent-encoding")
        params[name] = value
    return params


def _reject_unknown(params: Mapping[str, str], *, where: str) -> None:
    """Any parameter the proxy would not forward is refused, never silently dropped."""
    for name in params:
        if name not in ALLOWED_PARAMETERS:
            raise InvalidRequest(f"unsupported parameter {_describe_name(name)} in the {where}")


def _non_empty(params: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in params.items() if value}


def _merge(body: Mapping[str, str], query: Mapping[str, str]) -> dict[str, str]:
    """Body and query parameters other than the credentials, which must agree where both exist."""
    merged: dict[str, str] = {}
    for name in _SHARED_PARAMETERS:
        in_body, in_query = body.get(name), query.get(name)
        if in_body is not None and in_query is not None and in_body != in_query:
            raise InvalidRequest(
                f"parameter {name} has different values in the body and the query string"
            )
        value = in_body if in_body is not None else in_query
        if value is not None:
            merged[name] = value
    return merged


# ------------------------------------------------------------------ client authentication


def _authenticate(
    headers: Mapping[str, str], body: Mapping[str, str], query: Mapping[str, str]
) -> tuple[str, str, AuthMethod, str | None]:
    """Exactly one client authentication method (RFC 6749 section 2.3.1): the credentials, the
    method, and for Basic the header value to forward upstream."""
    authorization = headers.get("authorization")
    basic = _parse_basic(authorization) if authorization is not None else None
    methods: list[AuthMethod] = []
    if basic is not None:
        methods.append("basic")
    if "client_secret" in body:
        methods.append("body")
    if "client_secret" in query:
        methods.append("query")
    if len(methods) > 1:
        raise InvalidRequest(_TWO_METHODS)
    client_ids = {p["client_id"] for p in (body, query) if "client_id" in p}
    if not methods:
        if len(client_ids) > 1:
            raise InvalidRequest("client_id has different values in the body and the query string")
        if client_ids:
            raise InvalidClient("client_secret is missing")
        raise InvalidClient(_NO_CREDENTIALS, basic_attempted=True)

    method = methods[0]
    basic_header = None
    if basic is not None:
        client_id, client_secret, basic_header = basic
    else:
        params, where = (body, "body") if method == "body" else (query, "query string")
        if "client_id" not in params:
            raise InvalidClient(f"client_id is missing from the {where}, next to client_secret")
        client_id, client_secret = params["client_id"], params["client_secret"]
        _check_credential(client_id, "client_id")
        _check_credential(client_secret, "client_secret")
    # A client_id elsewhere without a secret is tolerated when it names the same client.
    if client_ids - {client_id}:
        raise InvalidRequest("client_id does not match the authenticated client")
    return client_id, client_secret, method, basic_header


def _parse_basic(value: str) -> tuple[str, str, str]:
    """(client_id, client_secret, header to forward) from ``Authorization: Basic
    base64(id:secret)``.

    Per RFC 6749 section 2.3.1 both were form-urlencoded before base64 encoding. The header
    forwarded upstream carries the client's own credentials without the whitespace around them
    (an HTTP client refuses a header value with leading whitespace).
    """
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(
            "the Authorization header must use the Basic scheme", basic_attempted=True
        )
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError as exc:  # binascii.Error, non-ASCII input and UnicodeDecodeError
        raise InvalidClient(
            "the Basic credentials are not valid base64 of UTF-8 text", basic_attempted=True
        ) from exc
    raw_id, has_colon, raw_secret = decoded.partition(":")
    if not has_colon:
        raise InvalidClient(
            "the Basic credentials must be client_id:client_secret", basic_attempted=True
        )
    client_id, client_secret = _form_decode(raw_id), _form_decode(raw_secret)
    if client_id is None or client_secret is None:
        raise InvalidClient(
            "the Basic credentials are not valid form-urlencoding", basic_attempted=True
        )
    _check_credential(client_id, "client_id", basic_attempted=True)
    _check_credential(client_secret, "client_secret", basic_attempted=True)
    return client_id, client_secret, f"Basic {credentials}"


def _check_credential(value: str, what: str, *, basic_attempted: bool = False) -> None:
    problem = None
    if not value:
        problem = f"{what} is missing"
    elif len(value) > MAX_CREDENTIAL_CHARS:
        problem = f"{what} is longer than {MAX_CREDENTIAL_CHARS} characters"
    elif _CONTROL.search(value):
        problem = f"{what} contains control characters"
    if problem is not None:
        raise InvalidClient(problem, basic_attempted=basic_attempted)


# ------------------------------------------------------------------ scope and extras


def _scopes(value: str | None) -> tuple[str, ...]:
    """The scope set: split on runs of spaces, deduplicated, sorted (RFC 6749 section 3.3)."""
    if value is None:
        return ()
    tokens = {token for token in value.split(" ") if token}
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope(
            'scope must be space-separated tokens of printable ASCII characters except " and \\'
        )
    return tuple(sorted(tokens))


def _extras(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    extras: list[tuple[str, str]] = []
    for name, limit in sorted(EXTRA_PARAMETER_LIMITS.items()):
        value = params.get(name)
        if value is None:
            continue
        if len(value) > limit:
            raise InvalidRequest(f"parameter {name} is longer than {limit} characters")
        if _CONTROL.search(value):
            raise InvalidRequest(f"parameter {name} contains control characters")
        extras.append((name, value))
    return tuple(extras)
