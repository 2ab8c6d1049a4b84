"""Cognito failing, each with and without a valid cached token: down (connection refused on
loopback), slow past the timeout, 429 with Retry-After, 5xx storms.

The upstream is the local issuer (local/cognito_token_endpoint.py) over real HTTP on loopback,
faults injected through its /admin/fail and /admin/delay hooks; a counting WSGI wrapper counts the
token requests that reached it (and can add ``Retry-After`` to its 429 answers). The proxy is the
real handler path (``app.handle_event``: parsing, service, error mapping) over the real
CognitoTokenClient, with an in-memory store and a controllable clock. Backoff sleeps are recorded,
not slept.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from function_setup.metrics import RecordingMetrics
from local.cognito_token_endpoint import ClientRegistration, LocalIssuer
from tests.fakes.clock import FakeClock
from tests.fakes.cognito_endpoint import CLIENT_ID, CLIENT_SECRET
from tests.fakes.origin_secret import FakeOriginSecret
from tests.fakes.proxy_function import load_event
from tests.fakes.token_requests import KEYS, settings
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import app
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.l1 import TokenL1
from token_proxy.service import TokenService
from token_proxy.telemetry import STALE_SERVED, UPSTREAM_CALL
from token_proxy.wiring import build_token_service

ORIGIN_VALUE = "OriginValueForFaultTests0123456789"
LIFETIME = 3600
MAX_ATTEMPTS = 3
TIMEOUT_SECONDS = 0.3
UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "the token service is temporarily unavailable",
}
#: Seconds after the first token was issued, for each cache state the faults meet.
CACHE_STATES = {
    "no-cached-token": None,
    "cached-token-due-for-refresh": 0.80 * LIFETIME,  # past refresh_at, plenty of life left
    "cached-token-nearly-expired": 0.95 * LIFETIME,  # a miss, but still valid: stale-if-error
}


@pytest.fixture(autouse=True)
def debug_logs_checked_too(caplog: pytest.LogCaptureFixture) -> None:
    """The suite's log guard sees this module's DEBUG records as well."""
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    caplog.set_level(logging.DEBUG, logger="local")


class CountingUpstream:
    """WSGI wrapper: counts token requests; adds ``Retry-After`` to 429 answers when set."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        self.token_requests = 0
        self.retry_after: str | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/oauth2/token":
            with self._lock:
                self.token_requests += 1

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("429") and self.retry_after is not None:
                headers = [*headers, ("Retry-After", self.retry_after)]
            return start_response(status, headers, exc_info)

        return self.issuer(environ, start)


@dataclass
class Upstream:
    url: str
    counter: CountingUpstream

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    def admin(self, action: str, **options: Any) -> None:
        requests.post(f"{self.url}/admin/{action}", json=options, timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def served() -> Iterator[Upstream]:
    issuer = LocalIssuer(
        [ClientRegistration(CLIENT_ID, CLIENT_SECRET, ("example-api/read",), LIFETIME)],
        web_acl=None,
    )
    counter = CountingUpstream(issuer)
    server = make_server("127.0.0.1", 0, counter, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Upstream(f"http://127.0.0.1:{server.server_port}", counter)
    server.shutdown()
    server.server_close()


@pytest.fixture
def upstream(served: Upstream) -> Iterator[Upstream]:
    served.admin("reset")
    served.counter.token_requests = 0
    served.counter.retry_after = None
    yield served
    served.admin("reset")


@dataclass
class Cache:
    """What proxies of one warm container share: the clock, the L1 and the table."""

    clock: FakeClock = field(default_factory=FakeClock)
    l1: TokenL1 = field(default_factory=lambda: TokenL1(16))
    store: InMemoryTokenStore = field(default_factory=InMemoryTokenStore)
    token: str | None = None
    age: float = 0.0


@dataclass
class Proxy:
    service: TokenService
    cache: Cache
    metrics: RecordingMetrics
    sleeps: list[float]

    def ask(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        event = load_event("token_body_credentials.json")
        response = app.handle_event(event, self.service, settings())
        return response.status, response.headers, json.loads(response.body)

    @property
    def upstream_attempts(self) -> int:
        return self.metrics.counts[UPSTREAM_CALL]


def make_proxy(token_url: str, cache: Cache) -> Proxy:
    metrics, sleeps = RecordingMetrics(), []
    issuer = CognitoTokenClient(
        token_url=token_url,
        origin=FakeOriginSecret(ORIGIN_VALUE),
        timeout_seconds=TIMEOUT_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        user_agent="cognito-token-proxy/test",
        sleep=sleeps.append,
        rand=lambda: 0.5,
        metrics=metrics,
    )
    service = build_token_service(
        settings=settings(),
        cognito=issuer,
        store=cache.store,
        keys=KEYS,
        l1=cache.l1,
        clock=cache.clock,
        sleep=cache.clock.sleep,
        metrics=metrics,
    )
    return Proxy(service, cache, metrics, sleeps)


def cache_in_state(state: str, upstream: Upstream) -> Cache:
    """A cache in ``state``: a token fetched through a healthy upstream, then aged."""
    cache = Cache()
    age = CACHE_STATES[state]
    if age is not None:
        status, _, body = make_proxy(upstream.token_url, cache).ask()
        assert status == 200
        cache.token, cache.age = str(body["access_token"]), age
        cache.clock.advance(age)
    upstream.counter.token_requests = 0
    return cache


def assert_outcome(
    proxy: Proxy, answer: tuple[int, dict[str, str], dict[str, Any]], retry_after: str = "10"
) -> None:
    """Without a cached token: 503 temporarily_unavailable, with a Retry-After that reflects
    Cognito's (or the lease time without one); with one: that token, with its real remaining
    lifetime (stale-if-error)."""
    status, headers, body = answer
    assert headers["Cache-Control"] == "no-store"
    if proxy.cache.token is None:
        assert (status, body) == (503, UNAVAILABLE)
        assert headers["Retry-After"] == retry_after
        assert proxy.metrics.counts[STALE_SERVED] == 0
    else:
        assert status == 200
        assert body == {
            "access_token": proxy.cache.token,
            "token_type": "Bearer",
            "expires_in": int(LIFETIME - proxy.cache.age),
        }
        assert proxy.metrics.counts[STALE_SERVED] == 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------- the faults


@pytest.mark.parametrize("state", CACHE_STATES)
def test_issuer_down(state: str, upstream: Upstream) -> None:
    # GIVEN a cache in this state, and Cognito refusing connections
    cache = cache_in_state(state, upstream)
    proxy = make_proxy(f"http://127.0.0.1:{closed_port()}/oauth2/token", cache)
    # WHEN a client asks
    answer = proxy.ask()
    # THEN the retry bound was obeyed (3 attempts, 2 jittered backoff pauses), and the cached
    # token, if any, was served
    assert proxy.upstream_attempts == MAX_ATTEMPTS
    assert proxy.sleeps == [0.05, 0.1]
    assert_outcome(proxy, answer)


@pytest.mark.parametrize("state", CACHE_STATES)
def test_issuer_slower_than_the_timeout(state: str, upstream: Upstream) -> None:
    # GIVEN a cache in this state, and Cognito answering every request after 1 s
    cache = cache_in_state(state, upstream)
    proxy = make_proxy(upstream.token_url, cache)
    upstream.admin("delay", seconds=1.0)
    # WHEN a client asks (each attempt times out after 0.3 s)
    answer = proxy.ask()
    # THEN exactly 3 requests reached Cognito, and the outcome depends on the cache
    assert upstream.counter.token_requests == proxy.upstream_attempts == MAX_ATTEMPTS
    assert proxy.sleeps == [0.05, 0.1]
    assert_outcome(proxy, answer)


@pytest.mark.parametrize("state", CACHE_STATES)
def test_429_with_retry_after_is_honoured_within_the_bound(state: str, upstream: Upstream) -> None:
    # GIVEN a cache in this state, and Cognito throttling with Retry-After: 2
    cache = cache_in_state(state, upstream)
    proxy = make_proxy(upstream.token_url, cache)
    upstream.admin("fail", status=429, count=100, body={"error": "too_many_requests"})
    upstream.counter.retry_after = "2"
    # WHEN a client asks
    answer = proxy.ask()
    # THEN each retry waited the 2 s Cognito asked for, within the 3-attempt bound, and the
    # client is told to come back after Cognito's 2 s
    assert upstream.counter.token_requests == MAX_ATTEMPTS
    assert proxy.sleeps == [2.0, 2.0]
    assert_outcome(proxy, answer, retry_after="2")


@pytest.mark.parametrize("state", CACHE_STATES)
def test_429_asking_for_a_long_wait_gives_up_at_once(state: str, upstream: Upstream) -> None:
    # GIVEN Cognito throttling with a Retry-After longer than the proxy may wait (5 s)
    cache = cache_in_state(state, upstream)
    proxy = make_proxy(upstream.token_url, cache)
    upstream.admin("fail", status=429, count=100, body={"error": "too_many_requests"})
    upstream.counter.retry_after = "120"
    # WHEN a client asks
    answer = proxy.ask()
    # THEN one request, no wait, and the outcome depends on the cache (the client is told to
    # come back after Cognito's wait, bounded by MAX_BACKOFF_SECONDS: 30 s)
    assert upstream.counter.token_requests == 1
    assert proxy.sleeps == []
    assert_outcome(proxy, answer, retry_after="30")


@pytest.mark.parametrize("state", CACHE_STATES)
def test_a_5xx_storm(state: str, upstream: Upstream) -> None:
    # GIVEN a cache in this state, and Cognito answering 503 to everything
    cache = cache_in_state(state, upstream)
    proxy = make_proxy(upstream.token_url, cache)
    upstream.admin("fail", status=503, count=1000)
    # WHEN clients ask five times
    first = proxy.ask()
    assert_outcome(proxy, first)
    rest = [proxy.ask() for _ in range(4)]
    # THEN every answer is the same
    assert [(status, body) for status, _, body in rest] == [(first[0], first[2])] * 4
    # AND the first failure is the last call for a while, whatever the cache holds: the
    # instance's breaker answers the next requests (stale token or 503) without Cognito
    assert upstream.counter.token_requests == proxy.upstream_attempts == MAX_ATTEMPTS


def test_after_a_5xx_burst_the_next_attempt_gets_the_token(upstream: Upstream) -> None:
    # GIVEN nothing cached, and Cognito failing the next two requests only
    proxy = make_proxy(upstream.token_url, Cache())
    upstream.admin("fail", status=500, count=2)
    # WHEN a client asks
    status, _, body = proxy.ask()
    # THEN the third attempt got a token, which is cached: the next request costs nothing
    assert status == 200
    assert body["expires_in"] == LIFETIME
    assert upstream.counter.token_requests == 3
    assert proxy.ask()[2]["access_token"] == body["access_token"]
    assert upstream.counter.token_requests == 3
