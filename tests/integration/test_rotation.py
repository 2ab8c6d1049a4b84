"""The rotator on moto (Secrets Manager, WAFv2), driven step by step through its Lambda handler
as Secrets Manager drives it: a full rotation, idempotency, crashes and retries, concurrent
pattern-set writes, the prune, the guards, metrics and logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from rotator import app
from rotator.errors import (
    MissingValueError,
    NotPendingError,
    PatternSetConflictError,
    PatternSetMismatchError,
    RotationNotEnabledError,
    UnknownVersionError,
    UnsupportedEventError,
    WrongSecretError,
)
from rotator.secret_store import MARKER_SINCE_TAG, MARKER_VERSION_TAG
from tests.fakes.clock import ROTATION_T0, FakeClock
from tests.integration.rotation_harness import (
    RotationWorld,
    build_world,
    emf_records,
)

TOKEN = "3b0b8a52-5a1e-4c1e-9d0b-6f1e2d3c4b5a"
TOKEN_2 = "9e8d7c6b-5a49-4837-a261-0f1e2d3c4b5a"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
GRACE = 900


def pattern(value: str) -> str:
    return f"^{value}$"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    virtual = FakeClock(ROTATION_T0)
    monkeypatch.setattr(app, "clock", virtual.utc)
    return virtual


def _configure(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> RotationWorld:
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    # Powertools reads these at import; in Lambda the environment is set before that
    monkeypatch.setattr(app.metrics, "namespace", "CognitoTokenProxy")
    monkeypatch.setattr(app.metrics, "service", "origin-secret-rotator")
    app.reset()
    return world


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[RotationWorld]:
    yield _configure(build_world(grace_seconds=GRACE), monkeypatch)
    app.reset()


class ConcurrentWriter:
    """A wafv2 client whose ``update_regex_pattern_set`` lets someone else write the set first
    (``times`` times), as CloudFormation or an operator might between our read and our write."""

    def __init__(
        self, world: RotationWorld, times: int, writes: Callable[[], list[str]] | None = None
    ) -> None:
        self._world = world
        self._real = world.waf
        self.remaining = times
        self.update_calls = 0
        # by default the other writer resets the set to the current value (a template re-apply)
        self._writes = writes or (lambda: [pattern(world.value("AWSCURRENT"))])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def update_regex_pattern_set(self, **kwargs: Any) -> Any:
        self.update_calls += 1
        if self.remaining > 0:
            self.remaining -= 1
            self._world.write_patterns(self._writes())
        return self._real.update_regex_pattern_set(**kwargs)


def _use_waf_client(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    app.reset()
    monkeypatch.setattr(app, "get_wafv2_client", lambda: client)


# ---------------------------------------------------------------------- the full rotation


def test_full_rotation_moves_stages_and_pattern_set_step_by_step(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN the secret and the pattern set as deployed: one version, its value accepted
    old_version = next(iter(world.stages()))
    old = world.value("AWSCURRENT")
    assert world.stages() == {old_version: {"AWSCURRENT"}}
    assert world.patterns() == [pattern(old)]

    # WHEN Secrets Manager starts a rotation and calls createSecret
    world.start_rotation(TOKEN)
    result = world.step("createSecret", TOKEN)

    # THEN a new alphanumeric value is AWSPENDING and nothing else changed
    new = world.version_value(TOKEN, "AWSPENDING")
    assert result == {"step": "createSecret", "outcome": "created"}
    assert new != old and new.isascii() and new.isalnum() and len(new) == 64
    assert world.stages() == {old_version: {"AWSCURRENT"}, TOKEN: {"AWSPENDING"}}
    assert world.patterns() == [pattern(old)]

    # WHEN setSecret runs
    result = world.step("setSecret", TOKEN)

    # THEN the set accepts exactly the current and the pending value; the stages did not move
    assert result == {"step": "setSecret", "outcome": "set", "acceptedValues": 2}
    assert world.patterns() == [pattern(old), pattern(new)]
    assert world.stages() == {old_version: {"AWSCURRENT"}, TOKEN: {"AWSPENDING"}}

    # WHEN testSecret runs
    result = world.step("testSecret", TOKEN)

    # THEN it passes and changes nothing
    assert result == {"step": "testSecret", "outcome": "tested", "acceptedValues": 2}
    assert world.patterns() == [pattern(old), pattern(new)]

    # WHEN finishSecret runs, and Secrets Manager then drops AWSPENDING
    result = world.step("finishSecret", TOKEN)
    stages_after_finish = world.stages()
    world.complete_rotation(TOKEN)

    # THEN the new version is AWSCURRENT, the old one AWSPREVIOUS, both values still accepted,
    # and the time of the move is recorded on the secret
    assert result == {"step": "finishSecret", "outcome": "finished", "acceptedValues": 2}
    assert stages_after_finish == {
        old_version: {"AWSPREVIOUS"},
        TOKEN: {"AWSCURRENT", "AWSPENDING"},
    }
    assert world.stages() == {old_version: {"AWSPREVIOUS"}, TOKEN: {"AWSCURRENT"}}
    assert world.value("AWSCURRENT") == new
    assert world.value("AWSPREVIOUS") == old
    assert world.patterns() == [pattern(old), pattern(new)]
    assert world.tags() == {
        MARKER_VERSION_TAG: TOKEN,
        MARKER_SINCE_TAG: clock.utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_every_step_run_twice_is_a_no_op_the_second_time(world: RotationWorld) -> None:
    # GIVEN a rotation started by Secrets Manager
    world.start_rotation(TOKEN)
    second_outcomes = {}
    for step in STEPS:
        # WHEN a step runs, and then runs again
        world.step(step, TOKEN)
        before = world.state()
        second_outcomes[step] = world.step(step, TOKEN)["outcome"]

        # THEN the second run wrote nothing: same values, stages, tags, set and LockToken
        assert world.state() == before, step
    assert second_outcomes == {
        "createSecret": "already-created",
        "setSecret": "already-set",
        "testSecret": "tested",
        "finishSecret": "already-current",
    }


def _expected_final_state(world: RotationWorld, old_version: str, old: str, new: str) -> None:
    assert world.stages() == {old_version: {"AWSPREVIOUS"}, TOKEN: {"AWSCURRENT"}}
    assert world.value("AWSCURRENT") == new
    assert world.value("AWSPREVIOUS") == old
    assert sorted(world.patterns()) == sorted([pattern(old), pattern(new)])


@pytest.mark.parametrize("steps_done", [1, 2, 3])
def test_a_crash_between_steps_then_a_retry_from_the_start_completes(
    world: RotationWorld, steps_done: int
) -> None:
    # GIVEN a rotation that crashed after its first `steps_done` steps
    old_version, old = next(iter(world.stages())), world.value("AWSCURRENT")
    world.start_rotation(TOKEN)
    for step in STEPS[:steps_done]:
        world.step(step, TOKEN)
    new = world.version_value(TOKEN, "AWSPENDING")

    # WHEN Secrets Manager retries the whole rotation with the same token
    outcomes = [world.step(step, TOKEN)["outcome"] for step in STEPS]
    world.complete_rotation(TOKEN)

    # THEN it completes with the value created the first time
    assert outcomes[0] == "already-created"
    assert outcomes[3] == "finished"
    _expected_final_state(world, old_version, old, new)
    assert world.tags()[MARKER_VERSION_TAG] == TOKEN


class CrashAfterStageMove:
    """A Secrets Manager client whose TagResource never returns (the function died right after
    moving AWSCURRENT, before recording the time)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def tag_resource(self, **kwargs: Any) -> Any:
        raise TimeoutError("Task timed out")


def test_a_crash_after_the_stage_move_is_retried_and_the_prune_waits_a_full_grace_period(
    world: RotationWorld, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a finishSecret that died right after moving AWSCURRENT (no time recorded)
    old_version, old = next(iter(world.stages())), world.value("AWSCURRENT")
    world.start_rotation(TOKEN)
    for step in STEPS[:3]:
        world.step(step, TOKEN)
    new = world.version_value(TOKEN, "AWSPENDING")
    crashing = CrashAfterStageMove(world.sm)
    real_factory = app.get_secretsmanager_client
    app.reset()
    monkeypatch.setattr(app, "get_secretsmanager_client", lambda: crashing)
    with pytest.raises(TimeoutError):
        world.step("finishSecret", TOKEN)
    monkeypatch.setattr(app, "get_secretsmanager_client", real_factory)
    app.reset()

    # WHEN Secrets Manager retries the rotation and then the schedule prunes, much later
    outcomes = [world.step(step, TOKEN)["outcome"] for step in STEPS]
    world.complete_rotation(TOKEN)
    after_retry_tags = world.tags()
    _expected_final_state(world, old_version, old, new)
    clock.advance(3 * 3600)
    first = world.prune()
    clock.advance(GRACE - 1)
    second = world.prune()
    clock.advance(1)
    third = world.prune()

    # THEN the retry is a no-op, the first prune starts the grace period instead of pruning,
    # and only a full grace period later is the old value dropped
    assert outcomes == ["already-current"] * 4
    assert after_retry_tags == {}
    assert first["outcome"] == "marker-recorded"
    assert world.tags()[MARKER_VERSION_TAG] == TOKEN
    assert second["outcome"] == "within-grace"
    assert third == {"step": "prune", "outcome": "pruned", "acceptedValues": 1}
    assert world.patterns() == [pattern(new)]


# ---------------------------------------------------------------------- concurrent writers


def test_a_stale_lock_token_is_re_read_and_retried(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a pending value, and someone who rewrites the set between our read and our write
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    old, new = world.value("AWSCURRENT"), world.version_value(TOKEN, "AWSPENDING")
    world.write_patterns([pattern(old), "^operator-added$"])
    writer = ConcurrentWriter(world, times=1)
    _use_waf_client(monkeypatch, writer)
    capsys.readouterr()

    # WHEN setSecret runs
    result = world.step("setSecret", TOKEN)

    # THEN the first write failed on the LockToken, the second (from a fresh read) succeeded,
    # and the set is exactly {AWSCURRENT, AWSPENDING}
    assert result == {"step": "setSecret", "outcome": "set", "acceptedValues": 2}
    assert writer.update_calls == 2
    assert world.patterns() == [pattern(old), pattern(new)]
    (emf,) = list(emf_records(capsys.readouterr().out))
    assert emf["PatternSetLockConflict"] == [1.0]
    assert emf["RotationStepSucceeded"] == [1.0]


def test_a_conflict_that_never_clears_fails_loudly_after_the_bound(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a pending value and a set that changes before every one of our writes
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    new = world.version_value(TOKEN, "AWSPENDING")
    writer = ConcurrentWriter(world, times=1000)
    _use_waf_client(monkeypatch, writer)
    capsys.readouterr()

    # WHEN setSecret runs
    with pytest.raises(PatternSetConflictError, match="after 5 attempts"):
        world.step("setSecret", TOKEN)

    # THEN it tried exactly the bound, never got the pending value in, and reported the failure
    assert writer.update_calls == 5
    assert pattern(new) not in world.patterns()
    (emf,) = list(emf_records(capsys.readouterr().out))
    assert emf["Step"] == "setSecret"
    assert emf["RotationStepFailed"] == [1.0]
    assert emf["PatternSetLockConflict"] == [1.0] * 5
    assert "RotationStepSucceeded" not in emf

    # AND testSecret and finishSecret refuse to go on; Secrets Manager's retry then succeeds
    with pytest.raises(PatternSetMismatchError):
        world.step("testSecret", TOKEN)
    with pytest.raises(PatternSetMismatchError):
        world.step("finishSecret", TOKEN)
    assert world.value("AWSCURRENT") != new
    _use_waf_client(monkeypatch, world.waf)
    assert [world.step(step, TOKEN)["outcome"] for step in STEPS] == [
        "already-created",
        "set",
        "tested",
        "finished",
    ]


def test_prune_retries_a_stale_lock_token(
    world: RotationWorld, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a finished rotation past its grace period and a concurrent writer (who adds a value)
    world.rotate(TOKEN)
    new = world.value("AWSCURRENT")
    clock.advance(GRACE)
    writer = ConcurrentWriter(world, times=1, writes=lambda: [*world.patterns(), "^operator$"])
    _use_waf_client(monkeypatch, writer)

    # WHEN the prune runs
    result = world.prune()

    # THEN it re-read, retried, and pruned
    assert result == {"step": "prune", "outcome": "pruned", "acceptedValues": 1}
    assert writer.update_calls == 2
    assert world.patterns() == [pattern(new)]


# ---------------------------------------------------------------------- prune


def test_prune_before_the_grace_period_changes_nothing(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN a rotation that finished GRACE - 1 seconds ago
    old = world.value("AWSCURRENT")
    world.rotate(TOKEN)
    new = world.value("AWSCURRENT")
    finished = clock.utc()
    clock.advance(GRACE - 1)
    before = world.state()

    # WHEN the prune runs
    result = world.prune()

    # THEN nothing changed and the answer says when the prune will act
    assert result == {
        "step": "prune",
        "outcome": "within-grace",
        "acceptedValues": 2,
        "pruneNotBefore": (finished + timedelta(seconds=GRACE)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert world.state() == before
    assert world.patterns() == [pattern(old), pattern(new)]


def test_prune_after_the_grace_period_keeps_only_the_current_value_and_is_idempotent(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN a rotation that finished exactly GRACE seconds ago
    world.rotate(TOKEN)
    new = world.value("AWSCURRENT")
    clock.advance(GRACE)

    # WHEN the prune runs, twice
    first = world.prune()
    after_first = world.state()
    second = world.prune()

    # THEN only AWSCURRENT is accepted; the second run changes nothing; the secret is untouched
    assert first == {"step": "prune", "outcome": "pruned", "acceptedValues": 1}
    assert second == {"step": "prune", "outcome": "nothing-to-prune", "acceptedValues": 1}
    assert world.patterns() == [pattern(new)]
    assert world.state() == after_first
    assert world.value("AWSCURRENT") == new


def test_prune_during_a_rotation_changes_nothing(world: RotationWorld, clock: FakeClock) -> None:
    # GIVEN a first rotation long finished but not yet pruned, and a second one in progress
    first_old = world.value("AWSCURRENT")
    world.rotate(TOKEN)
    first_new = world.value("AWSCURRENT")
    clock.advance(2 * GRACE)
    world.start_rotation(TOKEN_2)
    world.step("createSecret", TOKEN_2)
    second_new = world.version_value(TOKEN_2, "AWSPENDING")
    for_each_stage = {}
    for step in ("setSecret", "testSecret"):
        if step == "setSecret":
            world.step(step, TOKEN_2)
        before = world.state()

        # WHEN the prune runs while the rotation is in progress
        for_each_stage[step] = world.prune()

        # THEN it changes nothing
        assert world.state() == before
    assert {r["outcome"] for r in for_each_stage.values()} == {"rotation-in-progress"}
    # (setSecret already dropped the first rotation's old value: its grace period was over)
    assert sorted(world.patterns()) == sorted([pattern(first_new), pattern(second_new)])
    assert pattern(first_old) not in world.patterns()


def test_prune_on_a_fresh_deployment_has_nothing_to_do(world: RotationWorld) -> None:
    # GIVEN the secret and the set as deployed
    before = world.state()

    # WHEN the prune runs
    result = world.prune()

    # THEN nothing changes
    assert result == {"step": "prune", "outcome": "nothing-to-prune", "acceptedValues": 1}
    assert world.state() == before


def test_prune_re_adds_the_current_value_when_the_set_lost_it(world: RotationWorld) -> None:
    # GIVEN a set that someone emptied of the current value
    current = world.value("AWSCURRENT")
    world.write_patterns(["^someone-else$"])

    # WHEN the prune runs (no rotation marker yet)
    result = world.prune()

    # THEN the current value is accepted again and nothing is removed
    assert result["outcome"] == "marker-recorded"
    assert world.patterns() == ["^someone-else$", pattern(current)]


def test_a_rotation_soon_after_another_keeps_the_value_warm_proxies_may_hold(
    world: RotationWorld, clock: FakeClock
) -> None:
    # GIVEN a rotation that finished 30 seconds ago (proxies may still send the old value)
    first_old = world.value("AWSCURRENT")
    world.rotate(TOKEN)
    first_new = world.value("AWSCURRENT")
    clock.advance(30)

    # WHEN a second rotation runs right away
    world.start_rotation(TOKEN_2)
    world.step("createSecret", TOKEN_2)
    set_result = world.step("setSecret", TOKEN_2)
    second_new = world.version_value(TOKEN_2, "AWSPENDING")

    # THEN setSecret keeps the first rotation's old value next to AWSCURRENT and AWSPENDING,
    assert set_result["acceptedValues"] == 3
    assert sorted(world.patterns()) == sorted(
        [pattern(first_old), pattern(first_new), pattern(second_new)]
    )
    # AND once the second rotation finished and its grace period passed, only it remains
    world.step("testSecret", TOKEN_2)
    world.step("finishSecret", TOKEN_2)
    world.complete_rotation(TOKEN_2)
    clock.advance(GRACE)
    assert world.prune()["outcome"] == "pruned"
    assert world.patterns() == [pattern(second_new)]


# ---------------------------------------------------------------------- guards and events


def test_guards_reject_what_the_rotation_template_rejects(
    aws: None, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # GIVEN a secret without rotation enabled
    world = _configure(build_world(enable_rotation=False), monkeypatch)
    world.start_rotation(TOKEN)

    # WHEN/THEN any step fails: rotation is not enabled
    with pytest.raises(RotationNotEnabledError):
        world.step("createSecret", TOKEN)

    # GIVEN rotation enabled
    world.enable_rotation()
    current_version = next(v for v, s in world.stages().items() if "AWSCURRENT" in s)

    # WHEN/THEN a token that is no version fails
    with pytest.raises(UnknownVersionError):
        world.step("createSecret", "00000000-0000-4000-8000-000000000000")
    # WHEN/THEN a step for the current version does nothing
    before = world.state()
    assert world.step("setSecret", current_version) == {
        "step": "setSecret",
        "outcome": "already-current",
    }
    assert world.state() == before

    # WHEN/THEN a version that is neither current nor pending fails
    world.rotate(TOKEN)
    with pytest.raises(NotPendingError):
        world.step("createSecret", current_version)  # now AWSPREVIOUS


def test_the_handler_refuses_another_secret_and_unknown_events(
    world: RotationWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an event for another secret, and events that are nothing we know
    other = world.sm.create_secret(Name="another-secret", SecretString="x" * 64)["ARN"]
    world.start_rotation(TOKEN)
    before = world.state()
    capsys.readouterr()

    # WHEN/THEN they fail without touching anything, each counted as a failed step
    with pytest.raises(WrongSecretError):
        world.invoke({"Step": "createSecret", "SecretId": other, "ClientRequestToken": TOKEN})
    with pytest.raises(UnsupportedEventError):
        world.invoke({"action": "rotate-everything"})
    with pytest.raises(UnsupportedEventError):
        world.invoke(
            {"Step": "deleteSecret", "SecretId": world.secret_arn, "ClientRequestToken": TOKEN}
        )
    assert world.state() == before
    emfs = list(emf_records(capsys.readouterr().out))
    assert [(e["Step"], e["RotationStepFailed"]) for e in emfs] == [
        ("createSecret", [1.0]),
        ("unknown", [1.0]),
        ("unknown", [1.0]),
    ]


def test_a_failed_step_is_raised_for_secrets_manager_and_counted(
    world: RotationWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN setSecret called before createSecret (no pending value yet)
    world.start_rotation(TOKEN)
    capsys.readouterr()

    # WHEN it runs
    with pytest.raises(MissingValueError, match=f"no value for version {TOKEN}"):
        world.step("setSecret", TOKEN)

    # THEN it failed loudly and one RotationStepFailed metric was emitted for setSecret
    (emf,) = list(emf_records(capsys.readouterr().out))
    assert emf["Step"] == "setSecret"
    assert emf["RotationStepFailed"] == [1.0]
    assert emf["service"] == "origin-secret-rotator"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CognitoTokenProxy"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Step", "service"]]


def test_no_log_line_or_metric_carries_a_secret_value(
    world: RotationWorld,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a whole rotation, a failure, and a prune, with everything they print captured
    old = world.value("AWSCURRENT")
    world.rotate(TOKEN)
    with pytest.raises(NotPendingError):
        world.step("setSecret", next(v for v, s in world.stages().items() if "AWSPREVIOUS" in s))
    clock.advance(GRACE)
    world.prune()
    new = world.value("AWSCURRENT")

    # THEN neither value appears anywhere in the output
    out, err = capsys.readouterr()
    printed = out + err + caplog.text
    assert "step completed" in printed
    assert old not in printed
    assert new not in printed


def test_clients_are_created_once_per_container_and_not_at_import(world: RotationWorld) -> None:
    # GIVEN a new container (nothing cached)
    app.reset()
    assert app.get_secretsmanager_client.cache_info().currsize == 0
    assert app.get_wafv2_client.cache_info().currsize == 0

    # WHEN two invocations run
    world.prune()
    world.prune()

    # THEN each client and the rotation were built once
    assert app.get_secretsmanager_client.cache_info().misses == 1
    assert app.get_wafv2_client.cache_info().misses == 1
    assert app.get_rotation.cache_info().misses == 1
    assert app.get_rotation.cache_info().hits == 1


def test_the_rotator_writes_only_the_tags_its_policy_allows(world: RotationWorld) -> None:
    # GIVEN a secret with a tag of its own (e.g. a stack tag)
    world.sm.tag_resource(SecretId=world.secret_arn, Tags=[{"Key": "team", "Value": "platform"}])

    # WHEN a rotation runs
    world.rotate(TOKEN)

    # THEN the rotator added exactly the two marker keys template.yaml's policy allows
    assert world.tags() == {
        "team": "platform",
        MARKER_VERSION_TAG: TOKEN,
        MARKER_SINCE_TAG: "2030-01-01T12:00:00Z",
    }
