"""moto's server on loopback: the AWS APIs (DynamoDB, KMS, Secrets Manager, WAFv2) of the
local stack, in a thread of the calling process."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import boto3
from moto.server import ThreadedMotoServer

from local.moto_fidelity import make_moto_behave_like_aws

LOOPBACK = "127.0.0.1"
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
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return RunningMotoServer(f"http://{bound_host}:{bound_port}", bound_port, server.stop)


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
