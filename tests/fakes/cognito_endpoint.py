"""Cognito's token endpoint stubbed over HTTP with ``responses``, for the handler tests.

The stub behaves like Cognito behind the web ACL: it checks ``x-origin-verify`` and the
User-Agent, authenticates the client from HTTP Basic or the form body, and issues a new token
for every call that gets through.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import responses

COGNITO_DOMAIN = "auth.example.com"
COGNITO_TOKEN_URL = f"https://{COGNITO_DOMAIN}/oauth2/token"
ORIGIN_VALUE = "OriginVerifyValueForTests0123456789"
CLIENT_ID = "1example23456789"
CLIENT_SECRET = "example-secret-not-real"
ALLOWED_SCOPES = frozenset({"example-api/read", "example-api/write"})
TOKEN_LIFETIME = 3600


@dataclass
class FakeCognito:
    """Cognito's /oauth2/token for one app client, registered on a ``responses`` mock."""

    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    origin_value: str = ORIGIN_VALUE
    issued: list[str] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def register(self, mock: responses.RequestsMock) -> None:
        mock.add_callback(responses.POST, COGNITO_TOKEN_URL, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        if request.headers.get("x-origin-verify") != self.origin_value:
            return 403, headers, json.dumps({"error": "access_denied"})
        if not request.headers.get("User-Agent"):
            return 403, headers, json.dumps({"error": "access_denied"})
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        form = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
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


@contextmanager
def stubbed_cognito() -> Iterator[tuple[FakeCognito, responses.RequestsMock]]:
    fake = FakeCognito()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.register(mock)
        yield fake, mock
