"""The cache service with fakes: freshness, refresh-ahead, single flight, negative cache, faults,
the budget of unproven credentials and backing off from a failing Cognito.

The store is the in-memory fake (the same contract as DynamoTokenStore, checked in
tests/integration/test_store.py); the clock only moves when a test moves it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from function_setup.metrics import RecordingMetrics
from tests.fakes.clock import T0, FakeClock
from tests.fakes.cognito_client import FakeCognitoClient, json_response, jwt_like
from tests.fakes.token_requests import (
    CLIENT_ID,
    CLIENT_SECRET,
    KEYS,
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    cache_key,
    settings,
    token_request,
)
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import telemetry
from token_proxy.errors import (
    NO_STORE_HEADERS,
    OriginSecretUnavailable,
    TemporarilyUnavailable,
    UnprovenBudgetSpent,
    UpstreamUnavailable,
)
from token_proxy.l1 import TokenL1
from token_proxy.model import (
    CachedToken,
    HttpResponse,
    LeaseAttempt,
    TokenRequest,
    UpstreamResponse,
)
from token_proxy.seal import seal, unseal
from token_proxy.service import TokenService
from token_proxy.settings import Settings
from token_proxy.token_record import sealed_token
from token_proxy.wiring import build_token_service


@dataclass
class Harness:
    """One or more service instances sharing a clock, a Cognito client and a store."""

    cognito: FakeCognitoClient = field(default_factory=FakeCognitoClient)
    store: InMemoryTokenStore | None = field(default_factory=InMemoryTokenStore)
    clock: FakeClock = field(default_factory=FakeClock)
    settings: Settings = field(default_factory=settings)
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)
    l1: TokenL1 = field(default_factory=lambda: TokenL1(16))

    def __post_init__(self) -> None:
        self.service = self.instance(self.l1, self.metrics, "instance-1")

    def instance(
        self, l1: TokenL1 | None = None, metrics: RecordingMetrics | None = None, owner: str = ""
    ) -> TokenService:
        """A service instance: another Lambda container when given its own L1."""
        return build_token_service(
            settings=self.settings,
            cognito=self.cognito,
            store=self.store,
            keys=KEYS,
            l1=l1 if l1 is not None else TokenL1(16),
            clock=self.clock,
            sleep=self.clock.sleep,
            metrics=metrics if metrics is not None else RecordingMetrics(),
            owner_id=owner or None,
        )


def token_body(serial: int, expires_in: int) -> dict[str, Any]:
    return {"access_token": jwt_like(serial), "expires_in": expires_in, "token_type": "Bearer"}


def assert_token(reply: HttpResponse, serial: int, expires_in: int) -> None:
    assert reply.status == 200
    assert json.loads(reply.body) == token_body(serial, expires_in)
    assert reply.headers == NO_STORE_HEADERS


def life_from_whole_second(now: float, lifetime: int) -> int:
    """expires_in of a token issued at ``now``: its life counts from the whole second (iat)."""
    return math.floor(math.floor(now) + lifetime - now)


def counts(metrics: RecordingMetrics) -> dict[str, int]:
    return {name: n for name, n in metrics.counts.items() if n}


def stored_record(store: InMemoryTokenStore, request: TokenRequest | None = None) -> Any:
    """The sealed record of the request's item, opened with the client's secret."""
    request = request if request is not None else token_request()
    key = cache_key(request)
    blob = store.items[key].blob
    assert blob is not None
    return json.loads(unseal(request.client_secret, key, blob))


def put_sealed(store: InMemoryTokenStore, serial: int, issued_at: float, lifetime: int) -> None:
    """A token item as another container stores it."""
    request = token_request()
    key = cache_key(request)
    token = CachedToken(
        token_body(serial, lifetime), issued_at, issued_at + lifetime, issued_at + 0.75 * lifetime
    )
    store.put_token(
        key,
        blob=sealed_token(request, key, token),
        client_id=CLIENT_ID,
        scope=request.scope,
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        keep_until=issued_at + 86_400,
        now=issued_at,
    )


# --------------------------------------------------------------------------- hits


def test_second_request_is_served_from_l1_without_store_or_upstream() -> None:
    # GIVEN a first request that fetched and cached a token
    h = Harness()
    assert_token(h.service.handle(token_request()), serial=1, expires_in=3600)
    assert h.store is not None
    store_calls = len(h.store.calls)

    # WHEN the same request comes again ten seconds later
    h.clock.advance(10)
    reply = h.service.handle(token_request())

    # THEN the same token is served from L1 with its remaining lifetime, with no I/O
    assert_token(reply, serial=1, expires_in=3590)
    assert h.cognito.calls == 1
    assert len(h.store.calls) == store_calls
    # (the first request's key had never produced a token: its call was counted in the budget)
    assert counts(h.metrics) == {
        telemetry.MISS: 1,
        telemetry.UNPROVEN_ADMITTED: 1,
        telemetry.HIT_L1: 1,
    }


def test_a_second_instance_is_served_from_the_store_then_from_its_own_l1() -> None:
    # GIVEN instance 1 cached a token in the shared store
    h = Harness()
    h.service.handle(token_request())
    other_metrics = RecordingMetrics()
    other = h.instance(TokenL1(16), other_metrics)

    # WHEN instance 2 (its own empty L1) gets the request twice, 60 s later
    h.clock.advance(60)
    first = other.handle(token_request())
    second = other.handle(token_request())

    # THEN it serves the stored token (DynamoDB hit, then L1 hit), without calling Cognito
    assert_token(first, serial=1, expires_in=3540)
    assert_token(second, serial=1, expires_in=3540)
    assert h.cognito.calls == 1
    assert counts(other_metrics) == {telemetry.HIT_DYNAMODB: 1, telemetry.HIT_L1: 1}


def test_expires_in_is_the_real_remaining_lifetime() -> None:
    # GIVEN a cached token with a 3600 s lifetime
    h = Harness()
    h.service.handle(token_request())

    # WHEN the clock advances
    served = []
    for step in (0.4, 0.7, 1000.0, 999.9):
        h.clock.advance(step)
        served.append(json.loads(h.service.handle(token_request()).body)["expires_in"])

    # THEN expires_in is the floor of what remains, never the original lifetime
    assert served == [3599, 3598, 2598, 1598]
    assert h.cognito.calls == 1


def test_issued_at_is_taken_before_the_upstream_call() -> None:
    # GIVEN Cognito takes 5 s to answer (the clock moves during the call)
    h = Harness()

    def slow(request: TokenRequest) -> UpstreamResponse:
        h.clock.advance(5)
        return json_response(200, token_body(1, 3600))

    h.cognito.script.append(slow)

    # WHEN a token is fetched
    reply = h.service.handle(token_request())

    # THEN its lifetime counts from before the call: 5 s are already gone
    assert_token(reply, serial=1, expires_in=3595)
    assert h.store is not None
    record = stored_record(h.store)
    assert (record["issued_at"], record["expires_at"], record["refresh_at"]) == (
        T0,
        T0 + 3600,
        T0 + 2700,
    )


# --------------------------------------------------------------------------- refresh ahead


def test_refresh_happens_once_in_the_refresh_window() -> None:
    # GIVEN a token issued at T0 (lifetime 3600, refresh at 75 % = 2700 s) and two instances
    h = Harness()
    h.service.handle(token_request())
    other = h.instance(TokenL1(16))
    other.handle(token_request())

    # WHEN requests arrive just before the window
    h.clock.advance(2699)
    before = [s.handle(token_request()) for s in (h.service, other)]

    # THEN the old token is served and nobody refreshes
    for reply in before:
        assert_token(reply, serial=1, expires_in=901)
    assert h.cognito.calls == 1

    # WHEN several requests to both instances arrive inside the window
    h.clock.advance(1)
    inside = [s.handle(token_request()) for s in (h.service, other, h.service, other)]
    h.clock.advance(100)
    later = [s.handle(token_request()) for s in (other, h.service)]

    # THEN exactly one refresh happened and everyone gets the new token from then on
    assert h.cognito.calls == 2
    for reply in inside:
        assert_token(reply, serial=2, expires_in=3600)
    for reply in later:
        assert_token(reply, serial=2, expires_in=3500)
    assert h.metrics.counts[telemetry.REFRESH_AHEAD] == 1


def test_requests_during_a_refresh_get_the_cached_token() -> None:
    # GIVEN a token in its refresh window, cached in two instances
    h = Harness()
    other_metrics = RecordingMetrics()
    other = h.instance(TokenL1(16), other_metrics)
    h.service.handle(token_request())
    other.handle(token_request())
    h.clock.advance(3000)

    # AND requests that arrive while the refresh call is in flight (on both instances)
    during: list[HttpResponse] = []

    def refresh_in_flight(request: TokenRequest) -> UpstreamResponse:
        during.append(other.handle(request))  # another container: the lease is taken
        during.append(h.service.handle(request))  # same container: the key lock is taken
        return json_response(200, token_body(2, 3600))

    h.cognito.script.append(refresh_in_flight)

    # WHEN a request triggers the refresh
    winner = h.service.handle(token_request())

    # THEN the winner serves the new token, the others the still valid cached one
    assert_token(winner, serial=2, expires_in=3600)
    assert len(during) == 2
    for reply in during:
        assert_token(reply, serial=1, expires_in=600)
    assert h.cognito.calls == 2
    assert counts(other_metrics) == {telemetry.HIT_DYNAMODB: 1, telemetry.HIT_L1: 1}
    assert counts(h.metrics) == {
        telemetry.MISS: 1,
        telemetry.UNPROVEN_ADMITTED: 1,
        telemetry.REFRESH_AHEAD: 1,
        telemetry.HIT_L1: 1,
    }


def test_late_token_is_a_miss_and_is_replaced() -> None:
    # GIVEN a token with less than min_remaining (10 %) of its lifetime left
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(3300)

    # WHEN it is requested
    reply = h.service.handle(token_request())

    # THEN a new token is fetched and served (the old one is not handed out)
    assert_token(reply, serial=2, expires_in=3600)
    assert h.cognito.calls == 2
    assert h.metrics.counts[telemetry.MISS] == 2


@pytest.mark.parametrize("age", [3600.0, 3599.5, 7200.0, 86400.0 * 3])
def test_an_expired_item_that_ttl_has_not_deleted_is_never_served(age: float) -> None:
    # GIVEN a token in the store (and in L1) whose expires_at has passed or is under 1 s away
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(age)
    fresh_instance = h.instance(TokenL1(16))

    # WHEN Cognito is unavailable
    h.cognito.script.append(UpstreamUnavailable("timeout"))

    # THEN neither instance serves the expired token: both answer temporarily unavailable (the
    # second without asking Cognito: the first backs the key off for the whole fleet)
    for service in (h.service, fresh_instance):
        with pytest.raises(TemporarilyUnavailable) as caught:
            service.handle(token_request())
        assert caught.value.to_response().status == 503
    assert h.cognito.calls == 2

    # AND once the back-off is over and Cognito answers, a new token is served, its life
    # counted from the whole second it was issued in (as Cognito truncates iat)
    h.clock.advance(h.settings.lease_seconds + 1)
    expected = life_from_whole_second(h.clock(), 3600)
    assert_token(h.service.handle(token_request()), serial=3, expires_in=expected)


# --------------------------------------------------------------------------- what is cached


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "eyJ.a.b", "token_type": "Bearer"},
        {"access_token": "eyJ.a.b", "token_type": "Bearer", "expires_in": "3600"},
        {"access_token": "eyJ.a.b", "token_type": "Bearer", "expires_in": 0},
        {"access_token": "eyJ.a.b", "token_type": "Bearer", "expires_in": -5},
        {"access_token": "eyJ.a.b", "token_type": "Bearer", "expires_in": True},
        {"access_token": "eyJ.a.b", "token_type": "Bearer", "expires_in": 3600.5},
        {"access_token": "", "token_type": "Bearer", "expires_in": 3600},
        {"token_type": "Bearer", "expires_in": 3600},
        ["not", "an", "object"],
    ],
)
def test_a_success_without_usable_expires_in_is_relayed_and_not_cached(body: Any) -> None:
    # GIVEN Cognito answers 200 without a usable expires_in (twice)
    h = Harness()
    upstream = json_response(200, body)
    h.cognito.script.extend([upstream, upstream])

    # WHEN the same request is made twice
    replies = [h.service.handle(token_request()) for _ in range(2)]

    # THEN Cognito's answer is relayed unchanged each time and nothing was cached
    for reply in replies:
        assert reply.status == 200
        assert reply.body == upstream.body.decode()
        assert reply.headers == {**NO_STORE_HEADERS, "Content-Type": "application/json"}
    assert h.cognito.calls == 2
    assert h.store is not None
    assert h.store.items == {}  # the lease items were deleted with the leases
    assert len(h.l1) == 0


def test_a_success_that_is_not_json_is_relayed_and_not_cached() -> None:
    h = Harness()
    upstream = UpstreamResponse(status=200, body=b"<html>ok</html>", content_type="text/html")
    h.cognito.script.append(upstream)

    reply = h.service.handle(token_request())

    assert reply == HttpResponse(
        200, "<html>ok</html>", {**NO_STORE_HEADERS, "Content-Type": "text/html"}
    )
    assert len(h.l1) == 0


def test_scope_order_and_duplicates_share_one_entry() -> None:
    # GIVEN the same scopes in different orders and with duplicates (normalised by request.py)
    h = Harness()
    variants = [("b/write", "a/read"), ("a/read", "b/write", "a/read"), ("b/write", "a/read")]

    # WHEN each is requested
    replies = [h.service.handle(token_request(scopes=v)) for v in variants]

    # THEN one upstream call served them all
    assert h.cognito.calls == 1
    for reply in replies:
        assert_token(reply, serial=1, expires_in=3600)


def test_different_scopes_secrets_clients_and_extras_never_share() -> None:
    # GIVEN two registered clients
    h = Harness(
        cognito=FakeCognitoClient({CLIENT_ID: CLIENT_SECRET, OTHER_CLIENT_ID: OTHER_SECRET})
    )
    requests = [
        token_request(),
        token_request(scopes=("api/write",)),
        token_request(scopes=()),
        token_request(scopes=("api/read", "api/write")),
        token_request(extras=(("resource", "https://api.example.test"),)),
        token_request(OTHER_CLIENT_ID, OTHER_SECRET),
    ]

    # WHEN each is requested twice
    first = [h.service.handle(r) for r in requests]
    second = [h.service.handle(r) for r in requests]

    # THEN each got its own token, once, and the repeat got the same one
    assert h.cognito.calls == len(requests)
    for serial, (a, b) in enumerate(zip(first, second, strict=True), start=1):
        assert_token(a, serial=serial, expires_in=3600)
        assert a == b
    assert len({cache_key(r) for r in requests}) == len(requests)


def test_a_wrong_secret_never_gets_the_cached_token() -> None:
    # GIVEN a token cached for the right secret
    h = Harness(settings=settings(negative_cache_seconds=0))
    h.service.handle(token_request())

    # WHEN the same client id asks with a wrong secret
    reply = h.service.handle(token_request(client_secret="wrong-secret"))

    # THEN Cognito was asked and its refusal relayed; no token is in the answer
    assert h.cognito.calls == 2
    assert reply.status == 400
    assert json.loads(reply.body) == {"error": "invalid_client"}
    assert jwt_like(1) not in reply.body


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "invalid_scope"),
        (400, "invalid_request"),
        (400, "unauthorized_client"),
        (401, "invalid_client"),
        (400, "invalid_client"),
        (403, "forbidden"),
    ],
)
def test_cognito_errors_are_relayed_and_never_cached_as_tokens(status: int, error: str) -> None:
    # GIVEN Cognito refuses (negative caching switched off)
    h = Harness(settings=settings(negative_cache_seconds=0))
    upstream = json_response(status, {"error": error})
    h.cognito.script.extend([upstream, upstream])

    # WHEN the request is made twice
    replies = [h.service.handle(token_request()) for _ in range(2)]

    # THEN each refusal is relayed as Cognito sent it and Cognito was asked both times
    for reply in replies:
        assert reply.status == status
        assert json.loads(reply.body) == {"error": error}
    assert h.cognito.calls == 2
    assert h.store is not None
    assert h.store.items == {}  # nothing but tokens is ever stored


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, "invalid_scope"), (400, "unauthorized_client"), (400, "invalid_request")],
)
def test_cognitos_other_refusals_of_an_exact_key_are_remembered_like_invalid_client(
    status: int, error: str
) -> None:
    # GIVEN negative caching on, and a client asking again and again for a scope it lacks
    h = Harness(settings=settings(negative_cache_seconds=30))
    h.cognito.script.extend([json_response(status, {"error": error})] * 2)

    # WHEN it asks three times within 30 s
    replies = [h.service.handle(token_request()) for _ in range(3)]

    # THEN Cognito was asked once, the same refusal replayed, and nothing was stored
    assert [r.status for r in replies] == [status] * 3
    assert {json.loads(r.body)["error"] for r in replies} == {error}
    assert h.cognito.calls == 1
    assert h.metrics.counts[telemetry.NEGATIVE_HIT] == 2
    assert h.store is not None and h.store.items == {}


@pytest.mark.parametrize(("status", "error"), [(403, "forbidden"), (429, "slow_down")])
def test_answers_about_the_rate_or_the_origin_are_not_remembered(status: int, error: str) -> None:
    h = Harness(settings=settings(negative_cache_seconds=30))
    h.cognito.script.extend([json_response(status, {"error": error})] * 2)

    replies = [h.service.handle(token_request()) for _ in range(2)]

    assert [r.status for r in replies] == [status, status]
    assert h.cognito.calls == 2
    assert h.metrics.counts[telemetry.NEGATIVE_HIT] == 0


# --------------------------------------------------------------------------- negative cache


def test_invalid_client_is_cached_negatively_for_that_exact_key_until_it_expires() -> None:
    # GIVEN negative caching for 30 s and a client looping on a bad secret
    h = Harness(settings=settings(negative_cache_seconds=30))
    bad = token_request(client_secret="bad-secret")

    # WHEN it asks, then asks again within 30 s (on this instance)
    first = h.service.handle(bad)
    h.clock.advance(29)
    again = h.service.handle(bad)

    # THEN Cognito was asked once and the same refusal was replayed, from memory only: the
    # table holds nothing for it (another container asks Cognito itself, within the budget)
    assert h.cognito.calls == 1
    for reply in (first, again):
        assert reply.status == 400
        assert json.loads(reply.body) == {"error": "invalid_client"}
    assert h.metrics.counts[telemetry.NEGATIVE_HIT] == 1
    assert h.store is not None and h.store.items == {}

    # AND other keys are unaffected: another bad secret and the right secret reach Cognito
    assert h.service.handle(token_request(client_secret="other-bad")).status == 400
    assert_token(h.service.handle(token_request()), serial=3, expires_in=3600)
    assert h.cognito.calls == 3

    # WHEN the negative entry has expired
    h.clock.advance(1)
    expired = h.service.handle(bad)

    # THEN Cognito is asked again
    assert expired.status == 400
    assert h.cognito.calls == 4


def test_a_401_invalid_client_is_cached_negatively_with_its_headers_and_status() -> None:
    h = Harness(settings=settings(negative_cache_seconds=30))
    upstream = UpstreamResponse(
        status=401, body=b'{"error":"invalid_client"}', content_type="application/json"
    )
    h.cognito.script.append(upstream)

    replies = [h.service.handle(token_request()) for _ in range(3)]

    assert h.cognito.calls == 1
    for reply in replies:
        assert reply == HttpResponse(
            401,
            '{"error":"invalid_client"}',
            {**NO_STORE_HEADERS, "Content-Type": "application/json"},
        )


# --------------------------------------------------------------------------- faults


def test_upstream_unavailable_serves_a_still_valid_token() -> None:
    # GIVEN a cached token that is past its refresh window but still valid
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(3500)

    # WHEN Cognito is unavailable
    h.cognito.script.append(UpstreamUnavailable("503"))
    reply = h.service.handle(token_request())

    # THEN the cached token is served with its real remaining life
    assert_token(reply, serial=1, expires_in=100)
    assert h.metrics.counts[telemetry.STALE_SERVED] == 1


def test_upstream_unavailable_during_refresh_serves_the_cached_token() -> None:
    # GIVEN a cached token in its refresh window, served from DynamoDB by a new instance
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(3000)
    h.cognito.script.append(UpstreamUnavailable("timeout"))
    metrics = RecordingMetrics()

    # WHEN the refresh fails
    reply = h.instance(TokenL1(16), metrics).handle(token_request())

    # THEN the valid cached token is served
    assert_token(reply, serial=1, expires_in=600)
    assert metrics.counts[telemetry.REFRESH_AHEAD] == 1
    assert metrics.counts[telemetry.STALE_SERVED] == 1


def test_a_failed_refresh_keeps_its_lease_so_the_fleet_backs_off() -> None:
    # GIVEN a token in its refresh window and a lease of 10 s
    h = Harness(settings=settings(lease_seconds=10.0))
    h.service.handle(token_request())
    other = h.instance(TokenL1(16))
    other.handle(token_request())
    h.clock.advance(2800)

    # WHEN the refresh fails, then requests keep coming on both instances for 10 s
    h.cognito.script.append(UpstreamUnavailable("503"))
    failed = h.service.handle(token_request())
    h.clock.advance(5)
    during = [h.service.handle(token_request()), other.handle(token_request())]

    # THEN Cognito was tried once; everyone got the cached token
    assert h.cognito.calls == 2
    for reply, remaining in zip([failed, *during], [800, 795, 795], strict=True):
        assert_token(reply, serial=1, expires_in=remaining)

    # WHEN the lease has expired
    h.clock.advance(5.5)
    after = other.handle(token_request())

    # THEN the next request refreshes
    assert h.cognito.calls == 3
    assert_token(after, serial=3, expires_in=life_from_whole_second(h.clock(), 3600))


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        (UpstreamUnavailable("503"), "10"),  # the lease time: this container backs off
        (UpstreamUnavailable("429", retry_after=7.0), "7"),  # Cognito's own Retry-After
        (UpstreamUnavailable("429", retry_after=900.0), "30"),  # bounded by MAX_BACKOFF
        (UpstreamUnavailable("no time left", tried=False), "1"),  # not Cognito's failure
        (OriginSecretUnavailable("no secret"), "1"),
    ],
)
def test_upstream_unavailable_without_a_valid_token_is_temporarily_unavailable(
    failure: Exception, retry_after: str
) -> None:
    # GIVEN nothing is cached and Cognito cannot be used
    h = Harness()
    h.cognito.script.append(failure)

    # WHEN a token is requested
    with pytest.raises(TemporarilyUnavailable) as caught:
        h.service.handle(token_request())

    # THEN the answer is RFC 6749 temporarily_unavailable (503, Retry-After)
    response = caught.value.to_response()
    assert response.status == 503
    assert json.loads(response.body) == {
        "error": "temporarily_unavailable",
        "error_description": "the token service is temporarily unavailable",
    }
    assert response.headers["Retry-After"] == retry_after
    # AND the key never produced a token: its lease item is gone, nothing stays in the table
    assert h.store is not None
    assert h.store.items == {}


def test_a_failing_store_fails_open_to_cognito() -> None:
    # GIVEN DynamoDB fails on every call
    h = Harness()
    assert h.store is not None
    h.store.failing = True

    # WHEN a token is requested twice
    first = h.service.handle(token_request())
    second = h.service.handle(token_request())

    # THEN Cognito serves it and L1 caches it; the errors were counted
    assert_token(first, serial=1, expires_in=3600)
    assert_token(second, serial=1, expires_in=3600)
    assert h.cognito.calls == 1
    # read, lease, the two budget counters (this container then counts alone), write
    assert h.metrics.counts[telemetry.STORE_ERROR] == 5


def test_a_failing_store_still_refreshes_once_per_instance() -> None:
    h = Harness()
    h.service.handle(token_request())
    assert h.store is not None
    h.store.failing = True
    h.clock.advance(2800)

    replies = [h.service.handle(token_request()) for _ in range(3)]

    assert h.cognito.calls == 2
    for reply in replies:
        assert_token(reply, serial=2, expires_in=3600)


def test_without_a_store_the_l1_alone_caches() -> None:
    h = Harness(store=None)

    replies = [h.service.handle(token_request()) for _ in range(3)]
    h.clock.advance(2800)
    refreshed = h.service.handle(token_request())

    for reply in replies:
        assert_token(reply, serial=1, expires_in=3600)
    assert_token(refreshed, serial=2, expires_in=3600)
    assert h.cognito.calls == 2


def test_an_item_that_does_not_unseal_is_a_miss_and_is_replaced() -> None:
    # GIVEN an item for the key whose blob was sealed under another secret
    h = Harness()
    assert h.store is not None
    key = cache_key()
    h.store.put_token(
        key,
        blob=seal("someone-else", key, json.dumps(token_body(99, 3600)).encode()),
        client_id=CLIENT_ID,
        scope="api/read",
        issued_at=T0,
        expires_at=T0 + 3600,
        keep_until=T0 + 86_400,
        now=T0,
    )

    # WHEN the key is requested (a second later, so the new token lives longer)
    h.clock.advance(1)
    reply = h.service.handle(token_request())

    # THEN it is a miss: Cognito's token is served and replaces the item
    assert_token(reply, serial=1, expires_in=3600)
    assert stored_record(h.store)["expires_at"] == T0 + 3601


# --------------------------------------------------------------------------- single flight


def test_a_waiting_request_gets_the_lease_holders_token() -> None:
    # GIVEN another container holds the lease for a cold key
    h = Harness()
    assert h.store is not None
    request = token_request()
    key = cache_key(request)
    store = h.store
    assert store.try_acquire_lease(key, owner="other", now=T0, lease_seconds=10).won

    # AND that container stores its token while we wait
    def other_container_finishes(seconds: float) -> None:
        h.clock.sleep(seconds)
        if len(h.clock.sleeps) == 2:
            put_sealed(store, serial=7, issued_at=T0, lifetime=3600)

    service = build_token_service(
        settings=h.settings,
        cognito=h.cognito,
        store=h.store,
        keys=KEYS,
        l1=TokenL1(16),
        clock=h.clock,
        sleep=other_container_finishes,
        metrics=h.metrics,
    )

    # WHEN we ask for the key
    reply = service.handle(request)

    # THEN we wait with growing sleeps and serve the other container's token
    assert h.cognito.calls == 0
    assert h.clock.sleeps == [0.025, 0.05]
    assert_token(reply, serial=7, expires_in=3599)  # 0.075 s went by: floor(3599.925)
    assert counts(h.metrics) == {telemetry.MISS: 1, telemetry.COALESCED_WAIT: 1}


def test_a_waiting_request_does_not_call_cognito_while_the_holder_is_at_it() -> None:
    # GIVEN another container's lease (valid for 10 s) on a cold key; waits last 3 s
    h = Harness(settings=settings(coalesce_wait_seconds=3.0, lease_seconds=10.0))
    assert h.store is not None
    key = cache_key()
    h.store.try_acquire_lease(key, owner="slow", now=T0, lease_seconds=10)

    # WHEN we ask for the key
    with pytest.raises(TemporarilyUnavailable) as caught:
        h.service.handle(token_request())

    # THEN we waited about 3 s (sleeps growing to 0.4 s), then answered 503 without adding a
    # second call to a Cognito that is slow to answer the first
    assert caught.value.to_response().headers["Retry-After"] == "1"
    assert sum(h.clock.sleeps) == pytest.approx(3.0)
    assert h.clock.sleeps[:5] == [0.025, 0.05, 0.1, 0.2, 0.4]
    assert max(h.clock.sleeps) == 0.4
    assert h.cognito.calls == 0
    assert h.metrics.counts[telemetry.COALESCED_WAIT] == 1


def test_an_expired_lease_is_taken_over_while_waiting() -> None:
    # GIVEN a crashed container's lease that expires after 1 s; waits may last 3 s
    h = Harness(settings=settings(coalesce_wait_seconds=3.0, lease_seconds=1.0))
    assert h.store is not None
    key = cache_key()
    h.store.try_acquire_lease(key, owner="crashed", now=T0, lease_seconds=1)

    # WHEN we ask for the key
    reply = h.service.handle(token_request())

    # THEN we took the lease once it expired, fetched, and stored the token
    assert_token(reply, serial=1, expires_in=life_from_whole_second(h.clock(), 3600))
    assert 1.0 < sum(h.clock.sleeps) < 2.0
    assert h.cognito.calls == 1
    assert h.store.items[key].blob is not None
    assert h.store.items[key].lease_owner is None


def test_the_lease_holder_double_checks_the_store_before_calling_cognito() -> None:
    # GIVEN a store where another container stores a token right as we take the lease
    h = Harness()
    store = h.store
    assert store is not None
    request = token_request()
    key = cache_key(request)
    take_lease = store.try_acquire_lease

    def racing_lease(key: str, *, owner: str, now: float, lease_seconds: float) -> LeaseAttempt:
        put_sealed(store, serial=5, issued_at=T0, lifetime=3600)
        return take_lease(key, owner=owner, now=now, lease_seconds=lease_seconds)

    store.try_acquire_lease = racing_lease  # type: ignore[method-assign]

    # WHEN we ask for the cold key
    reply = h.service.handle(request)

    # THEN the stored token is served and Cognito is not called; the lease is released
    assert_token(reply, serial=5, expires_in=3600)
    assert h.cognito.calls == 0
    assert store.items[key].lease_owner is None


def test_threads_of_one_instance_coalesce_in_process() -> None:
    # GIVEN one instance (no store) and a Cognito call during which 3 more requests arrive
    h = Harness(store=None)

    results: list[HttpResponse] = []
    started = threading.Event()
    release = threading.Event()

    def slow(request: TokenRequest) -> UpstreamResponse:
        started.set()
        assert release.wait(10)
        return json_response(200, token_body(1, 3600))

    h.cognito.script.append(slow)
    leader = threading.Thread(target=lambda: results.append(h.service.handle(token_request())))
    leader.start()
    assert started.wait(10)
    followers = [
        threading.Thread(target=lambda: results.append(h.service.handle(token_request())))
        for _ in range(3)
    ]
    for thread in followers:
        thread.start()

    # WHEN the call completes
    release.set()
    for thread in [leader, *followers]:
        thread.join(10)

    # THEN one upstream call served all four
    assert h.cognito.calls == 1
    assert len(results) == 4
    for reply in results:
        assert_token(reply, serial=1, expires_in=3600)


# --------------------------------------------------------------------------- hygiene


def test_no_secret_or_token_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a run through miss, refresh, negative cache, stale and unavailable paths
    caplog.set_level(logging.DEBUG)
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(3000)
    h.service.handle(token_request())
    h.service.handle(token_request(client_secret="bad-secret"))
    h.clock.advance(3400)
    h.cognito.script.append(UpstreamUnavailable("down"))
    h.service.handle(token_request())
    h.clock.advance(3600)
    h.cognito.script.append(UpstreamUnavailable("down"))
    with pytest.raises(TemporarilyUnavailable):
        h.service.handle(token_request())
    assert h.store is not None
    h.store.failing = True
    h.clock.advance(h.settings.lease_seconds)  # this container's back-off is over
    h.service.handle(token_request(scopes=("x/y",)))

    # THEN log records exist, and none carries a secret or a token in message or fields
    assert caplog.records
    forbidden = [CLIENT_SECRET, "bad-secret", "eyJ", cache_key()]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for value in forbidden:
            assert value not in text


def test_after_cognito_fails_a_nearly_expired_token_is_served_without_queueing_on_cognito() -> None:
    # GIVEN a token with less than its minimum remaining life (3600 s token, 10% = 360 s)
    h = Harness()
    h.service.handle(token_request())
    h.clock.advance(3600 - 200)
    lease = h.settings.lease_seconds

    # WHEN Cognito is unavailable for the first request
    h.cognito.script.append(UpstreamUnavailable("timeout"))
    first = h.service.handle(token_request())

    # THEN that request tried Cognito and got the still valid token
    assert h.cognito.calls == 2
    assert json.loads(first.body)["expires_in"] == 200
    # AND the next requests of this instance serve it without calling Cognito again...
    h.clock.advance(lease / 2)
    assert json.loads(h.service.handle(token_request()).body)["access_token"] == jwt_like(1)
    assert h.cognito.calls == 2
    assert h.metrics.counts[telemetry.STALE_SERVED] == 2
    # ... and so does a key with nothing cached: 503 at once, with the time left to wait
    other = token_request(scopes=("api/write",))
    with pytest.raises(TemporarilyUnavailable) as caught:
        h.service.handle(other)
    assert caught.value.to_response().headers["Retry-After"] == str(math.ceil(lease / 2))
    assert h.cognito.calls == 2
    assert h.metrics.counts[telemetry.UPSTREAM_BACKED_OFF] == 2
    # AND once the breaker's time is up, Cognito is asked again and its new token served
    h.clock.advance(lease)
    reply = h.service.handle(token_request())
    assert h.cognito.calls == 3
    assert json.loads(reply.body)["access_token"] == jwt_like(3)


# --------------------------------------------------------------------------- hostile traffic

WINDOW = 60  # the budget's window (token_proxy.budget.WINDOW_SECONDS)


def test_unproven_keys_past_the_per_client_budget_get_429_without_calling_cognito() -> None:
    # GIVEN a budget of 3 calls per client id per minute (100 in total)
    h = Harness(
        settings=settings(unproven_calls_per_client_per_minute=3, unproven_calls_per_minute=100)
    )
    h.clock.now = T0 - T0 % WINDOW  # the start of a budget window

    # WHEN the known client id floods with ten random wrong secrets, 1 s apart
    answers: list[int | str] = []
    for n in range(10):
        try:
            answers.append(h.service.handle(token_request(client_secret=f"guess-{n}")).status)
        except UnprovenBudgetSpent as refused:
            response = refused.to_response()
            assert json.loads(response.body) == {
                "error": "temporarily_unavailable",
                "error_description": (
                    "too many token requests with credentials that have not obtained a token "
                    "yet; retry later"
                ),
            }
            answers.append(f"{response.status} after {response.headers['Retry-After']}")
        h.clock.advance(1)

    # THEN three reached Cognito; the others were refused at once, told when the window ends
    # (once this container knew the budget spent, a refusal cost one DynamoDB read: whether
    # the key is proven)
    assert h.cognito.calls == 3
    assert h.store is not None
    assert h.store.calls[-6:] == ["get"] * 6
    assert answers == [400, 400, 400] + [f"429 after {WINDOW - n}" for n in range(3, 10)]
    assert counts(h.metrics)[telemetry.UNPROVEN_ADMITTED] == 3
    assert counts(h.metrics)[telemetry.UNPROVEN_REFUSED] == 7
    # AND another client, and the known client's own secret, were not limited by that flood
    other = token_request(OTHER_CLIENT_ID, OTHER_SECRET)
    h.cognito.clients[OTHER_CLIENT_ID] = OTHER_SECRET
    assert h.service.handle(other).status == 200
    # AND once the window is over, the client's budget is back
    h.clock.advance(WINDOW)
    assert h.service.handle(token_request(client_secret="guess-late")).status == 400
    assert h.cognito.calls == 5


def test_the_total_budget_limits_every_unproven_key_together() -> None:
    # GIVEN a fleet-wide budget of 5 calls per minute
    h = Harness(settings=settings(unproven_calls_per_minute=5))
    h.clock.now = T0 - T0 % WINDOW

    # WHEN ten made-up client ids ask
    refused = 0
    for n in range(10):
        try:
            h.service.handle(token_request(client_id=f"made-up-{n:04d}", client_secret="x" * 20))
        except UnprovenBudgetSpent:
            refused += 1

    # THEN five reached Cognito, five were refused; the table holds the budget's counters only
    assert (h.cognito.calls, refused) == (5, 5)
    assert h.store is not None and h.store.items == {}


def test_proven_keys_and_refreshes_never_wait_on_the_budget() -> None:
    # GIVEN a key that produced a token, and then no budget at all for unproven keys
    h = Harness()
    h.service.handle(token_request())
    broke = Harness(
        cognito=h.cognito,
        store=h.store,
        clock=h.clock,
        settings=settings(unproven_calls_per_minute=0, unproven_calls_per_client_per_minute=0),
    )

    # WHEN its token is due for a refresh
    h.clock.advance(2800)
    refreshed = broke.service.handle(token_request())
    # AND when the client comes back a day later, long after its token expired
    h.clock.advance(86_400)
    next_day = broke.service.handle(token_request())

    # THEN both reached Cognito: the item proves the key, for PROOF_DAYS after its last token
    assert_token(refreshed, serial=2, expires_in=3600)
    assert json.loads(next_day.body)["access_token"] == jwt_like(3)
    assert h.cognito.calls == 3
    assert broke.metrics.counts[telemetry.UNPROVEN_REFUSED] == 0
    # AND an unproven key is refused at once
    with pytest.raises(UnprovenBudgetSpent):
        broke.service.handle(token_request(scopes=("api/write",)))
    assert h.cognito.calls == 3


def test_a_flood_of_wrong_secrets_never_evicts_a_good_token_from_l1() -> None:
    # GIVEN a good token in an L1 of 1,024 entries, and no budget limit
    h = Harness(
        settings=settings(
            unproven_calls_per_minute=10**6, unproven_calls_per_client_per_minute=10**6
        ),
        l1=TokenL1(1024),
    )
    h.service.handle(token_request())
    assert h.store is not None

    # WHEN 1,100 wrong secrets are tried (each remembered as a negative answer in L1)
    for n in range(1100):
        assert h.service.handle(token_request(client_secret=f"wrong-{n:05d}")).status == 400
    calls, store_calls = h.cognito.calls, len(h.store.calls)

    # THEN the good token is still an L1 hit: no Cognito call, no DynamoDB call
    before = h.metrics.counts.copy()
    assert_token(h.service.handle(token_request()), serial=1, expires_in=3600)
    assert dict(h.metrics.counts - before) == {telemetry.HIT_L1: 1}
    assert (h.cognito.calls, len(h.store.calls)) == (calls, store_calls)
    assert (h.l1.token_count, h.l1.negative_count) == (1, 1024)
    # AND the table holds the one token item only
    assert h.store.token_items() == [cache_key()] and len(h.store.items) == 1


def test_a_failing_cognito_is_left_alone_by_the_whole_fleet_for_its_retry_after() -> None:
    # GIVEN a key whose token expired, three containers, and Cognito asking for 20 s
    h = Harness()
    h.service.handle(token_request())
    others = [h.instance(TokenL1(16), owner=f"instance-{n}") for n in (2, 3)]
    h.clock.advance(3600)
    h.cognito.script.append(UpstreamUnavailable("429", retry_after=20.0))

    # WHEN each container gets the request, a few seconds apart
    told: list[str] = []
    for service in (h.service, *others):
        with pytest.raises(TemporarilyUnavailable) as caught:
            service.handle(token_request())
        told.append(caught.value.to_response().headers["Retry-After"])
        h.clock.advance(5)

    # THEN Cognito was asked once; every client was told Cognito's wait, as it runs down
    assert h.cognito.calls == 2
    assert told == ["20", "15", "10"]
    # AND once it is over, one request asks again and gets a token
    h.clock.advance(6)
    assert json.loads(others[1].handle(token_request()).body)["access_token"] == jwt_like(3)


def test_the_request_deadline_comes_from_the_time_the_function_has_left() -> None:
    # GIVEN a request with 4 s left in the invocation (1 s margin, 20 s function timeout)
    h = Harness()

    # WHEN it misses
    h.service.handle(token_request(), remaining_seconds=4.0)
    # AND when another comes with no context (its timeout applies)
    h.service.handle(token_request(scopes=("api/write",)))

    # THEN Cognito was called with a deadline of 3 s, then of 19 s
    deadlines = [d.remaining() for d in h.cognito.deadlines if d is not None]
    assert deadlines == [pytest.approx(3.0), pytest.approx(19.0)]
