"""Fakes for the cache tests: a controllable clock, a counting issuer, an in-memory store.

The in-memory store follows DynamoTokenStore's conditions; tests/integration/test_store.py
runs the same contract over both, so the fake cannot drift from the real adapter.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from token_proxy.errors import StoreUnavailable
from token_proxy.model import StoredItem, TokenRequest, UpstreamResponse
from token_proxy.settings import Settings

T0 = 1_700_000_000.0

CLIENT_ID = "3k1d0c7svbq2example0client"
CLIENT_SECRET = "s3cr3t-value-for-client-one-0123456789abcdef"
OTHER_CLIENT_ID = "5h2e1d8twcr3example0second"
OTHER_SECRET = "another-secret-for-client-two-9876543210"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "token_table_name": "token-cache-test",
        "cognito_token_url": "https://auth.example.test/oauth2/token",
        "origin_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:origin",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def token_request(
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    scopes: tuple[str, ...] = ("api/read",),
    extras: tuple[tuple[str, str], ...] = (),
) -> TokenRequest:
    """A request as request.py builds it: scopes normalised (sorted, without duplicates)."""
    return TokenRequest(
        client_id=client_id,
        client_secret=client_secret,
        scopes=tuple(sorted(set(scopes))),
        extras=extras,
    )


class FakeClock:
    """Epoch seconds that move only when told to (sleep advances it)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def jwt_like(serial: int) -> str:
    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part({'n': serial})}.c2lnbmF0dXJl{serial:04d}"


def json_response(status: int, body: object) -> UpstreamResponse:
    return UpstreamResponse(status=status, body=json.dumps(body).encode())


Outcome = UpstreamResponse | Exception | Callable[[TokenRequest], UpstreamResponse]


class FakeIssuer:
    """Cognito stand-in: valid credentials get a new JWT-shaped token per call.

    ``script`` holds outcomes (a response, an exception to raise, or a callable) used before
    the default behaviour. ``delay`` makes each call take real time (for concurrency tests).
    """

    def __init__(
        self,
        clients: dict[str, str] | None = None,
        *,
        expires_in: int = 3600,
        delay: float = 0.0,
    ) -> None:
        self.clients = clients if clients is not None else {CLIENT_ID: CLIENT_SECRET}
        self.expires_in = expires_in
        self.delay = delay
        self.script: list[Outcome] = []
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def fetch(self, request: TokenRequest) -> UpstreamResponse:
        with self._lock:
            self.requests.append(request)
            serial = len(self.requests)
            outcome = self.script.pop(0) if self.script else None
        if self.delay:
            time.sleep(self.delay)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, UpstreamResponse):
            return outcome
        if outcome is not None:
            return outcome(request)
        if self.clients.get(request.client_id) != request.client_secret:
            return json_response(400, {"error": "invalid_client"})
        return json_response(
            200,
            {
                "access_token": jwt_like(serial),
                "expires_in": self.expires_in,
                "token_type": "Bearer",
            },
        )


class InMemoryTokenStore:
    """The DynamoTokenStore contract in a dict (thread-safe; one lock = per-item atomicity)."""

    def __init__(self) -> None:
        self.items: dict[str, StoredItem] = {}
        self.ttls: dict[str, int] = {}
        self.failing = False
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        if self.failing:
            raise StoreUnavailable(f"{operation} failed")

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        with self._lock:
            self._enter("get")
            return self.items.get(key)

    def put_token(
        self,
        key: str,
        *,
        blob: bytes,
        client_id: str,
        scope: str,
        issued_at: float,
        expires_at: float,
        refresh_at: float,
    ) -> None:
        with self._lock:
            self._enter("put_token")
            old = self.items.get(key)
            if (
                old is not None
                and old.blob is not None
                and old.kind == "token"
                and old.expires_at > expires_at
            ):
                return
            self.items[key] = StoredItem(
                "token", blob, issued_at, expires_at, refresh_at, None, None
            )
            self.ttls[key] = math.ceil(expires_at) + 300

    def put_negative(self, key: str, *, blob: bytes, client_id: str, until: float) -> None:
        with self._lock:
            self._enter("put_negative")
            self.items[key] = StoredItem("negative", blob, 0.0, until, 0.0, None, None)
            self.ttls[key] = math.ceil(until) + 300

    def try_acquire_lease(self, key: str, *, owner: str, now: float, lease_seconds: float) -> bool:
        with self._lock:
            self._enter("try_acquire_lease")
            old = self.items.get(key)
            if old is not None and old.lease_until is not None and not old.lease_until < now:
                return False
            if old is None:
                old = StoredItem("token", None, 0.0, 0.0, 0.0, None, None)
                self.ttls.setdefault(key, math.ceil(now + lease_seconds) + 300)
            self.items[key] = replace(old, lease_owner=owner, lease_until=now + lease_seconds)
            return True

    def release_lease(self, key: str, *, owner: str) -> None:
        with self._lock:
            self.calls.append("release_lease")
            old = self.items.get(key)
            if self.failing or old is None or old.lease_owner != owner:
                return
            self.items[key] = replace(old, lease_owner=None, lease_until=None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._enter("delete")
            self.items.pop(key, None)
            self.ttls.pop(key, None)
