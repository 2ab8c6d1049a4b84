"""A simulated fleet of warm proxies, each caching the origin secret for its max age on a
controllable clock, sends token requests all through rotations and prunes; every request's
x-origin-verify header is evaluated against the pattern set as WAF evaluates it.

The invariant (DESIGN.md section 5): at no moment of a rotation, or of a failed and retried one,
is a proxy's live value rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from rotator import app
from tests.fakes.clock import ROTATION_T0, FakeClock
from tests.integration.rotation_harness import (
    RotationWorld,
    build_world,
    waf_accepts,
)

MAX_AGE = 60  # the proxy's ORIGIN_SECRET_MAX_AGE_SECONDS default
GRACE = 900  # the rotator's PRUNE_GRACE_SECONDS default
PROXIES = 12
TICK = 5  # every proxy sends one request every TICK seconds
PRUNE_EVERY = 300  # more often than the template's 15 minutes, to catch an early prune
TOKEN_A = "0a4b6c8d-1e2f-4a3b-8c4d-5e6f7a8b9c01"
TOKEN_B = "0a4b6c8d-1e2f-4a3b-8c4d-5e6f7a8b9c02"


@dataclass
class Proxy:
    """One warm container: re-reads AWSCURRENT when its copy is MAX_AGE old."""

    value: str
    fetched_at: datetime

    def header(self, now: datetime, current: str) -> str:
        """The value sent at ``now``; ``current`` is what reading AWSCURRENT would return."""
        if (now - self.fetched_at).total_seconds() >= MAX_AGE:
            self.value, self.fetched_at = current, now
        return self.value


@dataclass
class FleetRun:
    requests: int = 0
    rejected: list[tuple[int, int]] = field(default_factory=list)  # (second, proxy)
    set_sizes: dict[int, int] = field(default_factory=dict)  # second -> accepted values
    values_sent: set[str] = field(default_factory=set)


class Fleet:
    def __init__(self, world: RotationWorld, clock: FakeClock) -> None:
        self.world = world
        self.clock = clock
        self.start = clock.utc()
        initial = world.value("AWSCURRENT")
        # staggered: at every tick some proxy re-reads the secret
        self.proxies = [
            Proxy(initial, self.start - timedelta(seconds=i * MAX_AGE / PROXIES))
            for i in range(PROXIES)
        ]

    def run(self, actions: dict[int, list[Callable[[], object]]], duration: int) -> FleetRun:
        """Advance the clock TICK by TICK; at a second listed in ``actions`` run those (steps,
        prunes, crashes) first; then every proxy sends a request."""
        result = FleetRun()
        patterns, current = self.world.patterns(), self.world.value("AWSCURRENT")
        for second in range(0, duration + 1, TICK):
            self.clock.set_utc(self.start + timedelta(seconds=second))
            if second % PRUNE_EVERY == 0:
                actions.setdefault(second, []).append(self.world.prune)
            for action in actions.get(second, []):
                action()
                # only the rotator changes the set and the secret: re-read after each action
                patterns, current = self.world.patterns(), self.world.value("AWSCURRENT")
                result.set_sizes[second] = len(patterns)
            for index, proxy in enumerate(self.proxies):
                value = proxy.header(self.clock.utc(), current)
                result.requests += 1
                result.values_sent.add(value)
                if not waf_accepts(patterns, value):
                    result.rejected.append((second, index))
        return result


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    virtual = FakeClock(ROTATION_T0)
    monkeypatch.setattr(app, "clock", virtual.utc)
    return virtual


def _world(monkeypatch: pytest.MonkeyPatch, grace: int) -> RotationWorld:
    world = build_world(grace_seconds=grace)
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app.metrics, "namespace", "CognitoTokenProxy")
    app.reset()
    return world


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[RotationWorld]:
    yield _world(monkeypatch, GRACE)
    app.reset()


def _steps(
    world: RotationWorld, token: str, at: int, gap: int = 10
) -> dict[int, list[Callable[[], object]]]:
    """Secrets Manager's rotation: start + createSecret at ``at``, one step every ``gap``
    seconds, AWSPENDING dropped right after finishSecret."""
    return {
        at: [lambda: world.start_rotation(token), lambda: world.step("createSecret", token)],
        at + gap: [lambda: world.step("setSecret", token)],
        at + 2 * gap: [lambda: world.step("testSecret", token)],
        at + 3 * gap: [
            lambda: world.step("finishSecret", token),
            lambda: world.complete_rotation(token),
        ],
    }


def _first_second_with(run: FleetRun, size: int, after: int) -> int:
    return min(second for second, n in run.set_sizes.items() if n == size and second > after)


def test_no_request_is_rejected_through_a_rotation_and_its_prune(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN a fleet of proxies on the deployed secret, and a rotation at t=600 (finish at 630)
    fleet = Fleet(world, clock)
    old = world.value("AWSCURRENT")

    # WHEN requests flow for an hour through the rotation and the scheduled prunes
    run = fleet.run(_steps(world, TOKEN_A, at=600), duration=3600)

    # THEN not one request was rejected, every proxy moved to the new value,
    # and the old value was dropped only after the grace period
    new = world.value("AWSCURRENT")
    assert run.rejected == []
    assert run.requests == PROXIES * (3600 // TICK + 1)
    assert run.values_sent == {old, new}
    assert {proxy.value for proxy in fleet.proxies} == {new}
    assert _first_second_with(run, 1, after=630) >= 630 + GRACE
    assert world.patterns() == [f"^{new}$"]


def test_no_request_is_rejected_when_a_rotation_crashes_and_is_retried(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN a rotation that crashes after setSecret (t=610) and that Secrets Manager retries
    # from the start ten minutes later
    fleet = Fleet(world, clock)
    old = world.value("AWSCURRENT")
    attempt = _steps(world, TOKEN_A, at=600)
    actions = {600: attempt[600], 610: attempt[610]}
    actions.update(_steps(world, TOKEN_A, at=1200))

    # WHEN requests flow for an hour
    run = fleet.run(actions, duration=3600)

    # THEN not one request was rejected and the rotation completed with one new value
    new = world.value("AWSCURRENT")
    assert run.rejected == []
    assert run.values_sent == {old, new}
    assert run.set_sizes[900] == 2  # the prune during the stalled rotation changed nothing
    assert world.patterns() == [f"^{new}$"]


def test_no_request_is_rejected_when_rotations_come_back_to_back(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN two rotations, the second starting 30 seconds after the first one finished
    fleet = Fleet(world, clock)
    actions = _steps(world, TOKEN_A, at=600)
    actions.update(_steps(world, TOKEN_B, at=660))

    # WHEN requests flow for an hour
    run = fleet.run(actions, duration=3600)

    # THEN not one request was rejected, although proxies held three values in turn
    assert run.rejected == []
    assert len(run.values_sent) == 3
    assert world.patterns() == [f"^{world.value('AWSCURRENT')}$"]


def test_the_simulation_catches_a_prune_inside_the_proxies_max_age(
    aws: None, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # GIVEN (a control) a grace period of zero: the prune may drop the old value right away
    world = _world(monkeypatch, grace=0)
    fleet = Fleet(world, clock)
    actions = _steps(world, TOKEN_A, at=600)
    actions.setdefault(635, []).append(world.prune)

    # WHEN requests flow
    run = fleet.run(actions, duration=900)

    # THEN proxies still holding the old value are rejected: the evaluation does catch it
    assert run.rejected
    assert all(635 <= second < 630 + MAX_AGE + TICK for second, _ in run.rejected)
    app.reset()
