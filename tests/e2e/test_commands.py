"""The developer commands as users run them, in subprocesses: `make run` (python -m local.stack),
`make rotate` / `make prune` (python -m local.commands.rotate) and `make invoke`
(python -m local.commands.invoke).

Every stack here listens on ephemeral ports and writes its state file under the test's temporary
directory, so a `make run` in progress is left alone.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.cognito_token_endpoint import DEMO_CLIENTS_PATH
from local.moto_server import aws_client

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60
COMMAND_TIMEOUT = 60


class RunningCommand:
    """A subprocess whose stdout lines are collected by a thread (so reads never block)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed modules
            args,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far: {self.output}")

    def rest(self) -> list[str]:
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return self.output


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "LOCAL_STACK_STATE": str(tmp_path / "stack.json"),
        "LOCAL_FUNCTION_LOGS": str(tmp_path / "functions.log"),
        "MOTO_PORT": "0",
        "ISSUER_PORT": "0",
        "PROXY_PORT": "0",
        "PROXY_CONTAINERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LOCAL_CLIENTS_FILE", None)
    env.update(extra)
    return env


def run_module(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, fixed modules
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def uncached_token_request(proxy_url: str, credentials: tuple[str, str], resource: str) -> int:
    """The status of a token request for a resource not asked for before: the cache cannot
    answer it, so it reaches the issuer with the proxy's current origin value."""
    response = requests.post(
        proxy_url,
        data={"grant_type": "client_credentials", "resource": resource},
        auth=credentials,
        timeout=30,
    )
    return response.status_code


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[RunningCommand]:
    command = RunningCommand([sys.executable, "-m", "local.stack"], command_env(tmp_path))
    yield command
    if command.process.poll() is None:
        command.process.kill()
        command.process.wait(10)


def test_make_run_serves_the_proxy_rotates_prunes_and_stops_on_sigterm(
    make_run: RunningCommand, tmp_path: Path
) -> None:
    # GIVEN `make run` as a subprocess, and the demo client it announces
    proxy_url = make_run.wait_for(r"token proxy\s+(http://\S+/oauth2/token)", READY_TIMEOUT)[1]
    curl = make_run.wait_for(r"curl -s -u '([^:]+):([^']+)'", READY_TIMEOUT)
    demo = json.loads(DEMO_CLIENTS_PATH.read_text(encoding="utf-8"))[0]
    assert (curl[1], curl[2]) == (demo["client_id"], demo["client_secret"])  # the shipped fake

    # WHEN the announced client asks for a token the way the curl line does
    response = requests.post(
        proxy_url,
        data={"grant_type": "client_credentials", "scope": demo["scopes"][0]},
        auth=(curl[1], curl[2]),
        timeout=30,
    )

    # THEN it gets one
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    # AND the state file names the stack's resources but holds no secret value
    state_file = tmp_path / "stack.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    sm = aws_client("secretsmanager", state["endpoints"]["aws"], state["region"])
    secret_arn = state["resources"]["secret_arn"]
    origin = sm.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"]
    assert state["endpoints"]["proxy_token_url"] == proxy_url
    assert origin not in state_file.read_text(encoding="utf-8")
    assert "testing" not in json.dumps(state["functions"])  # no credentials, even fake ones

    # WHEN `make rotate`, then `PRUNE_GRACE_SECONDS=0 make prune` run against it
    env = command_env(tmp_path, PRUNE_GRACE_SECONDS="0")
    rotated = run_module("local.commands.rotate", "rotate", env=env)
    pruned = run_module("local.commands.rotate", "prune", env=env)
    new_origin = sm.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"]

    # THEN each step's outcome is printed, never a value, and the secret moved on
    assert rotated.returncode == 0, rotated.stderr
    for step, outcome in (
        ("createSecret", "already-created"),
        ("setSecret", "set"),
        ("testSecret", "tested"),
        ("finishSecret", "finished"),
    ):
        assert re.search(rf'{step}\s+\{{.*"outcome": "{outcome}"', rotated.stdout), rotated.stdout
    assert pruned.returncode == 0, pruned.stderr
    assert '"outcome": "pruned"' in pruned.stdout
    assert new_origin != origin
    for value in (origin, new_origin):
        assert value not in rotated.stdout + rotated.stderr + pruned.stdout + pruned.stderr
    # AND the proxy still answers a request that has to reach the issuer
    assert uncached_token_request(proxy_url, (curl[1], curl[2]), "https://after.example") == 200

    # WHEN it receives SIGTERM
    make_run.process.send_signal(signal.SIGTERM)

    # THEN it stops cleanly and removes its state file
    assert make_run.process.wait(timeout=30) == 0
    make_run.wait_for(r"Local stack stopped\.", 5)
    assert not state_file.exists()


def test_make_rotate_without_a_running_stack_says_so(tmp_path: Path) -> None:
    # GIVEN no stack running (no state file)
    env = command_env(tmp_path)

    # WHEN `make rotate` runs
    result = run_module("local.commands.rotate", "rotate", env=env)

    # THEN it fails and says how to start one
    assert result.returncode == 1
    assert "No local stack is running" in result.stderr
    assert "make run" in result.stderr


def test_make_invoke_runs_the_token_proxy_with_an_event_file(tmp_path: Path) -> None:
    # GIVEN no stack running, and the shipped event with credentials in the body
    env = command_env(tmp_path)

    # WHEN `make invoke EVENT=events/token_body_credentials.json` runs
    result = run_module("local.commands.invoke", "events/token_body_credentials.json", env=env)

    # THEN it starts a temporary stack, says so, and prints the function's 200 response
    assert result.returncode == 0, result.stderr
    assert "starting a temporary one" in result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    assert response["headers"]["Cache-Control"] == "no-store"
    body = json.loads(response["body"])
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"


def test_make_invoke_of_a_refused_request_prints_its_answer_and_no_warning(tmp_path: Path) -> None:
    # GIVEN no stack running, and the shipped event asking for the password grant
    env = command_env(tmp_path)

    # WHEN `make invoke EVENT=events/token_wrong_grant.json` runs
    result = run_module("local.commands.invoke", "events/token_wrong_grant.json", env=env)

    # THEN stdout is the refusal, whole
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "statusCode": 400,
        "headers": {
            "Content-Type": "application/json;charset=UTF-8",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        },
        "body": json.dumps(
            {
                "error": "unsupported_grant_type",
                "error_description": "this endpoint supports grant_type=client_credentials only",
            }
        ),
        "isBase64Encoded": False,
    }
    # AND stderr holds only the command's notes and the function's JSON lines (its log line
    # and its metrics, the refusal counted by its error), no Python warning
    lines = result.stderr.splitlines()
    assert all(line.startswith(("[local invoke] ", "{")) for line in lines), lines
    metrics = [json.loads(line) for line in lines if line.startswith('{"_aws"')]
    assert any(m.get("RefusedUnsupportedGrantType") == [1.0] for m in metrics), lines


ROTATION_EVENTS = [
    ("createSecret", "rotation_create_secret.json", "already-created"),
    ("setSecret", "rotation_set_secret.json", "set"),
    ("testSecret", "rotation_test_secret.json", "tested"),
    ("finishSecret", "rotation_finish_secret.json", "finished"),
]


def test_make_invoke_runs_the_rotation_events_in_order_as_one_rotation(
    make_run: RunningCommand, tmp_path: Path
) -> None:
    # GIVEN `make run`, and the shipped rotation events (a placeholder SecretId, and a version
    # the local secret has never had)
    proxy_url = make_run.wait_for(r"token proxy\s+(http://\S+/oauth2/token)", READY_TIMEOUT)[1]
    curl = make_run.wait_for(r"curl -s -u '([^:]+):([^']+)'", READY_TIMEOUT)
    env = command_env(tmp_path)
    state = json.loads((tmp_path / "stack.json").read_text(encoding="utf-8"))
    sm = aws_client("secretsmanager", state["endpoints"]["aws"], state["region"])
    token = json.loads((REPO_ROOT / "events" / "rotation_create_secret.json").read_text())[
        "ClientRequestToken"
    ]

    # WHEN `make invoke` runs the four events in order
    results = [
        run_module("local.commands.invoke", f"events/{name}", env=env)
        for _, name, _ in ROTATION_EVENTS
    ]

    # THEN each step succeeds with its outcome, against the running stack's secret
    for (step, _, outcome), result in zip(ROTATION_EVENTS, results, strict=True):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["outcome"] == outcome, step
        assert "SecretId replaced by the local secret's ARN" in result.stderr
    # AND the first one opened the rotation as Secrets Manager does, the last one closed it
    assert f"version {token} staged AWSPENDING" in results[0].stderr
    assert f"AWSPENDING removed from version {token}" in results[-1].stderr
    stages = sm.describe_secret(SecretId=state["resources"]["secret_arn"])["VersionIdsToStages"]
    assert stages[token] == ["AWSCURRENT"]
    # AND the proxy gets new tokens from the issuer with the new value
    assert uncached_token_request(proxy_url, (curl[1], curl[2]), "https://rotated.example") == 200


def test_make_invoke_of_a_rotation_step_out_of_order_says_what_to_run(tmp_path: Path) -> None:
    # GIVEN no stack running, and the testSecret event alone
    env = command_env(tmp_path)

    # WHEN it is invoked (on a temporary stack, where setSecret never ran)
    result = run_module("local.commands.invoke", "events/rotation_test_secret.json", env=env)

    # THEN the rotator refuses it with Lambda's error document, as it would in AWS
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "PatternSetMismatchError"
    # AND one note says what to run instead
    hints = [line for line in result.stderr.splitlines() if "make rotate" in line]
    assert hints == [
        "[local invoke] run the rotation events in order (rotation_create_secret, "
        "rotation_set_secret, rotation_test_secret, rotation_finish_secret), or `make rotate` "
        "for a whole rotation"
    ]
