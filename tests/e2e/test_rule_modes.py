"""`make run` in the web ACL rule's other mode: ``ORIGIN_RULE_COVERAGE=AllTokenRequests``
makes the local pool refuse every direct /oauth2/token request, whatever its grant, while
``make run``'s default leaves human flows alone. A subprocess, on ephemeral ports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.test_commands import READY_TIMEOUT, RunningCommand, command_env

pytestmark = pytest.mark.e2e

CODE_EXCHANGE = {"grant_type": "authorization_code", "code": "abc", "client_id": "web-app"}


@pytest.mark.parametrize(
    ("coverage", "expected_status"),
    [(None, 400), ("AllTokenRequests", 403)],
    ids=["default", "all-token-requests"],
)
def test_make_run_covers_what_origin_rule_coverage_says(
    tmp_path: Path, coverage: str | None, expected_status: int
) -> None:
    # GIVEN `make run`, with or without ORIGIN_RULE_COVERAGE=AllTokenRequests
    extra = {"ORIGIN_RULE_COVERAGE": coverage} if coverage else {}
    command = RunningCommand([sys.executable, "-m", "local.stack"], command_env(tmp_path, **extra))
    try:
        command.wait_for(r"token proxy\s+http://", READY_TIMEOUT)
        state = json.loads((tmp_path / "stack.json").read_text(encoding="utf-8"))

        # WHEN a human flow's code exchange goes straight to the local pool, without the header
        response = requests.post(
            state["endpoints"]["issuer_token_url"], data=CODE_EXCHANGE, timeout=30
        )
    finally:
        command.process.terminate()
        command.process.wait(30)

    # THEN by default the rule leaves it to the pool (which has no such client), and covering
    # every token request refuses it at the web ACL
    assert response.status_code == expected_status
    expected_error = "invalid_client" if expected_status == 400 else "access_denied"
    assert response.json()["error"] == expected_error
