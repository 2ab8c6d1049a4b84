"""Cognito's token endpoint over real HTTP on loopback, for the handler tests.

The fake behaves like Cognito behind the web ACL: it checks ``x-origin-verify`` and the
User-Agent, authenticates the client from HTTP Basic or the form body, and issues a new token
for every call that gets through. One endpoint serves the test process
(:func:`cognito_token_url` is the function's COGNITO_TOKEN_URL in the handler tests); the fake
installed with :func:`serving` answers it and records every request it received in ``calls``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.fakes.http_endpoint import LoopbackEndpoint, Received, Reply

COGNITO_DOMAIN = "auth.example.com"
ORIGIN_VALUE = "OriginVerifyValueForTests0123456789"
CLIENT_ID = "1example23456789"
CLIENT_SECRET = "example-secret-not-real"
ALLOWED_SCOPES = frozenset({"example-api/read", "example-api/write"})
TOKEN_LIFETIME = 3600
#: What the endpoint answers while no fake is installed.
NOBODY_HOME = Reply(503, b'{"error":"no fake Cognito is serving"}')


@dataclass
class FakeCognito:
    """Cognito's /oauth2/token for one app client; ``calls`` holds the requests it answered."""

    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    origin_value: str = ORIGIN_VALUE
    issued: list[str] = field(default_factory=list)
    calls: list[Received] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reply(self, request: Received) -> Reply:
        self.calls.append(request)
        status, headers, body = self._answer(request)
        return Reply(status, body.encode(), headers)

    def _answer(self, request: Received) -> tuple[int, dict[str, str], str]:
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        if request.headers.get("x-origin-verify") != self.origin_value:
            return 403, headers, json.dumps({"error": "access_denied"})
        if not request.headers.get("User-Agent"):
            return 403, headers, json.dumps({"error": "access_denied"})
        form = dict(request.form)
        if form.get("grant_type") != "client_credentials":
            return 400, headers, json.dumps({"error": "unsupported_grant_type"})
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = request.headers.get("Authorization")
        if authorization is not None:  # taken as sent: Base64Encode(client_id:client_secret)
            raw = base64.b64decode(authorization.split(" ", 1)[1]).decode()
            client_id, _, secret = raw.partition(":")
        if client_id not in self.clients or self.clients[client_id] != secret:
            return 400, headers, json.dumps({"error": "invalid_client"})
        scopes = set(form.get("scope", "").split())
        if not scopes <= ALLOWED_SCOPES:
            return 400, headers, json.dumps({"error": "invalid_scope"})
        token = f"eyJraWQiOiJmYWtlIn0.fake-access-token-{next(self._serial)}.not-a-signature"
        self.issued.append(token)
        answer = {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
        return 200, headers, json.dumps(answer)


class _SharedEndpoint:
    """The process's one loopback endpoint, started on first use; it answers with the fake
    installed, or :data:`NOBODY_HOME`."""

    def __init__(self) -> None:
        self.fake: FakeCognito | None = None
        self._endpoint: LoopbackEndpoint | None = None
        self._lock = threading.Lock()

    def endpoint(self) -> LoopbackEndpoint:
        with self._lock:
            if self._endpoint is None:
                self._endpoint = LoopbackEndpoint(self._reply)
            return self._endpoint

    def _reply(self, request: Received) -> Reply:
        fake = self.fake
        return NOBODY_HOME if fake is None else fake.reply(request)


_SHARED = _SharedEndpoint()


def cognito_token_url() -> str:
    """The token endpoint's URL on loopback (the handler tests' COGNITO_TOKEN_URL)."""
    return _SHARED.endpoint().url()


@contextmanager
def serving(fake: FakeCognito) -> Iterator[FakeCognito]:
    """``fake`` answers the loopback token endpoint while inside."""
    _SHARED.endpoint()
    previous, _SHARED.fake = _SHARED.fake, fake
    try:
        yield fake
    finally:
        _SHARED.fake = previous


@contextmanager
def stubbed_cognito() -> Iterator[FakeCognito]:
    with serving(FakeCognito()) as fake:
        yield fake
