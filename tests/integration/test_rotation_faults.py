"""The rotator when things go wrong, through its Lambda handler on moto: WAF unavailable during
setSecret (the step fails, nothing is half-written, and Secrets Manager's retry of the rotation
succeeds), the pattern set gone, and the guards (rotation disabled, an unknown
ClientRequestToken): a clear error and nothing changed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from rotator import app
from rotator.errors import (
    PatternSetUnavailableError,
    RotationNotEnabledError,
    UnknownVersionError,
)
from tests.fakes.aws_faults import WAF_INTERNAL_ERROR, AwsFaults, install
from tests.fakes.clock import ROTATION_T0, FakeClock
from tests.integration.rotation_harness import RotationWorld, build_world

TOKEN = "5c1f0a3e-7d2b-4e8a-9f10-2b3c4d5e6f70"
UNKNOWN_TOKEN = "00000000-0000-4000-8000-000000000000"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
#: The rotator's clients try each call this many times (botocore's max_attempts + 1).
WAF_ATTEMPTS = app._BOTO_CONFIG.retries["max_attempts"] + 1  # type: ignore[index]


@pytest.fixture(autouse=True)
def debug_logs_checked_too(caplog: pytest.LogCaptureFixture) -> None:
    """The suite's log guard sees this module's DEBUG records as well."""
    caplog.set_level(logging.DEBUG, logger=app.logger.name)


def pattern(value: str) -> str:
    return f"^{value}$"


@pytest.fixture
def faults(aws: None, monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    return install(monkeypatch)


def configure(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> RotationWorld:
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app, "clock", FakeClock(ROTATION_T0).utc)
    # Powertools reads these at import; in Lambda the environment is set before that
    monkeypatch.setattr(app.metrics, "namespace", "CognitoTokenProxy")
    monkeypatch.setattr(app.metrics, "service", "origin-secret-rotator")
    app.reset()
    return world


@pytest.fixture
def world(faults: AwsFaults, monkeypatch: pytest.MonkeyPatch) -> Iterator[RotationWorld]:
    yield configure(build_world(), monkeypatch)
    app.reset()


# ---------------------------------------------------------------------- WAF unavailable


@pytest.mark.parametrize("failing", ["wafv2.UpdateRegexPatternSet", "wafv2.GetRegexPatternSet"])
def test_waf_unavailable_during_set_secret_fails_the_step_and_its_retry_succeeds(
    failing: str, world: RotationWorld, faults: AwsFaults
) -> None:
    # GIVEN a rotation whose pending value exists
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    current, pending = world.value("AWSCURRENT"), world.value("AWSPENDING")
    before = world.state()
    # AND WAF failing every call of one kind with an internal error
    faults.attempts.clear()
    faults.errors[failing] = WAF_INTERNAL_ERROR

    # WHEN setSecret runs
    with pytest.raises(PatternSetUnavailableError, match="RegexPatternSet failed"):
        world.step("setSecret", TOKEN)

    # THEN the call was tried as often as the client's retry policy allows, no more
    assert faults.attempts[failing] == WAF_ATTEMPTS
    # AND nothing changed: the secret's stages and values, the set and its LockToken
    faults.clear()
    assert world.state() == before
    assert world.patterns() == [pattern(current)]

    # WHEN WAF is back and Secrets Manager retries the rotation from createSecret
    for step in STEPS:
        world.step(step, TOKEN)
    world.complete_rotation(TOKEN)

    # THEN the rotation completed: the new value is current and both values are accepted
    assert world.value("AWSCURRENT") == pending
    assert sorted(world.patterns()) == sorted([pattern(current), pattern(pending)])


def test_waf_refusing_connections_during_set_secret_fails_the_step_and_its_retry_succeeds(
    world: RotationWorld, faults: AwsFaults
) -> None:
    # GIVEN a rotation whose pending value exists, and WAF unreachable
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    before = world.state()
    faults.attempts.clear()
    faults.refused.add("wafv2")
    # WHEN setSecret runs
    # THEN it fails after the bounded attempts, having written nothing
    with pytest.raises(PatternSetUnavailableError):
        world.step("setSecret", TOKEN)
    assert faults.count("wafv2") == WAF_ATTEMPTS
    faults.clear()
    assert world.state() == before
    # AND its retry succeeds once WAF is back
    assert world.step("setSecret", TOKEN)["outcome"] == "set"
    assert world.accepts(world.value("AWSPENDING"))
    assert world.accepts(world.value("AWSCURRENT"))


def test_a_deleted_pattern_set_fails_set_secret_clearly_and_changes_no_secret(
    world: RotationWorld,
) -> None:
    # GIVEN a rotation whose pending value exists, and the pattern set deleted underneath
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    stages, current = world.stages(), world.value("AWSCURRENT")
    lock_token = world.pattern_set()["lock_token"]
    world.waf.delete_regex_pattern_set(
        Name=world.set_name, Scope=world.set_scope, Id=world.set_id, LockToken=lock_token
    )
    # WHEN setSecret (and Secrets Manager's retries of it) run
    # THEN each fails naming the pattern set, and the secret stays as it was
    for _ in range(2):
        with pytest.raises(PatternSetUnavailableError, match=world.set_name):
            world.step("setSecret", TOKEN)
    assert world.stages() == stages
    assert world.value("AWSCURRENT") == current
    # AND finishSecret cannot make the pending value current without a set that accepts it
    with pytest.raises(PatternSetUnavailableError):
        world.step("finishSecret", TOKEN)
    assert world.value("AWSCURRENT") == current


# ---------------------------------------------------------------------- the guards


@pytest.mark.parametrize("step", STEPS)
def test_rotation_disabled_is_a_clear_error_and_changes_nothing(
    step: str, faults: AwsFaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a secret without rotation enabled, with a rotation's version already started
    world = configure(build_world(enable_rotation=False), monkeypatch)
    world.start_rotation(TOKEN)
    before = world.state()
    faults.attempts.clear()
    # WHEN a step is invoked
    # THEN it fails saying why, having only read the secret's description, and nothing changed
    with pytest.raises(RotationNotEnabledError, match="rotation is not enabled"):
        world.step(step, TOKEN)
    assert set(faults.attempts) == {"secrets-manager.DescribeSecret"}
    assert world.state() == before
    app.reset()


@pytest.mark.parametrize("step", STEPS)
def test_an_unknown_client_request_token_is_a_clear_error_and_changes_nothing(
    step: str, world: RotationWorld, faults: AwsFaults
) -> None:
    # GIVEN a rotation in progress under another token
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    before = world.state()
    faults.attempts.clear()
    # WHEN a step names a version the secret does not have
    # THEN it fails naming that version, having only read the secret's description
    with pytest.raises(UnknownVersionError, match=UNKNOWN_TOKEN):
        world.step(step, UNKNOWN_TOKEN)
    assert set(faults.attempts) == {"secrets-manager.DescribeSecret"}
    assert world.state() == before
