"""Secrets Manager's test of the rotation configuration, on moto's own RotateSecret shapes.

When the template's RotationSchedule is created (RotateImmediatelyOnUpdate false), Secrets
Manager runs only testSecret, on an AWSPENDING version it creates for the test: without a
value, or with AWSCURRENT's. The rotator must pass it at once (no propagation wait, no
canary, no failure metric, nothing written), while a real rotation's testSecret stays as strict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from rotator import app
from rotator.errors import MissingValueError, PatternSetMismatchError
from rotator.model import CURRENT, PENDING, accepted_pattern
from rotator.pattern_set import WafRegexPatternSet
from rotator.secret_store import SecretsManagerStore
from rotator.steps import OriginSecretRotation
from tests.integration.rotation_harness import RotationWorld, build_world, emf_records

TOKEN = "5f0c7a1e-2b3d-4c5e-8f90-a1b2c3d4e5f6"
PROPAGATION_SECONDS = 60


class RecordingCanary:
    def __init__(self) -> None:
        self.checked: list[str] = []

    def check(self, origin_value: str) -> None:
        self.checked.append(origin_value)


class RecordingSleep:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[RotationWorld]:
    built = build_world(enable_rotation=False)
    for name, value in built.environment().items():
        monkeypatch.setenv(name, value)
    # the deployed default: a real testSecret would wait a minute for WAF to propagate
    monkeypatch.setenv("WAF_PROPAGATION_SECONDS", str(PROPAGATION_SECONDS))
    monkeypatch.setattr(app.metrics, "namespace", "CognitoTokenProxy")
    monkeypatch.setattr(app.metrics, "service", "origin-secret-rotator")
    app.reset()
    yield built
    app.reset()


def configuration_test_version(world: RotationWorld, *, value: str) -> str:
    """What the RotationSchedule's RotateSecret (RotateImmediately false) leaves for testSecret:
    rotation enabled and an AWSPENDING version for the test, with no value or with AWSCURRENT's
    (moto's own RotateSecret copies AWSCURRENT's value the same way, but without a Lambda ARN
    it also moves AWSCURRENT, and with one it needs Docker, so the harness plays this part)."""
    world.enable_rotation()
    world.start_rotation(TOKEN)
    if value != "absent":
        version = world._moto_secret().versions[TOKEN]
        version["secret_string"] = world.value(CURRENT)
    return TOKEN


def rotation(
    world: RotationWorld, canary: RecordingCanary | None = None
) -> tuple[OriginSecretRotation, RecordingSleep]:
    """The rotator's steps over moto's Secrets Manager and WAFv2, with a recording sleep."""
    sleep = RecordingSleep()
    steps = OriginSecretRotation(
        SecretsManagerStore(world.sm, world.secret_arn),
        WafRegexPatternSet(world.waf, world.set_name, world.set_id, "REGIONAL"),
        grace=timedelta(seconds=900),
        canary=canary,
        propagation_seconds=PROPAGATION_SECONDS,
        sleep=sleep,
    )
    return steps, sleep


@pytest.mark.parametrize("value", ["same-as-current", "absent"])
def test_the_configuration_test_passes_at_once_through_the_handler(
    world: RotationWorld, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the AWSPENDING version Secrets Manager creates to test the configuration
    token = configuration_test_version(world, value=value)
    pending = world.sm.describe_secret(SecretId=world.secret_arn)["VersionIdsToStages"][token]
    assert pending == ["AWSPENDING"]
    if value == "absent":
        with pytest.raises(world.sm.exceptions.ResourceNotFoundException):
            world.version_value(token, "AWSPENDING")
    else:
        assert world.version_value(token, "AWSPENDING") == world.value("AWSCURRENT")
    before = world.state()
    capsys.readouterr()

    # WHEN Secrets Manager invokes testSecret (the deployed 60 s propagation wait configured)
    started = time.monotonic()
    result = world.step("testSecret", token)
    elapsed = time.monotonic() - started

    # THEN it succeeds at once, writes nothing and reports success, not failure
    assert result == {"step": "testSecret", "outcome": "configuration-tested"}
    assert elapsed < PROPAGATION_SECONDS / 4
    assert world.state() == before
    (emf,) = list(emf_records(capsys.readouterr().out))
    assert emf["Step"] == "testSecret"
    assert emf["RotationStepSucceeded"] == [1.0]
    assert "RotationStepFailed" not in emf


@pytest.mark.parametrize("value", ["same-as-current", "absent"])
def test_the_configuration_test_neither_waits_nor_runs_the_canary(
    world: RotationWorld, value: str
) -> None:
    # GIVEN the configuration test's version, and a rotator with a canary and a 60 s wait
    token = configuration_test_version(world, value=value)
    canary = RecordingCanary()
    steps, sleep = rotation(world, canary)
    lock_token = world.pattern_set()["lock_token"]

    # WHEN testSecret runs
    outcome = steps.run(app.ROTATION_STEPS["testSecret"], token, app.utc_now())

    # THEN it neither waits for WAF nor sends a canary request, and leaves the set alone
    assert outcome.as_dict() == {"step": "testSecret", "outcome": "configuration-tested"}
    assert sleep.seconds == []
    assert canary.checked == []
    assert world.pattern_set()["lock_token"] == lock_token


def real_rotation_until_test(world: RotationWorld, *, set_pattern_set: bool = True) -> str:
    """A rotation's first steps, as Secrets Manager runs them before testSecret."""
    world.enable_rotation()
    world.start_rotation(TOKEN)
    world.step("createSecret", TOKEN)
    if set_pattern_set:
        world.step("setSecret", TOKEN)
    return TOKEN


def test_a_real_rotation_still_waits_for_waf_and_runs_the_canary(world: RotationWorld) -> None:
    # GIVEN a real rotation whose new value the pattern set accepts
    token = real_rotation_until_test(world)
    new = world.version_value(token, PENDING)
    assert new != world.value(CURRENT)
    canary = RecordingCanary()
    with_canary, _ = rotation(world, canary)
    without_canary, sleep = rotation(world)
    step = app.ROTATION_STEPS["testSecret"]

    # WHEN testSecret runs, with a canary and without one
    tested = with_canary.run(step, token, app.utc_now())
    waited = without_canary.run(step, token, app.utc_now())

    # THEN the canary requested a token with the new value, and without it the step waited
    assert tested.outcome == waited.outcome == "tested"
    assert canary.checked == [new]
    assert sleep.seconds == [PROPAGATION_SECONDS]


def test_a_real_rotation_still_fails_when_the_pattern_set_lacks_the_new_value(
    world: RotationWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a real rotation whose setSecret never reached the pattern set
    token = real_rotation_until_test(world, set_pattern_set=False)
    new = world.version_value(token, PENDING)
    assert accepted_pattern(new) not in world.patterns()
    capsys.readouterr()

    # WHEN testSecret runs
    with pytest.raises(PatternSetMismatchError, match="AWSPENDING"):
        world.step("testSecret", token)

    # THEN it failed loudly, with its failure metric
    (emf,) = list(emf_records(capsys.readouterr().out))
    assert emf["RotationStepFailed"] == [1.0]
    assert "RotationStepSucceeded" not in emf


def test_finish_still_refuses_a_pending_version_without_a_value(world: RotationWorld) -> None:
    # GIVEN a pending version with no value (the configuration test's shape)
    token = configuration_test_version(world, value="absent")
    current = world.value(CURRENT)

    # WHEN finishSecret were called for it
    with pytest.raises(MissingValueError, match="no value"):
        world.step("finishSecret", token)

    # THEN AWSCURRENT did not move
    assert world.value(CURRENT) == current
