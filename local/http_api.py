"""An HTTP server that plays API Gateway's HTTP API in front of the token proxy function.

Each request becomes a payload format 2.0 event, built as API Gateway builds it: lower-cased
header names with repeated headers joined by commas, ``cookies`` taken out of the headers,
``queryStringParameters`` with repeated names joined by commas, ``rawPath``/``rawQueryString``
as sent, a ``requestContext`` with the route key, stage ``$default``, request id and times,
and the body base64-encoded (``isBase64Encoded: true``) unless its content type is text
(``text/*``, ``application/json``, ``application/xml``, ``application/javascript``) - so a
form post arrives base64-encoded, as it does from a deployed HTTP API.

Only the routes of the template's HTTP API reach the function (``POST /oauth2/token``, from the
API's OpenAPI body);
any other method or path gets HTTP API's ``404 {"message":"Not Found"}``. The function's answer
is mapped back as HTTP API maps a 2.0 response: ``statusCode``, ``headers``, ``cookies`` (each a
``Set-Cookie``), ``body`` (decoded when ``isBase64Encoded``); a JSON answer without
``statusCode`` is sent as a 200 ``application/json`` body; a function error is
``500 {"message":"Internal Server Error"}``.

In front of all this sits HTTP API's front end (:mod:`local.http_front_end`): a request whose
head or body HTTP/1.1 does not allow (a header line that is not ``Name: value``, a body shorter
than its ``Content-Length``, a request line and header values over HTTP API's 10240-byte quota,
...) is refused as a whole with a 4xx ``{"message": ...}`` naming the problem, and never reaches
the function.

Neither requests nor answers are logged beyond method, path, status and duration (a refusal by
the front end: its status and the kind of problem).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request, Response

from local.cloudformation_template import default_template
from local.http_front_end import FrontEnd
from local.lambda_runtime import Invocation
from local.wsgi_serving import json_response, make_wsgi_server, wsgi_text
from local.wsgi_serving import serve_in_thread as serve_server_in_thread

logger = logging.getLogger("local.http_api")

DEFAULT_ROUTES = (("POST", "/oauth2/token"),)
TEXT_MEDIA_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
#: HTTP API's own limits (API Gateway's "Quotas for configuring and running an HTTP API"):
#: payload size, and the total combined size of the request line and header values.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_HEAD_BYTES = 10240
#: HTTP API's front end: refusals as ``{"message": ...}``, logged by this module.
FRONT_END = FrontEnd(logger=logger, max_head_bytes=MAX_HEAD_BYTES, max_body_bytes=MAX_PAYLOAD_BYTES)
_NOT_FOUND = {"message": "Not Found"}
_INTERNAL_ERROR = {"message": "Internal Server Error"}
_TOO_LARGE = {"message": "Request Entity Too Large"}
#: Hop-by-hop headers a proxy does not pass on.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class Function(Protocol):
    """Something that invokes the function with an event (see :mod:`local.lambda_runtime`)."""

    def invoke(self, event: Any) -> Invocation: ...


@dataclass(frozen=True, slots=True)
class ApiIdentity:
    """What the HTTP API tells the function about itself."""

    api_id: str = "local"
    account_id: str = "123456789012"
    domain_name: str | None = None  # defaults to the Host header


def template_routes(
    function_logical_id: str = "TokenProxyFunction", template: Mapping[str, Any] | None = None
) -> tuple[tuple[str, str], ...]:
    """The ``(METHOD, path)`` routes that template.yaml's HTTP APIs send to a function: the
    operations of each ``AWS::ApiGatewayV2::Api`` OpenAPI body whose integration URI names the
    function's ARN."""
    tpl = template or default_template()
    target = "${" + function_logical_id + ".Arn}"
    routes: list[tuple[str, str]] = []
    for spec in (tpl.get("Resources") or {}).values():
        if spec.get("Type") != "AWS::ApiGatewayV2::Api":
            continue
        paths = ((spec.get("Properties") or {}).get("Body") or {}).get("paths") or {}
        for path, operations in paths.items():
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration") or {}
                if target in json.dumps(integration.get("uri")):
                    routes.append((str(method).upper(), str(path)))
    return tuple(routes) or DEFAULT_ROUTES


def is_text_media_type(content_type: str | None) -> bool:
    """Whether HTTP API passes a body of this type as text (otherwise it is base64-encoded)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES


def _request_id() -> str:
    # API Gateway's request ids look like "JKJaXmPLvHcESHA=" (base64 of 10 bytes).
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")


def _trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def _clf_time(now: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


def build_event(
    request: Request,
    body: bytes,
    *,
    route_key: str,
    identity: ApiIdentity,
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The HTTP API payload format 2.0 event for ``request``."""
    moment = time.time() if now is None else now
    environ = request.environ
    raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)
    raw_path = wsgi_text(raw_uri.split("?", 1)[0]) or "/"
    raw_query = wsgi_text(str(environ.get("QUERY_STRING", "")))
    source_ip = str(request.remote_addr or "127.0.0.1")
    domain = identity.domain_name or request.host or "localhost"
    request_id = request_id or _request_id()

    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers.items():
        lower = name.lower()
        text = wsgi_text(value)
        if lower == "cookie":
            # Several Cookie headers arrive joined by commas (RFC 6265 cookie values hold none).
            parts = text.replace(",", ";").split(";")
            cookies.extend(part.strip() for part in parts if part.strip())
            continue
        headers[lower] = f"{headers[lower]},{text}" if lower in headers else text
    # What API Gateway adds in front of the function.
    headers.setdefault("x-forwarded-for", source_ip)
    headers.setdefault("x-forwarded-port", str(environ.get("SERVER_PORT", "")))
    headers.setdefault("x-forwarded-proto", str(environ.get("wsgi.url_scheme", "http")))
    headers.setdefault("x-amzn-trace-id", _trace_id(moment))

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": identity.account_id,
        "apiId": identity.api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _clf_time(moment),
        "timeEpoch": int(moment * 1000),
    }
    if body:
        if is_text_media_type(request.headers.get("Content-Type")):
            event["body"] = body.decode("utf-8", "replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def response_from_result(result: Any) -> Response:
    """The HTTP response HTTP API makes of a 2.0 function result."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # HTTP API infers a 200 JSON response from a result without a status code.
        return json_response(result, 200)
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return json_response(_INTERNAL_ERROR, 500)
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(str(body), validate=True)
        except ValueError:
            return json_response(_INTERNAL_ERROR, 500)
    else:
        payload = str(body).encode("utf-8")
    response = Response(payload, status=status)
    response.headers.pop("Content-Type", None)  # only what the function sets
    for name, value in (result.get("headers") or {}).items():
        if str(name).lower() not in _HOP_BY_HOP:
            response.headers[str(name)] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() not in _HOP_BY_HOP:
            for value in values or ():
                response.headers.add(str(name), str(value))
    for cookie in result.get("cookies") or ():
        response.headers.add("Set-Cookie", str(cookie))
    return response


class FunctionFrontEnd:
    """What the stand-ins in front of the function share (this HTTP API, and a function URL:
    :mod:`local.function_url`): each request gets an id, answered in :attr:`request_id_header`;
    is counted and logged in one line (method, path, status, duration; never a header or the
    body); and, once the subclass's :meth:`_handle` lets it through, is read within
    :attr:`max_payload_bytes`, made an event, given to the function, and the result mapped as
    a payload 2.0 response."""

    #: The response header naming the request id (each stand-in's own).
    request_id_header: str
    max_payload_bytes = MAX_PAYLOAD_BYTES

    def __init__(
        self, function: Function, *, log: logging.Logger, clock: Callable[[], float] = time.time
    ) -> None:
        self._function = function
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        request_id = self._new_request_id()
        response = self._handle(request, request_id)
        response.headers[self.request_id_header] = request_id
        with self._lock:
            self.requests += 1
        self._log.info(
            "%s %s %s %.0fms",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def _new_request_id(self) -> str:
        raise NotImplementedError

    def _handle(self, request: Request, request_id: str) -> Response:
        raise NotImplementedError

    def _too_large(self) -> Response:
        raise NotImplementedError

    def _function_error(self) -> Response:
        raise NotImplementedError

    def _invoke(
        self, request: Request, request_id: str, event_for: Callable[[bytes, float], Any]
    ) -> Response:
        """Read the body (within the bound), build its event with ``event_for(body, now)``,
        invoke the function and map its result."""
        length = request.content_length
        if length is not None and length > self.max_payload_bytes:
            return self._too_large()
        body = request.get_data(cache=False)
        if len(body) > self.max_payload_bytes:
            return self._too_large()
        invocation = self._function.invoke(event_for(body, self._clock()))
        if not invocation.ok:
            self._log.warning(
                "function error: %s", invocation.error_type, extra={"request_id": request_id}
            )
            return self._function_error()
        return response_from_result(invocation.payload)


class HttpApiAdapter(FunctionFrontEnd):
    """The WSGI application: routes, builds the event, invokes the function, maps the answer."""

    request_id_header = "apigw-requestid"

    def __init__(
        self,
        function: Function,
        *,
        routes: Iterable[tuple[str, str]] = DEFAULT_ROUTES,
        identity: ApiIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(function, log=logger, clock=clock)
        self._routes = {(m.upper(), path): f"{m.upper()} {path}" for m, path in routes}
        self._identity = identity or ApiIdentity()

    def _new_request_id(self) -> str:
        return _request_id()

    def _handle(self, request: Request, request_id: str) -> Response:
        raw_uri = str(request.environ.get("RAW_URI") or request.path)
        route_key = self._routes.get((request.method, raw_uri.split("?", 1)[0]))
        if route_key is None:
            return json_response(_NOT_FOUND, 404)
        return self._invoke(
            request,
            request_id,
            lambda body, now: build_event(
                request,
                body,
                route_key=route_key,
                identity=self._identity,
                request_id=request_id,
                now=now,
            ),
        )

    def _too_large(self) -> Response:
        return json_response(_TOO_LARGE, 413)

    def _function_error(self) -> Response:
        return json_response(_INTERNAL_ERROR, 500)


class FrontEndApp(Protocol):
    """A served stand-in for what sits in front of the function (this HTTP API, or a function
    URL: :mod:`local.function_url`): a WSGI application that counts its requests."""

    requests: int

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]: ...


class RunningAdapter(NamedTuple):
    """A served adapter: its base URL, port, the app and the function that stops it."""

    url: str
    port: int
    app: FrontEndApp
    stop: Callable[[], None]


def serve_in_thread(app: HttpApiAdapter, host: str = "127.0.0.1", port: int = 0) -> RunningAdapter:
    """Serve ``app`` on ``host:port`` (0 picks a free port) from a daemon thread."""
    server = make_wsgi_server(app, host, port, front_end=FRONT_END)
    served = serve_server_in_thread(server, thread_name="http-api-adapter")
    return RunningAdapter(served.url, served.port, app, served.stop)
