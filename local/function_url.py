"""An HTTP server that plays a Lambda function URL in front of the token proxy function.

``FRONTEND=FunctionUrl make run`` serves the proxy this way, as ``Frontend=FunctionUrl``
deploys it. A function URL routes nothing: every method and every path reaches the function,
which answers 404 and 405 itself. Each request becomes the event Lambda documents for function
URLs (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html, "Request payload
format"): API Gateway's payload format 2.0 (built by :func:`local.http_api.build_event`, so
headers, cookies, query parameters and the body are carried alike) with ``routeKey`` and
``requestContext.routeKey``/``stage`` set to the ``$default`` placeholder, the URL's id as
``apiId`` and ``domainPrefix``, ``<url-id>.lambda-url.<region>.on.aws`` as ``domainName``,
``requestContext.authentication`` and ``authorizer`` ``null`` (auth type ``NONE``),
``pathParameters`` and ``stageVariables`` ``null``, and a UUID request id. The body is
base64-encoded unless its content type is text: AWS's page says only "if the content type of
the request is binary"; the local stack uses HTTP API's list of text types, so a form post
arrives base64-encoded, as users of deployed function URLs report. ``accountId`` is
``anonymous``, as NONE-auth function URL events carry it (AWS's example shows an IAM caller).

The function's answer is mapped as for HTTP API (:func:`local.http_api.response_from_result`:
the same payload 2.0 response format). A function error is a ``502`` with the plain text
``Internal Server Error``, as a function URL answers it (AWS documents no body for it); a body
over Lambda's 6 MB invocation payload quota is a ``413``. Requests HTTP/1.1 does not allow are
refused by the same strict front end as the HTTP API's (:mod:`local.http_front_end`), minus
HTTP API's 10240-byte head quota, which function URLs do not document.

Neither requests nor answers are logged beyond method, path, status and duration.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from local.http_api import (
    ApiIdentity,
    Function,
    FunctionFrontEnd,
    RunningAdapter,
    build_event,
)
from local.http_front_end import FrontEnd
from local.wsgi_serving import make_wsgi_server
from local.wsgi_serving import serve_in_thread as serve_server_in_thread

logger = logging.getLogger("local.function_url")

#: The route key and stage placeholders of every function URL event.
DEFAULT_ROUTE = "$default"
#: What the account id of a request to a NONE-auth function URL reads.
ANONYMOUS = "anonymous"
#: Lambda's quota for a synchronous invocation's request payload.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
FRONT_END = FrontEnd(logger=logger, max_body_bytes=MAX_PAYLOAD_BYTES)


@dataclass(frozen=True, slots=True)
class FunctionUrlIdentity:
    """A function URL's id and Region (``https://<url_id>.lambda-url.<region>.on.aws``)."""

    url_id: str
    region: str

    @classmethod
    def for_function(cls, function_name: str, region: str) -> FunctionUrlIdentity:
        """A stable id for a function (32 lowercase letters and digits, as Lambda's are)."""
        digest = hashlib.sha256(f"{region}/{function_name}".encode()).hexdigest()
        return cls(digest[:32], region)

    @property
    def domain_name(self) -> str:
        return f"{self.url_id}.lambda-url.{self.region}.on.aws"


def build_function_url_event(
    request: Request,
    body: bytes,
    *,
    url: FunctionUrlIdentity,
    request_id: str,
    now: float,
) -> dict[str, Any]:
    """The function URL event for ``request``."""
    identity = ApiIdentity(api_id=url.url_id, account_id=ANONYMOUS, domain_name=url.domain_name)
    event = build_event(
        request, body, route_key=DEFAULT_ROUTE, identity=identity, request_id=request_id, now=now
    )
    context = event["requestContext"]
    context["authentication"] = None
    context["authorizer"] = None
    event["pathParameters"] = None
    event["stageVariables"] = None
    return event


class FunctionUrlAdapter(FunctionFrontEnd):
    """The WSGI application: every request becomes an event; the result becomes the answer."""

    request_id_header = "x-amzn-RequestId"
    max_payload_bytes = MAX_PAYLOAD_BYTES

    def __init__(
        self,
        function: Function,
        *,
        url: FunctionUrlIdentity,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(function, log=logger, clock=clock)
        self._url = url

    @property
    def url(self) -> FunctionUrlIdentity:
        return self._url

    def _new_request_id(self) -> str:
        return str(uuid.uuid4())

    def _handle(self, request: Request, request_id: str) -> Response:
        return self._invoke(
            request,
            request_id,
            lambda body, now: build_function_url_event(
                request, body, url=self._url, request_id=request_id, now=now
            ),
        )

    def _too_large(self) -> Response:
        return _text(413, "Request Entity Too Large")

    def _function_error(self) -> Response:
        return _text(502, "Internal Server Error")


def _text(status: int, text: str) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


def serve_in_thread(
    app: FunctionUrlAdapter, host: str = "127.0.0.1", port: int = 0
) -> RunningAdapter:
    """Serve ``app`` on ``host:port`` (0 picks a free port) from a daemon thread."""
    server = make_wsgi_server(app, host, port, front_end=FRONT_END)
    served = serve_server_in_thread(server, thread_name="function-url-adapter")
    return RunningAdapter(served.url, served.port, app, served.stop)
