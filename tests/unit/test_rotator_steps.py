"""The rotation steps and the prune against in-memory fakes of the secret and the pattern set
(no AWS, no network): guards, idempotency, LockToken retries and their bound, grace periods."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.errors import (
    CanaryFailedError,
    MissingValueError,
    NotPendingError,
    PatternSetConflictError,
    PatternSetMismatchError,
    RotationNotEnabledError,
    SecretStoreUnavailableError,
    StaleLockTokenError,
    UnknownVersionError,
)
from rotator.model import (
    CURRENT,
    PENDING,
    PREVIOUS,
    PatternSetSnapshot,
    RotationMarker,
    SecretState,
    Step,
    StepOutcome,
    accepted_pattern,
)
from rotator.steps import OriginSecretRotation

T0 = datetime(2030, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=900)
OLD, NEW, NEWER = "A" * 64, "B" * 64, "C" * 64
TOKEN, TOKEN_2 = "token-1", "token-2"
ROTATION_STEPS = (Step.CREATE, Step.SET, Step.TEST, Step.FINISH)


@dataclass
class FakeSecretStore:
    """Secrets Manager's stage rules in memory: one AWSCURRENT, AWSPREVIOUS follows it."""

    versions: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"v0": {"value": OLD, "stages": {CURRENT}}}
    )
    rotation_enabled: bool = True
    marker: RotationMarker | None = None
    randoms: list[str] = field(default_factory=lambda: [NEW, NEWER])
    marker_fails: bool = False
    writes: int = 0

    def describe(self) -> SecretState:
        stages = {v: frozenset(d["stages"]) for v, d in self.versions.items() if d["stages"]}
        return SecretState(self.rotation_enabled, stages, self.marker)

    def value(self, stage: str, version_id: str | None = None) -> str | None:
        for version, data in self.versions.items():
            if stage in data["stages"] and version_id in (None, version):
                return data["value"]  # type: ignore[no-any-return]
        return None

    def random_value(self, length: int) -> str:
        return self.randoms.pop(0)

    def put_pending(self, version_id: str, value: str) -> None:
        self.writes += 1
        for data in self.versions.values():
            data["stages"].discard(PENDING)
        self.versions[version_id] = {"value": value, "stages": {PENDING}}

    def move_current(self, to_version_id: str, from_version_id: str) -> None:
        self.writes += 1
        assert CURRENT in self.versions[from_version_id]["stages"]
        for data in self.versions.values():
            data["stages"].discard(PREVIOUS)
        self.versions[from_version_id]["stages"] = (
            self.versions[from_version_id]["stages"] - {CURRENT}
        ) | {PREVIOUS}
        self.versions[to_version_id]["stages"].add(CURRENT)

    def record_marker(self, marker: RotationMarker) -> None:
        if self.marker_fails:
            raise SecretStoreUnavailableError("TagResource failed on the origin secret")
        self.writes += 1
        self.marker = marker

    # Secrets Manager's own part of a rotation
    def start_rotation(self, token: str) -> None:
        self.versions.setdefault(token, {"value": None, "stages": {PENDING}})

    def complete_rotation(self, token: str) -> None:
        self.versions[token]["stages"].discard(PENDING)


@dataclass
class FakePatternSet:
    patterns: list[str] = field(default_factory=lambda: [accepted_pattern(OLD)])
    lock: int = 0
    concurrent_writes: int = 0  # how many of our writes someone else beats
    write_attempts: int = 0

    def read(self) -> PatternSetSnapshot:
        return PatternSetSnapshot(tuple(self.patterns), str(self.lock), "managed by the rotator")

    def write(self, patterns: Any, snapshot: PatternSetSnapshot) -> None:
        self.write_attempts += 1
        if self.concurrent_writes:
            self.concurrent_writes -= 1
            self.lock += 1  # someone else wrote the same list in between
        if snapshot.lock_token != str(self.lock):
            raise StaleLockTokenError("changed since it was read")
        self.patterns = list(patterns)
        self.lock += 1


@dataclass
class FakeCanary:
    fails: bool = False
    checked: list[str] = field(default_factory=list)

    def check(self, origin_value: str) -> None:
        self.checked.append(origin_value)
        if self.fails:
            raise CanaryFailedError("the canary token request was answered 400")


@dataclass
class World:
    store: FakeSecretStore = field(default_factory=FakeSecretStore)
    waf: FakePatternSet = field(default_factory=FakePatternSet)
    sleeps: list[float] = field(default_factory=list)
    canary: FakeCanary | None = None
    propagation_seconds: float = 0.0

    @property
    def rotation(self) -> OriginSecretRotation:
        return OriginSecretRotation(
            self.store,
            self.waf,
            grace=GRACE,
            canary=self.canary,
            propagation_seconds=self.propagation_seconds,
            sleep=self.sleeps.append,
            jitter=lambda: 1.0,
        )

    def run(self, step: Step, token: str = TOKEN, now: datetime = T0) -> StepOutcome:
        return self.rotation.run(step, token, now)

    def rotate(self, token: str = TOKEN, now: datetime = T0) -> None:
        self.store.start_rotation(token)
        for step in ROTATION_STEPS:
            self.run(step, token, now)
        self.store.complete_rotation(token)

    def accepted(self) -> set[str]:
        return set(self.waf.patterns)


def p(value: str) -> str:
    return accepted_pattern(value)


# ---------------------------------------------------------------------- patterns


@given(st.text(alphabet=st.characters(blacklist_characters="\n"), min_size=1), st.text())
def test_a_pattern_accepts_exactly_its_value(value: str, other: str) -> None:
    # GIVEN the entry for any value (escaping keeps regex metacharacters literal)
    entry = accepted_pattern(value)

    # THEN WAF-style search matches the value itself and nothing else but it plus a final
    # newline (PCRE's and Python's `$`; a header value cannot carry one)
    assert entry == f"^{re.escape(value)}$"
    assert re.search(entry, value)
    assert bool(re.search(entry, other)) == (other in (value, value + "\n"))


def test_an_alphanumeric_value_is_its_own_pattern_body() -> None:
    assert accepted_pattern("abcXYZ0123") == "^abcXYZ0123$"


# ---------------------------------------------------------------------- guards


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_every_step_refuses_a_secret_without_rotation(step: Step) -> None:
    # GIVEN rotation disabled
    world = World()
    world.store.rotation_enabled = False
    world.store.start_rotation(TOKEN)

    # WHEN/THEN the step fails and writes nothing
    with pytest.raises(RotationNotEnabledError):
        world.run(step)
    assert (world.store.writes, world.waf.write_attempts) == (0, 0)


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_every_step_refuses_an_unknown_token(step: Step) -> None:
    world = World()
    with pytest.raises(UnknownVersionError, match="version token-1 has no stage"):
        world.run(step)
    assert (world.store.writes, world.waf.write_attempts) == (0, 0)


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_every_step_does_nothing_for_the_current_version(step: Step) -> None:
    world = World()
    assert world.run(step, token="v0") == StepOutcome(step, "already-current")
    assert (world.store.writes, world.waf.write_attempts) == (0, 0)


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_every_step_refuses_a_version_that_is_not_pending(step: Step) -> None:
    # GIVEN a rotation done: v0 is AWSPREVIOUS
    world = World()
    world.rotate()
    writes = (world.store.writes, world.waf.write_attempts)

    # WHEN/THEN a step for v0 fails
    with pytest.raises(NotPendingError, match="v0 is not AWSPENDING"):
        world.run(step, token="v0")
    assert (world.store.writes, world.waf.write_attempts) == writes


def test_prune_is_not_a_rotation_step() -> None:
    with pytest.raises(ValueError, match="not a rotation step"):
        World().run(Step.PRUNE)


# ---------------------------------------------------------------------- the steps


def test_create_puts_a_new_pending_value_once() -> None:
    # GIVEN a started rotation
    world = World()
    world.store.start_rotation(TOKEN)

    # WHEN createSecret runs twice
    first, second = world.run(Step.CREATE), world.run(Step.CREATE)

    # THEN one value was generated and stored as AWSPENDING on the token's version
    assert (first.outcome, second.outcome) == ("created", "already-created")
    assert world.store.versions[TOKEN] == {"value": NEW, "stages": {PENDING}}
    assert world.store.randoms == [NEWER]
    assert world.accepted() == {p(OLD)}


def test_set_accepts_exactly_current_and_pending_dropping_strays() -> None:
    # GIVEN a set that also holds an abandoned value and an operator's entry, long after the
    # last rotation's grace period
    world = World()
    world.waf.patterns = [p(OLD), p("abandoned"), "^operator$"]
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)

    # WHEN setSecret runs twice
    first, second = world.run(Step.SET), world.run(Step.SET)

    # THEN the set is exactly {AWSCURRENT, AWSPENDING}, written once
    assert first == StepOutcome(Step.SET, "set", 2)
    assert second == StepOutcome(Step.SET, "already-set", 2)
    assert world.waf.patterns == [p(OLD), p(NEW)]
    assert world.waf.write_attempts == 1


def test_set_without_a_pending_value_fails() -> None:
    world = World()
    world.store.start_rotation(TOKEN)
    with pytest.raises(MissingValueError, match="no value for version token-1"):
        world.run(Step.SET)
    assert world.waf.write_attempts == 0


def test_set_keeps_the_previous_value_while_its_grace_period_runs() -> None:
    # GIVEN a rotation finished at T0, and another starting 60 s later
    world = World()
    world.rotate()
    world.store.start_rotation(TOKEN_2)
    world.run(Step.CREATE, TOKEN_2, T0 + timedelta(seconds=60))

    # WHEN setSecret runs
    outcome = world.run(Step.SET, TOKEN_2, T0 + timedelta(seconds=60))

    # THEN the previous value (still in warm proxies) stays next to current and pending
    assert outcome == StepOutcome(Step.SET, "set", 3)
    assert world.accepted() == {p(OLD), p(NEW), p(NEWER)}


def test_set_drops_the_previous_value_after_its_grace_period() -> None:
    # GIVEN a rotation finished at T0 and never pruned, and another starting after the grace
    world = World()
    world.rotate()
    later = T0 + GRACE
    world.store.start_rotation(TOKEN_2)
    world.run(Step.CREATE, TOKEN_2, later)

    # WHEN setSecret runs
    world.run(Step.SET, TOKEN_2, later)

    # THEN only the current and the pending value are accepted
    assert world.accepted() == {p(NEW), p(NEWER)}


@pytest.mark.parametrize("missing", [OLD, NEW])
def test_test_secret_fails_when_the_set_misses_a_value(missing: str) -> None:
    world = World()
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.run(Step.SET)
    world.waf.patterns.remove(p(missing))
    with pytest.raises(PatternSetMismatchError, match="does not accept"):
        world.run(Step.TEST)


def test_test_secret_runs_the_canary_with_the_pending_value() -> None:
    # GIVEN a canary and a set rotation
    world = World(canary=FakeCanary())
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.run(Step.SET)

    # WHEN testSecret runs
    outcome = world.run(Step.TEST)

    # THEN the canary was asked to use the pending value
    assert outcome == StepOutcome(Step.TEST, "tested", 2)
    assert world.canary is not None and world.canary.checked == [NEW]


@pytest.mark.parametrize(
    ("canary", "expected_sleeps"), [(None, [60.0]), (FakeCanary(), [])], ids=["alone", "canary"]
)
def test_test_secret_waits_for_waf_propagation_unless_a_canary_checks_it(
    canary: FakeCanary | None, expected_sleeps: list[float]
) -> None:
    # GIVEN a rotation whose pattern set already accepts the pending value
    world = World(canary=canary, propagation_seconds=60.0)
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.run(Step.SET)
    assert world.sleeps == []

    # WHEN testSecret runs
    world.run(Step.TEST)

    # THEN without a canary it waits the propagation time before finishSecret may run; a
    # canary instead retries a real request until WAF accepts the value
    assert world.sleeps == expected_sleeps


def test_a_failing_canary_fails_test_secret() -> None:
    world = World(canary=FakeCanary(fails=True))
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.run(Step.SET)
    with pytest.raises(CanaryFailedError):
        world.run(Step.TEST)


def test_finish_moves_current_records_the_time_and_keeps_the_old_value() -> None:
    # GIVEN a tested rotation
    world = World()
    world.store.start_rotation(TOKEN)
    for step in (Step.CREATE, Step.SET, Step.TEST):
        world.run(step)

    # WHEN finishSecret runs at T0 + 5 s
    outcome = world.run(Step.FINISH, now=T0 + timedelta(seconds=5))

    # THEN the token is AWSCURRENT, v0 AWSPREVIOUS, both values accepted, the time recorded
    assert outcome == StepOutcome(Step.FINISH, "finished", 2)
    assert world.store.versions["v0"]["stages"] == {PREVIOUS}
    assert world.store.versions[TOKEN]["stages"] == {CURRENT, PENDING}
    assert world.accepted() == {p(OLD), p(NEW)}
    assert world.store.marker == RotationMarker(TOKEN, T0 + timedelta(seconds=5))


def test_finish_refuses_to_make_current_a_value_the_set_rejects() -> None:
    # GIVEN a set that lost the pending value after testSecret
    world = World()
    world.store.start_rotation(TOKEN)
    for step in (Step.CREATE, Step.SET, Step.TEST):
        world.run(step)
    world.waf.patterns = [p(OLD)]

    # WHEN/THEN finishSecret fails and AWSCURRENT stays
    with pytest.raises(PatternSetMismatchError, match="refusing"):
        world.run(Step.FINISH)
    assert world.store.value(CURRENT) == OLD


def test_finish_survives_a_failure_to_record_the_time() -> None:
    # GIVEN a secret whose tags cannot be written
    world = World()
    world.store.marker_fails = True
    world.store.start_rotation(TOKEN)
    for step in (Step.CREATE, Step.SET, Step.TEST):
        world.run(step)

    # WHEN finishSecret runs
    outcome = world.run(Step.FINISH)

    # THEN the rotation is done, without a marker (the prune will record one)
    assert outcome.outcome == "finished"
    assert world.store.value(CURRENT) == NEW
    assert world.store.marker is None


# ---------------------------------------------------------------------- LockToken


@pytest.mark.parametrize("conflicts", [1, 4])
def test_a_stale_lock_token_is_retried_with_backoff(conflicts: int) -> None:
    # GIVEN a set that someone else changes before our first `conflicts` writes
    world = World()
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.waf.concurrent_writes = conflicts

    # WHEN setSecret runs
    outcome = world.run(Step.SET)

    # THEN it re-read and retried, pausing with exponential backoff between attempts
    assert outcome.outcome == "set"
    assert world.waf.write_attempts == conflicts + 1
    assert world.sleeps == [0.2, 0.4, 0.8, 1.6][:conflicts]
    assert world.accepted() == {p(OLD), p(NEW)}


def test_a_conflict_that_never_clears_fails_after_the_bound() -> None:
    # GIVEN a set that changes before every write
    world = World()
    world.store.start_rotation(TOKEN)
    world.run(Step.CREATE)
    world.waf.concurrent_writes = 1000

    # WHEN/THEN setSecret gives up after five attempts and four pauses
    with pytest.raises(PatternSetConflictError, match="after 5 attempts"):
        world.run(Step.SET)
    assert world.waf.write_attempts == 5
    assert len(world.sleeps) == 4
    assert world.accepted() == {p(OLD)}


# ---------------------------------------------------------------------- prune


def _rotated_world() -> World:
    world = World()
    world.rotate(now=T0)
    return world


def test_prune_within_the_grace_period_changes_nothing() -> None:
    world = _rotated_world()
    world.waf.write_attempts = 0
    outcome = world.rotation.prune(T0 + GRACE - timedelta(seconds=1))
    assert outcome == StepOutcome(
        Step.PRUNE, "within-grace", 2, {"pruneNotBefore": "2030-01-01T00:15:00Z"}
    )
    assert world.accepted() == {p(OLD), p(NEW)}
    assert world.waf.write_attempts == 0


def test_prune_after_the_grace_period_keeps_only_current() -> None:
    world = _rotated_world()
    world.waf.write_attempts = 0
    first = world.rotation.prune(T0 + GRACE)
    second = world.rotation.prune(T0 + GRACE + timedelta(hours=1))
    assert first == StepOutcome(Step.PRUNE, "pruned", 1)
    assert second == StepOutcome(Step.PRUNE, "nothing-to-prune", 1)
    assert world.waf.patterns == [p(NEW)]
    assert world.waf.write_attempts == 1


def test_prune_during_a_rotation_changes_nothing() -> None:
    # GIVEN a long-finished rotation and a new one between createSecret and finishSecret
    world = _rotated_world()
    world.store.start_rotation(TOKEN_2)
    world.run(Step.CREATE, TOKEN_2, T0 + 2 * GRACE)

    # WHEN the prune runs
    outcome = world.rotation.prune(T0 + 2 * GRACE)

    # THEN nothing changes
    assert outcome == StepOutcome(Step.PRUNE, "rotation-in-progress", 2)
    assert world.accepted() == {p(OLD), p(NEW)}


def test_prune_without_a_marker_for_the_current_version_starts_the_grace_period() -> None:
    # GIVEN a rotation whose finishSecret could not record its time
    world = World()
    world.store.marker_fails = True
    world.rotate(now=T0)
    world.store.marker_fails = False
    found = T0 + timedelta(days=3)

    # WHEN the prune runs days later, and again
    first = world.rotation.prune(found)
    second = world.rotation.prune(found + GRACE - timedelta(seconds=1))
    third = world.rotation.prune(found + GRACE)

    # THEN the first records "now" as the start of the grace period and prunes nothing
    assert first.outcome == "marker-recorded"
    assert world.store.marker == RotationMarker(TOKEN, found)
    assert second.outcome == "within-grace"
    assert third.outcome == "pruned"
    assert world.waf.patterns == [p(NEW)]


def test_prune_re_adds_a_missing_current_value_without_removing_anything() -> None:
    # GIVEN a set within the grace period that lost the current value
    world = _rotated_world()
    world.waf.patterns = [p(OLD)]

    # WHEN the prune runs within the grace period
    outcome = world.rotation.prune(T0 + timedelta(seconds=10))

    # THEN the current value is back and the previous one stays
    assert outcome.outcome == "within-grace"
    assert world.waf.patterns == [p(OLD), p(NEW)]


def test_prune_retries_a_stale_lock_token() -> None:
    world = _rotated_world()
    world.waf.write_attempts = 0
    world.waf.concurrent_writes = 1
    assert world.rotation.prune(T0 + GRACE).outcome == "pruned"
    assert world.waf.write_attempts == 2
    assert world.waf.patterns == [p(NEW)]


def test_the_outcome_as_the_handler_returns_it() -> None:
    outcome = StepOutcome(Step.PRUNE, "within-grace", 2, {"pruneNotBefore": "x"})
    assert outcome.as_dict() == {
        "step": "prune",
        "outcome": "within-grace",
        "acceptedValues": 2,
        "pruneNotBefore": "x",
    }
    assert StepOutcome(Step.CREATE, "created").as_dict() == {
        "step": "createSecret",
        "outcome": "created",
    }
