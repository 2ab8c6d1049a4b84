"""Serving the local stack's two HTTP stand-ins (the HTTP API and Cognito's token endpoint).

A threaded werkzeug server on loopback, run from a daemon thread with a ``stop()`` that shuts
it down; its request handler is the stand-in's HTTP front end (:mod:`local.http_front_end`:
requests HTTP does not allow are refused as a whole, in JSON, with one log line, and request
lines stay off stderr); and the two small things both WSGI applications need: the request's
bytes back from WSGI's latin-1 text, and a JSON response.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from local.http_front_end import FrontEnd, handler_class

logger = logging.getLogger("local.wsgi_serving")

JSON_CONTENT_TYPE = "application/json"


def wsgi_text(value: str, errors: str = "replace") -> str:
    """The UTF-8 text of a WSGI string (WSGI carries the request's bytes as latin-1 text);
    ``errors="surrogateescape"`` keeps bytes that are not UTF-8 as they came."""
    return value.encode("latin-1").decode("utf-8", errors)


def json_response(
    payload: Any,
    status: int,
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str = JSON_CONTENT_TYPE,
) -> Response:
    """``payload`` as a JSON body with ``status``, ``content_type`` and ``headers``."""
    response = Response(json.dumps(payload), status=status)
    response.headers["Content-Type"] = content_type
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def make_wsgi_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, front_end: FrontEnd | None = None
) -> BaseWSGIServer:
    """A threaded HTTP server for ``app`` on ``host:port`` (0 picks a free port), behind
    ``front_end`` (by default one that answers ``{"message": ...}`` and logs here)."""
    handler = handler_class(front_end or FrontEnd(logger=logger))
    return make_server(host, port, app, threaded=True, request_handler=handler)


class RunningServer(NamedTuple):
    """A server serving from a daemon thread: its base URL, port and the function that stops it."""

    url: str
    port: int
    stop: Callable[[], None]


def serve_in_thread(server: BaseWSGIServer, *, thread_name: str) -> RunningServer:
    """Serve ``server`` from a daemon thread; ``stop()`` shuts it down and closes its socket."""
    thread = threading.Thread(target=server.serve_forever, name=thread_name, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    host = str(server.host)
    return RunningServer(f"http://{host}:{server.server_port}", server.server_port, stop)
