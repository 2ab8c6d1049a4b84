"""Requests HTTP libraries refuse to send, written on raw loopback sockets: a request head with
a wrapped header, a body shorter than its Content-Length followed by a half-close."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any, NamedTuple

TIMEOUT = 10
#: A Cognito-length client id and secret (fake): GNU base64 wraps their Basic value.
LONG_ID = "4f8a9c2d1e7b6a5c3d2e1f0a9b"
LONG_SECRET = "1example0secret9that8is7as6long5as4cognito3makes2them1abcdefghijklmno"


def wrapped_basic(client_id: str = LONG_ID, secret: str = LONG_SECRET) -> bytes:
    """The Authorization header `-H "Authorization: Basic $(echo -n ID:SECRET | base64)"` sends:
    GNU base64 ends the value at 76 characters and starts a new line with the rest."""
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    assert len(encoded) > 76, "credentials too short to be wrapped"
    return f"Authorization: Basic {encoded[:76]}\r\n{encoded[76:]}\r\n".encode()


def post_head(*lines: bytes, length: int | None = None, path: str = "/oauth2/token") -> bytes:
    """A form POST's head with ``lines`` (each ending in CRLF) and a Content-Length."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"Content-Type: application/x-www-form-urlencoded\r\n" + b"".join(lines)
    if length is not None:
        head += f"Content-Length: {length}\r\n".encode()
    return head + b"\r\n"


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    interim: list[int]  # 1xx statuses sent before the answer

    def json(self) -> Any:
        assert self.headers["content-type"].startswith("application/json")
        return json.loads(self.body)


def exchange(
    port: int, data: bytes, *, half_close: bool = True, timeout: float = TIMEOUT
) -> Answer:
    """Write ``data`` on a new connection (then half-close it), read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    interim: list[int] = []
    while True:
        head, _, received = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status >= 200:
            break
        interim.append(status)
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(status, headers, received, interim)
