"""moto's server on loopback: the AWS APIs (DynamoDB, KMS, Secrets Manager, WAFv2) of the
local stack, in a thread of the calling process.

moto's WSGI application is served as moto's own threaded server serves it (its request
handler keeps underscored header names), behind the same HTTP front end as the other
stand-ins (:mod:`local.http_front_end`: malformed requests refused in JSON with one log line),
and a request moto itself fails on (one it cannot route, a body it cannot parse) is answered
as AWS's ``500 InternalFailure`` with one log line, its traceback at DEBUG only.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from local.http_front_end import FrontEnd, handler_class
from local.moto_fidelity import make_moto_behave_like_aws
from local.wsgi_serving import json_response, serve_in_thread

logger = logging.getLogger("local.moto_server")

LOOPBACK = "127.0.0.1"
#: moto's front end: AWS SDKs send JSON or XML bodies of a few KB; S3 is not used here.
FRONT_END = FrontEnd(logger=logger, max_body_bytes=64 * 1024 * 1024)
#: moto accepts any credentials; these keep a local client from ever picking up real ones.
FAKE_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class RunningMotoServer(NamedTuple):
    """A started server: its endpoint URL and the function that stops it."""

    endpoint_url: str
    port: int
    stop: Callable[[], None]


def start_moto_server(port: int = 0, host: str = LOOPBACK) -> RunningMotoServer:
    """Start moto's threaded server on ``host:port`` (0 picks a free port) and return its URL.

    Each server holds its own state only as long as the process lives; ``stop()`` shuts it
    down and joins its thread.
    """
    make_moto_behave_like_aws()
    app = FailuresAnswered(DomainDispatcherApplication(create_backend_app))
    handler = handler_class(FRONT_END, MotoRequestHandler)
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    served = serve_in_thread(server, thread_name="moto-server")
    return RunningMotoServer(served.url, served.port, served.stop)


class FailuresAnswered:
    """moto's application, with an exception it raises answered as AWS's InternalFailure."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = False

        def tracking_start_response(*args: Any) -> Any:
            nonlocal started
            started = True
            return start_response(*args)

        try:
            return list(self._app(environ, tracking_start_response))
        except Exception as exc:
            if started:  # too late to answer otherwise: werkzeug closes the connection
                raise
            method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            logger.warning("moto failed on %s %s: %s", method, path, type(exc).__name__)
            logger.debug("moto's traceback", exc_info=True)
            body = {"__type": "InternalFailure", "message": "moto could not handle the request"}
            return json_response(body, 500)(environ, start_response)


def aws_client(service: str, endpoint_url: str, region: str) -> Any:
    """A boto3 client for one service of the local AWS endpoint, with fake credentials."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        **FAKE_CREDENTIALS,
    )


def local_aws_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment variables that point an AWS SDK (a handler) at the local endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["aws_session_token"],
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m local.moto_server --port 5001``: moto on loopback until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    server = start_moto_server(args.port)
    print(f"moto listening on {server.endpoint_url} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
