"""`make invalidate CLIENT_ID=...` (python -m local.commands.invalidate) against a running local
stack: tokens cached over HTTP for two clients, one client invalidated, the other's item kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.commands import invalidate
from local.moto_server import aws_client
from local.stack import LocalStack, StackConfig

pytestmark = pytest.mark.e2e

CLIENTS = [
    {"client_id": "invalidate-a", "client_secret": "invalidate-a-secret-0001"},
    {"client_id": "invalidate-b", "client_secret": "invalidate-b-secret-0002"},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    directory = tmp_path_factory.mktemp("invalidate-stack")
    clients_file = directory / "clients.json"
    clients_file.write_text(json.dumps(CLIENTS), encoding="utf-8")
    state_file = directory / "stack.json"
    config = StackConfig(
        moto_port=0,
        issuer_port=0,
        proxy_port=0,
        stack_name="invalidate",
        clients_file=clients_file,
        containers=1,
        prewarm=1,
        state_file=state_file,
        function_log=directory / "functions.log",
    )
    with LocalStack(config) as running:
        yield running, state_file


def fetch(stack: LocalStack, client: dict[str, str]) -> str:
    answer = requests.post(
        stack.proxy_token_url,
        data={"grant_type": "client_credentials", **client},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def cached_clients(stack: LocalStack) -> list[str]:
    state = stack.state()
    dynamodb = aws_client("dynamodb", state["endpoints"]["aws"], state["region"])
    items: list[dict[str, Any]] = dynamodb.scan(
        TableName=state["resources"]["table_name"], ConsistentRead=True
    )["Items"]
    return sorted(i["client_id"]["S"] for i in items if "client_id" in i)


def test_the_command_invalidates_one_client_of_the_running_stack(
    stack: tuple[LocalStack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN both clients' tokens cached through the proxy
    running, state_file = stack
    for client in CLIENTS:
        fetch(running, client)
    assert cached_clients(running) == ["invalidate-a", "invalidate-b"]
    capsys.readouterr()

    # WHEN `make invalidate CLIENT_ID=invalidate-a` runs
    code = invalidate.main(["invalidate-a"], environ={"LOCAL_STACK_STATE": str(state_file)})

    # THEN it prints the handler's answer and the count; only B's item is left
    assert code == 0
    first, summary = capsys.readouterr().out.strip().splitlines()
    assert json.loads(first) == {
        "action": "invalidate",
        "client_id": "invalidate-a",
        "deleted_items": 1,
        "complete": True,
        "complete_within_seconds": 30.0,
    }
    assert summary.startswith("Invalidated 1 cached item(s) of client invalidate-a")
    assert cached_clients(running) == ["invalidate-b"]


def test_without_a_stack_it_uses_the_endpoint_and_table_from_the_environment(
    stack: tuple[LocalStack, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN B's token cached, and no state file where the command looks
    running, _ = stack
    fetch(running, CLIENTS[1])
    state = running.state()
    environ = {
        "LOCAL_STACK_STATE": str(tmp_path / "absent.json"),
        "AWS_ENDPOINT_URL": state["endpoints"]["aws"],
        "AWS_REGION": state["region"],
        "TOKEN_TABLE_NAME": state["resources"]["table_name"],
    }
    capsys.readouterr()

    # WHEN the command runs with the endpoint and table from the environment
    code = invalidate.main(["invalidate-b"], environ=environ)

    # THEN B's item is deleted through the index
    assert code == 0
    assert capsys.readouterr().out.startswith("Invalidated 1 cached item(s) of client invalidate-b")
    assert "invalidate-b" not in cached_clients(running)


def test_without_a_stack_or_an_endpoint_it_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invalidate.main(["x"], environ={"LOCAL_STACK_STATE": str(tmp_path / "absent.json")})
    assert code == 1
    assert "make run" in capsys.readouterr().err
