"""The budget of Cognito calls for unproven credentials, on the in-memory store: per client id
and in total, per window, remembered once spent, counted alone when DynamoDB cannot be asked."""

from __future__ import annotations

import pytest

from function_setup.metrics import RecordingMetrics
from tests.fakes.clock import T0, FakeClock
from tests.fakes.token_requests import KEYS
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import telemetry
from token_proxy.budget import (
    CLIENT_BUCKETS,
    CLIENT_COUNTER_PREFIX,
    TOTAL_COUNTER,
    WINDOW_SECONDS,
    Admission,
    UnprovenBudget,
)
from token_proxy.deadline import Deadline

WINDOW_START = T0 - T0 % WINDOW_SECONDS


def budget(
    store: InMemoryTokenStore | None,
    clock: FakeClock,
    *,
    per_client: int = 3,
    total: int = 10,
    metrics: RecordingMetrics | None = None,
) -> UnprovenBudget:
    return UnprovenBudget(
        store,
        KEYS,
        per_client=per_client,
        total=total,
        metrics=metrics if metrics is not None else RecordingMetrics(),
        clock=clock,
        store_call_seconds=5.0,
    )


def test_per_client_then_total_and_the_window_renews_both() -> None:
    # GIVEN 3 calls per client id and 10 in total, 20 s into a window
    store, clock = InMemoryTokenStore(), FakeClock(WINDOW_START + 20)
    limit = budget(store, clock)
    deadline = Deadline.within(19, clock)

    # WHEN one client asks four times, then eight other clients once each
    first = [limit.admit("a", deadline) for _ in range(4)]
    others = [limit.admit(f"client-{n}", deadline).admitted for n in range(8)]

    # THEN the fourth call of "a" is refused (its limit), with the 40 s left of the window;
    # the total allows 10: the last client is refused by it
    assert first == [Admission(True)] * 3 + [Admission(False, "client", 40)]
    assert others == [True] * 7 + [False]
    # AND a new window renews both
    clock.advance(40)
    assert limit.admit("a", Deadline.within(19, clock)) == Admission(True)


def test_once_spent_a_counter_is_refused_without_asking_dynamodb_until_the_window_ends() -> None:
    store, clock = InMemoryTokenStore(), FakeClock(WINDOW_START)
    limit = budget(store, clock, per_client=1)
    deadline = Deadline.within(19, clock)
    assert limit.admit("a", deadline).admitted
    assert not limit.admit("a", deadline).admitted  # asks DynamoDB, learns it is spent
    calls = len(store.calls)

    refusals = [limit.admit("a", deadline).admitted for _ in range(100)]

    assert refusals == [False] * 100
    assert len(store.calls) == calls


def test_a_flood_of_client_ids_uses_a_bounded_number_of_counters() -> None:
    store, clock = InMemoryTokenStore(), FakeClock(WINDOW_START)
    limit = budget(store, clock, per_client=5, total=100_000)
    deadline = Deadline.within(19, clock)

    for n in range(5000):
        limit.admit(f"made-up-{n:05d}", deadline)

    counters = set(store.attributes)
    assert counters <= {TOTAL_COUNTER} | {
        f"{CLIENT_COUNTER_PREFIX}{b}" for b in range(CLIENT_BUCKETS)
    }
    assert store.items == {}  # counters hold no token, no client id


@pytest.mark.parametrize("reason", ["failing", "no time"])
def test_without_dynamodb_the_container_counts_alone_with_the_same_limits(reason: str) -> None:
    # GIVEN DynamoDB failing, or a request with no time left for a DynamoDB call
    store, clock, metrics = InMemoryTokenStore(), FakeClock(WINDOW_START), RecordingMetrics()
    store.failing = reason == "failing"
    limit = budget(store, clock, per_client=2, metrics=metrics)
    deadline = Deadline.within(19 if reason == "failing" else 1, clock)

    # WHEN a client asks three times
    admitted = [limit.admit("a", deadline).admitted for _ in range(3)]

    # THEN this container's own count applies the limit
    assert admitted == [True, True, False]
    if reason == "failing":
        # both counters for the two admitted calls, the client counter for the refused one
        assert metrics.counts[telemetry.STORE_ERROR] == 5
    else:
        assert store.calls == []


def test_a_budget_of_zero_refuses_every_unproven_call() -> None:
    clock = FakeClock(WINDOW_START)
    limit = budget(InMemoryTokenStore(), clock, per_client=0)
    assert limit.admit("a", Deadline.within(19, clock)) == Admission(False, "client", 60)


def test_what_this_container_knows_is_spent_is_told_without_counting() -> None:
    store, clock = InMemoryTokenStore(), FakeClock(WINDOW_START + 15)
    limit = budget(store, clock, per_client=1)
    deadline = Deadline.within(19, clock)
    assert limit.known_spent("a") is None
    limit.admit("a", deadline)
    assert limit.known_spent("a") is None  # counted, but not known to be spent yet
    limit.admit("a", deadline)  # refused: now known
    calls = len(store.calls)

    assert limit.known_spent("a") == Admission(False, "client", 45)
    assert limit.known_spent("b") is None
    assert len(store.calls) == calls
    clock.advance(45)
    assert limit.known_spent("a") is None
