"""The single flight on its own: which request may call Cognito for a key (the Lease answer)
and what a request that missed does next (the MissTurn), over the in-memory store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from function_setup.metrics import RecordingMetrics
from tests.fakes.clock import T0, FakeClock
from tests.fakes.token_requests import CLIENT_SECRET, token_request
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import telemetry
from token_proxy.freshness import FreshnessPolicy
from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken
from token_proxy.seal import seal
from token_proxy.single_flight import Lease, MissTurn, SingleFlight
from token_proxy.token_cache import TokenCache

KEY = token_request().cache_key()
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
        TokenCache(TokenL1(16), store, clock=clock, metrics=sink),
        store,
        FreshnessPolicy(),
        lease_seconds=LEASE_SECONDS,
        coalesce_wait_seconds=WAIT_SECONDS,
        clock=clock,
        sleep=sleep or clock.sleep,
        metrics=sink,
        owner_id=owner,
    )


def lease_owner(store: InMemoryTokenStore) -> str | None:
    return store.items[KEY].lease_owner if KEY in store.items else None


def store_token(store: InMemoryTokenStore, issued_at: float, lifetime: int = 3600) -> None:
    body = {"access_token": "eyJ.a.b", "expires_in": lifetime, "token_type": "Bearer"}
    store.put_token(
        KEY,
        blob=seal(CLIENT_SECRET, KEY, json.dumps(body).encode()),
        client_id="c",
        scope="api/read",
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        refresh_at=issued_at + 0.75 * lifetime,
    )


def test_a_refresh_takes_the_lease_and_drops_it_after() -> None:
    # GIVEN two containers sharing a store
    store, clock = InMemoryTokenStore(), FakeClock()
    one, two = flight(store, clock, "one"), flight(store, clock, "two")

    # WHEN the first refreshes, and the second asks while it does
    with one.refresh(KEY) as first, two.refresh(KEY) as second:
        held_by = lease_owner(store)

    # THEN the first holds the lease, the second is told it is taken, and it is dropped after
    assert (first.lease, second.lease, held_by) == (Lease.ACQUIRED, Lease.TAKEN, "one")
    assert lease_owner(store) is None


def test_a_failed_refresh_can_keep_its_lease() -> None:
    store, clock = InMemoryTokenStore(), FakeClock()
    with flight(store, clock, "one").refresh(KEY) as turn:
        turn.keep_lease = True
    assert lease_owner(store) == "one"
    clock.advance(LEASE_SECONDS + 1)  # until it expires
    with flight(store, clock, "two").refresh(KEY) as later:
        assert later.lease is Lease.ACQUIRED


def test_a_second_thread_of_one_container_is_told_the_refresh_is_taken() -> None:
    # GIVEN one container's thread refreshing a key
    store, clock = InMemoryTokenStore(), FakeClock()
    shared = flight(store, clock, "one")
    seen: list[Lease] = []
    with shared.refresh(KEY):
        # WHEN another thread of the same container asks
        thread = threading.Thread(target=lambda: seen.append(_refresh_lease(shared)))
        thread.start()
        thread.join()
    # THEN it does not wait and does not touch the store: taken
    assert seen == [Lease.TAKEN]
    assert store.calls.count("try_acquire_lease") == 1


def _refresh_lease(single: SingleFlight) -> Lease:
    with single.refresh(KEY) as turn:
        return turn.lease


def test_without_a_store_or_with_a_failing_one_there_is_no_lease_to_be_had() -> None:
    clock, metrics = FakeClock(), RecordingMetrics()
    failing = InMemoryTokenStore()
    failing.failing = True
    with flight(None, clock, "one").refresh(KEY) as alone:
        assert alone.lease is Lease.UNAVAILABLE
    with flight(failing, clock, "one", metrics).refresh(KEY) as failed:
        assert failed.lease is Lease.UNAVAILABLE
    assert metrics.counts == {telemetry.STORE_ERROR: 1}


def test_a_miss_on_a_free_key_calls_cognito_holding_the_lease() -> None:
    # GIVEN an empty store
    store, clock = InMemoryTokenStore(), FakeClock()

    # WHEN a request misses
    with flight(store, clock, "one").miss(token_request(), KEY, fallback=None) as turn:
        held_by = lease_owner(store)

    # THEN it calls Cognito itself, holding the lease until it is done
    assert turn == MissTurn()
    assert held_by == "one"
    assert lease_owner(store) is None
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
    with waiting.miss(token_request(), KEY, fallback=None) as turn:
        pass

    # THEN it waited with doubling sleeps and is handed the holder's token from the store
    assert clock.sleeps == [0.025, 0.05]
    assert isinstance(turn.found, CachedToken)
    assert turn.from_store is True
    assert turn.found.expires_at == T0 + 3600
    assert metrics.counts == {telemetry.COALESCED_WAIT: 1}
    assert "release_lease" not in store.calls  # the lease was never ours to drop


def test_a_miss_whose_wait_runs_out_calls_cognito_with_the_best_stale_token() -> None:
    # GIVEN a holder that never delivers, and a late token in the store
    store, clock = InMemoryTokenStore(), FakeClock(T0 + 3500)
    store_token(store, issued_at=T0)
    store.try_acquire_lease(KEY, owner="two", now=clock.now, lease_seconds=100)

    # WHEN a request misses
    with flight(store, clock, "one").miss(token_request(), KEY, fallback=None) as turn:
        pass

    # THEN after the whole wait it calls Cognito itself, the late token kept for stale-if-error
    assert sum(clock.sleeps) == pytest.approx(WAIT_SECONDS)
    assert turn.found is None
    assert turn.fallback is not None and turn.fallback.expires_at == T0 + 3600
