"""`FRONTEND=FunctionUrl make run`: the local stack with the proxy behind a function URL, as
``Frontend=FunctionUrl`` deploys it. A subprocess on ephemeral ports; real HTTP on loopback.

A function URL routes nothing, so the proxy itself answers every other path (404) and method
(405) in RFC 6749 JSON; a token request gets a token, and the next one the cached token.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.test_commands import READY_TIMEOUT, RunningCommand, command_env

pytestmark = pytest.mark.e2e

#: The first demo client (local/clients.demo.json): fake credentials published in the repository.
DEMO_CLIENT = ("demo-inventory-service", "demo-secret-inventory-not-for-production-0001")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@pytest.fixture(scope="module")
def function_url_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`FRONTEND=FunctionUrl make run`, ready: its state file and its ready message."""
    directory = tmp_path_factory.mktemp("function-url")
    command = RunningCommand(
        [sys.executable, "-m", "local.stack"], command_env(directory, FRONTEND="FunctionUrl")
    )
    try:
        ready = command.wait_for(r"token proxy\s+(http://\S+)\s+\((.+)\)", READY_TIMEOUT)
        state = json.loads((directory / "stack.json").read_text(encoding="utf-8"))
        yield {
            "state": state,
            "url": ready[1],
            "shown_as": ready[2],
            "log": directory / "functions.log",
        }
    finally:
        command.process.terminate()
        command.process.wait(30)


def token(url: str, **data: str) -> requests.Response:
    return requests.post(
        url, auth=DEMO_CLIENT, data={"grant_type": "client_credentials", **data}, timeout=30
    )


def test_a_token_request_through_the_function_url(function_url_stack: dict[str, Any]) -> None:
    # GIVEN the stack serving the proxy behind a function URL
    url = function_url_stack["url"]
    assert function_url_stack["shown_as"] == "function URL"
    assert function_url_stack["state"]["endpoints"]["proxy_frontend"] == "FunctionUrl"
    assert function_url_stack["state"]["endpoints"]["proxy_token_url"] == url

    # WHEN a client asks for a token twice (a form post: it reaches the function base64-encoded)
    first = token(url, scope="demo-api/read")
    second = token(url, scope="demo-api/read")

    # THEN both get the same token with its real remaining lifetime, never cacheable, and the
    # function URL's request id header
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    body = first.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert 3590 <= body["expires_in"] <= 3600
    assert second.json()["access_token"] == body["access_token"]
    for response in (first, second):
        assert {name: response.headers[name] for name in NO_STORE} == NO_STORE
        assert response.headers["x-amzn-RequestId"]
    # AND the one Cognito call is on the function's log, with the confirmed client id
    calls = [
        json.loads(line)
        for line in function_url_stack["log"].read_text(encoding="utf-8").splitlines()
        if '"message":"Cognito call"' in line
    ]
    assert [(c["status"], c["client_id"], c["cognito_call"]) for c in calls] == [
        (200, DEMO_CLIENT[0], "miss")
    ]


@pytest.mark.parametrize(
    ("method", "path", "status", "description"),
    [
        ("GET", "/", 404, "no such endpoint; use POST /oauth2/token"),
        ("POST", "/favicon.ico", 404, "no such endpoint; use POST /oauth2/token"),
        ("POST", "/prod/oauth2/token", 404, "no such endpoint; use POST /oauth2/token"),
        ("GET", "/oauth2/token", 405, "the token endpoint accepts POST only"),
        ("DELETE", "/oauth2/token", 405, "the token endpoint accepts POST only"),
    ],
)
def test_every_other_path_and_method_gets_the_proxys_own_answer(
    function_url_stack: dict[str, Any], method: str, path: str, status: int, description: str
) -> None:
    # GIVEN the function URL (it sends every path and method to the function)
    base = function_url_stack["url"].removesuffix("/oauth2/token")

    # WHEN a request comes for another path or with another method
    response = requests.request(
        method, base + path, data={"grant_type": "client_credentials"}, timeout=30
    )

    # THEN the proxy answers it in RFC 6749 JSON, with Allow: POST on a 405
    assert response.status_code == status
    assert response.json() == {"error": "invalid_request", "error_description": description}
    assert {name: response.headers[name] for name in NO_STORE} == NO_STORE
    assert response.headers.get("Allow") == ("POST" if status == 405 else None)
