"""The single flight on its own: which request may call Cognito for a key (the Lease answer),
what a request that missed does next, and what becomes of the lease (the Turn), over the
in-memory store."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from function_setup.metrics import RecordingMetrics
from tests.fakes.clock import T0, FakeClock
from tests.fakes.token_requests import cache_key, token_request
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import telemetry
from token_proxy.deadline import Deadline
from token_proxy.freshness import FreshnessPolicy
from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken
from token_proxy.single_flight import SingleFlight
from token_proxy.token_cache import TokenCache
from token_proxy.token_record import sealed_token
from token_proxy.turn import Lease, Turn

KEY = cache_key()
LEASE_SECONDS = 10.0
WAIT_SECONDS = 3.0


def flight(
    store: InMemoryTokenStore | None,
    clock: FakeClock,
    owner: str,
    metrics: RecordingMetrics | None = None,
    sleep: Callable[[float], None] | None = None,
) -> SingleFlight:
    sink = metrics if metrics is not None else RecordingMetrics()
    return SingleFlight(
        TokenCache(TokenL1(16), store, clock=clock, metrics=sink, proof_seconds=86_400),
        store,
        FreshnessPolicy(),
        lease_seconds=LEASE_SECONDS,
        coalesce_wait_seconds=WAIT_SECONDS,
        clock=clock,
        sleep=sleep or clock.sleep,
        metrics=sink,
        owner_id=owner,
    )


def deadline(clock: FakeClock, seconds: float = 19.0) -> Deadline:
    return Deadline.within(seconds, clock)


def lease_owner(store: InMemoryTokenStore) -> str | None:
    return store.items[KEY].lease_owner if KEY in store.items else None


def store_token(store: InMemoryTokenStore, issued_at: float, lifetime: int = 3600) -> None:
    body = {"access_token": "eyJ.a.b", "expires_in": lifetime, "token_type": "Bearer"}
    token = CachedToken(body, issued_at, issued_at + lifetime, issued_at + 0.75 * lifetime)
    store.put_token(
        KEY,
        blob=sealed_token(token_request(), KEY, token),
        client_id="c",
        scope="api/read",
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        keep_until=issued_at + 86_400,
        now=issued_at,
    )


def test_a_refresh_takes_the_lease_and_drops_it_after() -> None:
    # GIVEN two containers sharing a store that holds the key's token
    store, clock = InMemoryTokenStore(), FakeClock()
    store_token(store, issued_at=T0)
    one, two = flight(store, clock, "one"), flight(store, clock, "two")
    request, limit = token_request(), deadline(clock)

    # WHEN the first refreshes, and the second asks while it does
    with one.refresh(request, KEY, limit) as first, two.refresh(request, KEY, limit) as second:
        held_by = lease_owner(store)

    # THEN the first holds the lease (and sees the token the item held), the second is told it
    # is taken, and the lease is dropped after, the token item kept
    assert (first.lease, second.lease, held_by) == (Lease.ACQUIRED, Lease.TAKEN, "one")
    assert isinstance(first.found, CachedToken) and first.found.expires_at == T0 + 3600
    assert lease_owner(store) is None
    assert store.token_items() == [KEY]


def test_a_failed_refresh_keeps_its_lease_as_a_back_off_for_the_whole_fleet() -> None:
    # GIVEN a refresh whose Cognito call failed: the service asks to keep the lease 30 s
    store, clock = InMemoryTokenStore(), FakeClock()
    store_token(store, issued_at=T0)
    with flight(store, clock, "one").refresh(token_request(), KEY, deadline(clock)) as turn:
        turn.keep_until = clock.now + 30

    # THEN the item says so, and another container's miss is told to back off at once
    assert store.items[KEY].backoff_until == T0 + 30
    clock.advance(LEASE_SECONDS + 1)  # past the lease's own expiry, still backing off
    with flight(store, clock, "two").miss(token_request(), KEY, None, deadline(clock)) as other:
        pass
    assert (other.lease, other.backoff_until) == (Lease.TAKEN, T0 + 30)
    assert clock.sleeps == []
    clock.advance(20)  # and once the back-off is over, the key may be tried again
    with flight(store, clock, "two").miss(token_request(), KEY, None, deadline(clock)) as later:
        assert later.lease is Lease.ACQUIRED


def test_a_second_thread_of_one_container_is_told_the_refresh_is_taken() -> None:
    # GIVEN one container's thread refreshing a key
    store, clock = InMemoryTokenStore(), FakeClock()
    shared = flight(store, clock, "one")
    seen: list[Lease] = []
    with shared.refresh(token_request(), KEY, deadline(clock)):
        # WHEN another thread of the same container asks
        thread = threading.Thread(target=lambda: seen.append(_refresh_lease(shared, clock)))
        thread.start()
        thread.join()
    # THEN it does not wait and does not touch the store: taken
    assert seen == [Lease.TAKEN]
    assert store.calls.count("try_acquire_lease") == 1


def _refresh_lease(single: SingleFlight, clock: FakeClock) -> Lease:
    with single.refresh(token_request(), KEY, deadline(clock)) as turn:
        return turn.lease


def test_without_a_store_with_a_failing_one_or_without_time_there_is_no_lease() -> None:
    clock, metrics = FakeClock(), RecordingMetrics()
    failing = InMemoryTokenStore()
    failing.failing = True
    request = token_request()
    with flight(None, clock, "one").refresh(request, KEY, deadline(clock)) as alone:
        assert alone.lease is Lease.UNAVAILABLE
    with flight(failing, clock, "one", metrics).refresh(request, KEY, deadline(clock)) as failed:
        assert failed.lease is Lease.UNAVAILABLE
    assert metrics.counts == {telemetry.STORE_ERROR: 1}
    # a DynamoDB call takes up to ~5 s (botocore's timeouts and retries): with 2 s left, none
    healthy = InMemoryTokenStore()
    late = SingleFlight(
        TokenCache(
            TokenL1(16),
            healthy,
            clock=clock,
            metrics=metrics,
            proof_seconds=1,
            store_call_seconds=5.0,
        ),
        healthy,
        FreshnessPolicy(),
        lease_seconds=LEASE_SECONDS,
        coalesce_wait_seconds=WAIT_SECONDS,
        clock=clock,
        metrics=metrics,
    )
    with late.miss(request, KEY, None, deadline(clock, 2.0)) as no_time:
        assert no_time.lease is Lease.UNAVAILABLE
    assert healthy.calls == []


def test_a_miss_on_a_free_key_holds_the_lease_and_leaves_no_item_without_a_token() -> None:
    # GIVEN an empty store
    store, clock = InMemoryTokenStore(), FakeClock()

    # WHEN a request misses and gets no token (Cognito said invalid_client)
    with flight(store, clock, "one").miss(token_request(), KEY, None, deadline(clock)) as turn:
        held_by = lease_owner(store)

    # THEN it called Cognito holding the lease, and the lease item is gone after
    assert turn == Turn(Lease.ACQUIRED)
    assert held_by == "one"
    assert store.items == {}
    assert clock.sleeps == []


def test_a_waiting_miss_gets_what_the_holder_stores() -> None:
    # GIVEN another container holding the lease, which stores a token after 0.06 s
    store, clock = InMemoryTokenStore(), FakeClock()
    store.try_acquire_lease(KEY, owner="two", now=T0, lease_seconds=LEASE_SECONDS)
    metrics = RecordingMetrics()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= T0 + 0.06 and store.items[KEY].blob is None:
            store_token(store, issued_at=T0)

    waiting = flight(store, clock, "one", metrics, sleep)

    # WHEN a request misses
    with waiting.miss(token_request(), KEY, None, deadline(clock)) as turn:
        pass

    # THEN it waited with doubling sleeps and is handed the holder's token from the store
    assert clock.sleeps == [0.025, 0.05]
    assert isinstance(turn.found, CachedToken)
    assert turn.from_store is True
    assert turn.found.expires_at == T0 + 3600
    assert metrics.counts == {telemetry.COALESCED_WAIT: 1}
    assert "release_lease" not in store.calls  # the lease was never ours to drop


def test_a_miss_whose_wait_runs_out_does_not_call_cognito_and_keeps_the_best_stale_token() -> None:
    # GIVEN a holder that never delivers, and a late token in the store
    store, clock = InMemoryTokenStore(), FakeClock(T0 + 3500)
    store_token(store, issued_at=T0)
    store.try_acquire_lease(KEY, owner="two", now=clock.now, lease_seconds=100)

    # WHEN a request misses
    with flight(store, clock, "one").miss(token_request(), KEY, None, deadline(clock)) as turn:
        pass

    # THEN after the whole wait it is told the lease is still taken (the holder is still at
    # it), the late token kept for stale-if-error
    assert sum(clock.sleeps) == pytest.approx(WAIT_SECONDS)
    assert (turn.lease, turn.found) == (Lease.TAKEN, None)
    assert turn.fallback is not None and turn.fallback.expires_at == T0 + 3600


def test_a_wait_ends_with_the_deadline() -> None:
    # GIVEN a holder that never delivers, and a request with 1 s left
    store, clock = InMemoryTokenStore(), FakeClock()
    store.try_acquire_lease(KEY, owner="two", now=clock.now, lease_seconds=100)

    # WHEN it misses
    with flight(store, clock, "one").miss(token_request(), KEY, None, deadline(clock, 1.0)):
        pass

    # THEN it waited no longer than its deadline (not the whole coalescing wait)
    assert sum(clock.sleeps) == pytest.approx(1.0)


def test_the_new_holder_double_checks_the_item_its_lease_found() -> None:
    # GIVEN a token stored just before an expired lease is taken over
    store, clock = InMemoryTokenStore(), FakeClock()
    store_token(store, issued_at=T0)
    calls_before = len(store.calls)

    # WHEN a request misses (its read was older) and wins the lease
    with flight(store, clock, "one").miss(token_request(), KEY, None, deadline(clock)) as turn:
        pass

    # THEN the lease write itself handed it the token: no extra read
    assert isinstance(turn.found, CachedToken) and turn.from_store and turn.proven
    assert store.calls[calls_before:] == ["try_acquire_lease", "release_lease"]
    assert store.token_items() == [KEY]
