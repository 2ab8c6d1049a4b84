"""An HTTP/1.1 endpoint on loopback for the tests of the proxy's Cognito client: a real server
(``http.server`` in a daemon thread, an ephemeral port on 127.0.0.1, keep-alive) that records
every request it reads and answers each with what its ``answer`` callable says, including the
ways a connection fails: an answer that comes late, a connection closed without an answer, and
one closed halfway through the body."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Received:
    """One request as the endpoint read it (headers looked up case-insensitively)."""

    method: str
    path: str
    headers: Message
    body: bytes
    client_port: int

    @property
    def text(self) -> str:
        return self.body.decode("ascii")

    @property
    def form(self) -> list[tuple[str, str]]:
        """The form fields in the order sent (the body must be a well-formed form)."""
        return parse_qsl(self.text, keep_blank_values=True, strict_parsing=bool(self.body))


@dataclass(frozen=True)
class Reply:
    """What the endpoint answers: ``delay`` seconds before the status line; with ``cut`` the
    headers announce the whole body and half of it is sent before the connection closes."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut: bool = False


#: The answer that closes the connection without a byte of answer.
DROP = Reply(status=0)

Answer = Callable[[Received], Reply]


class LoopbackEndpoint:
    """A keep-alive HTTP server on 127.0.0.1; every POST is recorded in :attr:`calls` before it
    is answered by ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/oauth2/token") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, request: Received) -> None:
        with self._lock:
            self.calls.append(request)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def loopback_endpoint(answer: Answer) -> Iterator[LoopbackEndpoint]:
    endpoint = LoopbackEndpoint(answer)
    try:
        yield endpoint
    finally:
        endpoint.close()


def _handler(endpoint: LoopbackEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = Received(
                method=self.command,
                path=self.path,
                headers=self.headers,
                body=self.rfile.read(length),
                client_port=self.client_address[1],
            )
            endpoint.record(received)
            reply = endpoint.answer(received)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.status == DROP.status:
                self.close_connection = True
                return
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting: nothing to answer

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.cut:
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.close_connection = True
                return
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler
