"""Every rotation event file in events/ runs through rotator.app.lambda_handler (moto), and the
optional canary makes a real client_credentials request that WAF evaluates against the set."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses

from local.cloudformation_template import resource
from rotator import app
from rotator.errors import CanaryFailedError
from tests.fakes.clock import ROTATION_T0, FakeClock
from tests.integration.rotation_harness import (
    RotationWorld,
    build_world,
    emf_records,
    waf_accepts,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
STEP_ORDER = ("createSecret", "setSecret", "testSecret", "finishSecret")
TOKEN_URL = "https://auth.example.com/oauth2/token"
CANARY_ID, CANARY_SECRET = "canary-client", "canary-client-secret-value"


def _load(path: Path) -> dict[str, Any]:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(event, dict)
    return event


def _rotation_events() -> list[tuple[Path, dict[str, Any]]]:
    events = [(path, _load(path)) for path in EVENTS.glob("rotation_*.json")]
    return sorted(events, key=lambda item: STEP_ORDER.index(item[1]["Step"]))


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[RotationWorld]:
    built = build_world()
    for name, value in built.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app.metrics, "namespace", "CognitoTokenProxy")
    monkeypatch.setattr(app, "clock", FakeClock(ROTATION_T0).utc)
    app.reset()
    yield built
    app.reset()


def test_every_rotation_event_file_runs_through_the_handler(world: RotationWorld) -> None:
    # GIVEN the event files, one per step, sharing one ClientRequestToken; Secrets Manager
    # started a rotation with that token (the secret's ARN is moto's, so the test sets it)
    events = _rotation_events()
    assert [event["Step"] for _, event in events] == list(STEP_ORDER)
    tokens = {event["ClientRequestToken"] for _, event in events}
    assert len(tokens) == 1
    (token,) = tokens
    old = world.value("AWSCURRENT")
    world.start_rotation(token)

    # WHEN each event is sent to the handler in order, with SecretId pointing at the secret
    results = [world.invoke({**event, "SecretId": world.secret_arn}) for _, event in events]
    world.complete_rotation(token)

    # THEN the rotation completed
    assert results == [
        {"step": "createSecret", "outcome": "created"},
        {"step": "setSecret", "outcome": "set", "acceptedValues": 2},
        {"step": "testSecret", "outcome": "tested", "acceptedValues": 2},
        {"step": "finishSecret", "outcome": "finished", "acceptedValues": 2},
    ]
    new = world.value("AWSCURRENT")
    assert new != old
    assert sorted(world.patterns()) == sorted([f"^{old}$", f"^{new}$"])


def test_the_prune_event_file_is_the_schedules_input_and_runs_through_the_handler(
    world: RotationWorld,
) -> None:
    # GIVEN events/prune.json and the template's schedule
    event = _load(EVENTS / "prune.json")
    schedule = resource("RotatorFunction")["Properties"]["Events"]["Prune"]["Properties"]

    # WHEN the handler receives it on a fresh deployment
    result = world.invoke(event)

    # THEN it is exactly what the schedule sends, and the prune ran
    assert json.loads(schedule["Input"]) == event == {"action": "prune"}
    assert result == {"step": "prune", "outcome": "nothing-to-prune", "acceptedValues": 1}


# ---------------------------------------------------------------------- the canary


@pytest.fixture
def canary_world(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> RotationWorld:
    canary_arn = world.sm.create_secret(
        Name="canary-client",
        SecretString=json.dumps({"client_id": CANARY_ID, "client_secret": CANARY_SECRET}),
    )["ARN"]
    monkeypatch.setenv("CANARY_SECRET_ARN", canary_arn)
    monkeypatch.setenv("COGNITO_TOKEN_URL", TOKEN_URL)
    monkeypatch.setenv("CANARY_RETRY_SECONDS", "0")
    app.reset()
    return world


class UserPoolBehindWaf:
    """The token endpoint behind the web ACL: 403 unless x-origin-verify matches the pattern
    set (as WAF evaluates it), else a token for the right client credentials."""

    def __init__(self, world: RotationWorld, propagation_delay: int = 0) -> None:
        self._world = world
        self._delay = propagation_delay
        self.seen: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        basic = base64.b64decode(request.headers["Authorization"].split(" ", 1)[1]).decode()
        self.seen.append({"form": form, "basic": basic, "headers": dict(request.headers)})
        accepted = waf_accepts(self._world.patterns(), request.headers.get("x-origin-verify"))
        if not accepted or len(self.seen) <= self._delay:
            return 403, {}, '{"error":"access_denied"}'
        if basic != f"{CANARY_ID}:{CANARY_SECRET}":
            return 400, {}, '{"error":"invalid_client"}'
        body = {"access_token": "eyJ.canary.token", "token_type": "Bearer", "expires_in": 3600}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@responses.activate
def test_the_canary_requests_a_real_token_with_the_pending_value(
    canary_world: RotationWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a user pool behind WAF that needs two attempts before the new set has propagated
    world = canary_world
    pool = UserPoolBehindWaf(world, propagation_delay=2)
    responses.add_callback(responses.POST, TOKEN_URL, callback=pool)
    event = _rotation_events()[0][1]
    token = event["ClientRequestToken"]
    world.start_rotation(token)
    world.step("createSecret", token)
    world.step("setSecret", token)
    pending = world.version_value(token, "AWSPENDING")
    capsys.readouterr()

    # WHEN testSecret runs
    result = world.step("testSecret", token)

    # THEN the canary sent client_credentials with the pending value until WAF let it through
    assert result == {"step": "testSecret", "outcome": "tested", "acceptedValues": 2}
    assert len(pool.seen) == 3
    for seen in pool.seen:
        assert seen["form"] == {"grant_type": ["client_credentials"]}
        assert seen["basic"] == f"{CANARY_ID}:{CANARY_SECRET}"
        assert seen["headers"]["x-origin-verify"] == pending
        assert seen["headers"]["User-Agent"].startswith("cognito-token-proxy-rotator/")
    out = capsys.readouterr().out
    (emf,) = list(emf_records(out))
    assert emf["CanaryAttempt"] == [1.0, 1.0, 1.0]
    for secret in (pending, CANARY_SECRET, "eyJ.canary.token"):
        assert secret not in out


@responses.activate
def test_a_canary_that_never_gets_through_fails_test_secret_and_blocks_finish(
    canary_world: RotationWorld,
) -> None:
    # GIVEN a pool whose WAF never lets the pending value through (propagation never ends)
    world = canary_world
    pool = UserPoolBehindWaf(world, propagation_delay=100)
    responses.add_callback(responses.POST, TOKEN_URL, callback=pool)
    token = _rotation_events()[0][1]["ClientRequestToken"]
    world.start_rotation(token)
    world.step("createSecret", token)
    world.step("setSecret", token)
    current = world.value("AWSCURRENT")

    # WHEN testSecret runs
    with pytest.raises(CanaryFailedError, match="did not succeed in 6 attempts"):
        world.step("testSecret", token)

    # THEN it gave up after the bound and the secret did not move
    assert len(pool.seen) == 6
    assert world.value("AWSCURRENT") == current
