"""Every events/token_*.json file (the `sam local invoke -e` events) runs through the handler:
the HTTP API's events and the function URL's (``token_function_url*``: routeKey ``$default``,
every path and method, a form body base64-encoded or not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.cognito_endpoint import FakeCognito, stubbed_cognito
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import EVENTS_DIR, load_event, proxy_environment
from token_proxy import app

# Refusals add no application metric, and Powertools warns about the empty metric set.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

#: Each token event file and the status the handler answers it with (Cognito stubbed to know
#: the example client). A new file must be added here, or the completeness test fails.
EXPECTED_STATUS = {
    "token_body_credentials.json": 200,
    "token_basic.json": 200,
    "token_query_credentials.json": 200,
    "token_base64_body.json": 200,
    "token_scopes_unordered.json": 200,
    "token_resource.json": 200,
    "token_two_methods.json": 400,
    "token_wrong_grant.json": 400,
    "token_missing_secret.json": 401,
    "token_get_method.json": 405,
    "token_oversize.json": 413,
    "token_function_url.json": 200,
    "token_function_url_body_credentials.json": 200,
    "token_function_url_get_method.json": 405,
    "token_function_url_other_path.json": 404,
    "token_function_url_stage_prefix.json": 404,
}


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch, token_table: Any) -> Iterator[FakeCognito]:
    with proxy_environment(monkeypatch), stubbed_cognito() as stub:
        yield stub


def test_every_token_event_file_has_an_expected_status() -> None:
    # GIVEN the token event files in events/
    files = {path.name for path in EVENTS_DIR.glob("token_*.json")}
    # THEN each one (and only those) is listed with its expected status
    assert files == set(EXPECTED_STATUS)


@pytest.mark.parametrize(("name", "status"), sorted(EXPECTED_STATUS.items()))
def test_token_event_runs_through_the_handler(name: str, status: int, cognito: FakeCognito) -> None:
    fake = cognito
    # GIVEN an event file as `sam local invoke -e` would send it
    event = load_event(name)
    # WHEN the handler answers it
    result = app.lambda_handler(event, lambda_context())
    # THEN the status is the expected one, the body is RFC 6749 JSON, and never cacheable
    assert result["statusCode"] == status
    assert result["headers"]["Cache-Control"] == "no-store"
    assert result["headers"]["Pragma"] == "no-cache"
    body = json.loads(result["body"])
    if status == 200:
        assert body == {
            "access_token": fake.issued[0],
            "expires_in": body["expires_in"],
            "token_type": "Bearer",
        }
        assert 0 < body["expires_in"] <= 3600
        assert len(fake.calls) == 1
    else:
        assert set(body) == {"error", "error_description"}
        assert len(fake.calls) == 0
