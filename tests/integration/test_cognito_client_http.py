"""CognitoTokenClient over real HTTP on loopback: keep-alive reuse and real connection failures."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from tests.fakes.origin_secret import FakeOriginSecret
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.errors import UpstreamUnavailable
from token_proxy.model import TokenRequest

ORIGIN_VALUE = "OriginValueLoopback1"
TOKEN = {"access_token": "eyJ.loop.back", "token_type": "Bearer", "expires_in": 3600}


class Seen:
    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.forms: list[list[tuple[str, str]]] = []
        self.origin_headers: list[str | None] = []


def make_handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length).decode("ascii")
            seen.client_ports.append(self.client_address[1])
            seen.forms.append(parse_qsl(body, keep_blank_values=True, strict_parsing=True))
            seen.origin_headers.append(self.headers.get("x-origin-verify"))
            payload = json.dumps(TOKEN).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@pytest.fixture
def issuer_server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/token", seen
    finally:
        server.shutdown()
        server.server_close()


def make_issuer(url: str, sleeps: list[float], max_attempts: int = 3) -> CognitoTokenClient:
    return CognitoTokenClient(
        token_url=url,
        origin=FakeOriginSecret(ORIGIN_VALUE),
        timeout_seconds=5.0,
        max_attempts=max_attempts,
        user_agent="cognito-token-proxy/test",
        sleep=sleeps.append,
        rand=lambda: 0.5,
    )


REQUEST = TokenRequest(
    client_id="loop-client",
    client_secret="a+b=c%d&e",
    scopes=("api/read",),
    extras=(("resource", "https://r.example.test/?x=1&y=2+3"),),
)


def test_two_fetches_share_one_keep_alive_connection(issuer_server: tuple[str, Seen]) -> None:
    # GIVEN an issuer and a local token endpoint that keeps connections alive
    url, seen = issuer_server
    sleeps: list[float] = []
    issuer = make_issuer(url, sleeps)

    # WHEN the issuer fetches twice
    first = issuer.fetch(REQUEST)
    second = issuer.fetch(REQUEST)

    # THEN both answers are the token, sent over the same TCP connection
    assert first.status == second.status == 200
    assert first.json() == second.json() == TOKEN
    assert len(seen.client_ports) == 2
    assert seen.client_ports[0] == seen.client_ports[1]
    # AND the form crossed the wire intact, with the origin header
    assert (
        seen.forms
        == [
            [
                ("grant_type", "client_credentials"),
                ("client_id", "loop-client"),
                ("client_secret", "a+b=c%d&e"),
                ("scope", "api/read"),
                ("resource", "https://r.example.test/?x=1&y=2+3"),
            ]
        ]
        * 2
    )
    assert seen.origin_headers == [ORIGIN_VALUE, ORIGIN_VALUE]
    assert sleeps == []
    issuer.close()


def test_refused_connection_is_retried_then_reported() -> None:
    # GIVEN a loopback port nobody listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    issuer = make_issuer(f"http://127.0.0.1:{port}/oauth2/token", sleeps, max_attempts=2)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        issuer.fetch(REQUEST)

    # THEN it tried twice, slept once, and names the exception class
    assert (
        str(caught.value)
        == "Cognito gave no usable answer after 2 attempts (last: ConnectionError)"
    )
    assert sleeps == [0.05]
