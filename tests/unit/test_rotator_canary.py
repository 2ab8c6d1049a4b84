"""The canary: a real client_credentials request with the candidate origin value, retried
while WAF propagates, failing at once on answers that waiting will not fix (`responses`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
import responses

from rotator.canary import TokenEndpointCanary
from rotator.errors import CanaryFailedError
from rotator.secret_store import read_client_credentials

URL = "https://auth.example.com/oauth2/token"
ORIGIN = "Q" * 64
TOKEN_BODY = {"access_token": "eyJ.secret.token", "token_type": "Bearer", "expires_in": 3600}


def _canary(sleeps: list[float], attempts: int = 4) -> TokenEndpointCanary:
    return TokenEndpointCanary(
        requests.Session(),
        URL,
        lambda: ("client-a", "s3cret/+="),
        max_attempts=attempts,
        retry_seconds=5.0,
        sleep=sleeps.append,
    )


@responses.activate
def test_a_token_request_that_succeeds_at_once() -> None:
    # GIVEN a token endpoint that answers with a token
    responses.post(URL, json=TOKEN_BODY)
    sleeps: list[float] = []

    # WHEN the canary checks a value
    _canary(sleeps).check(ORIGIN)

    # THEN one client_credentials request carried the value, Basic credentials and a User-Agent
    (call,) = responses.calls
    assert call.request.body == "grant_type=client_credentials"
    assert call.request.headers["x-origin-verify"] == ORIGIN
    basic = base64.b64decode(call.request.headers["Authorization"].removeprefix("Basic "))
    assert basic == b"client-a:s3cret/+="
    assert call.request.headers["User-Agent"].startswith("cognito-token-proxy-rotator/")
    assert sleeps == []


@responses.activate
def test_waf_403s_network_errors_and_5xx_are_retried_until_a_token_comes() -> None:
    # GIVEN WAF still blocking, a reset connection, a 503, then a token
    responses.post(URL, status=403, json={"error": "access_denied"})
    responses.post(URL, body=requests.ConnectionError("reset"))
    responses.post(URL, status=503)
    responses.post(URL, json=TOKEN_BODY)
    sleeps: list[float] = []

    # WHEN the canary checks
    _canary(sleeps).check(ORIGIN)

    # THEN it tried four times with a pause between attempts
    assert len(responses.calls) == 4
    assert sleeps == [5.0, 5.0, 5.0]


@responses.activate
def test_an_answer_that_waiting_cannot_fix_fails_at_once() -> None:
    responses.post(URL, status=400, json={"error": "invalid_client"})
    with pytest.raises(CanaryFailedError, match="answered 400"):
        _canary([]).check(ORIGIN)
    assert len(responses.calls) == 1


@responses.activate
def test_a_block_that_never_lifts_fails_after_the_bound_without_quoting_a_secret() -> None:
    # GIVEN WAF that keeps blocking, and a "success" without a token in between
    responses.post(URL, status=403)
    responses.post(URL, json={"token_type": "Bearer"})
    responses.post(URL, status=403)
    sleeps: list[float] = []

    # WHEN the canary checks with three attempts
    with pytest.raises(CanaryFailedError) as failure:
        _canary(sleeps, attempts=3).check(ORIGIN)

    # THEN it gave up after three requests, and the error names no value
    assert len(responses.calls) == 3
    assert len(sleeps) == 2
    assert str(failure.value) == (
        "the canary token request did not succeed in 3 attempts (last answer: 403)"
    )
    assert ORIGIN not in str(failure.value)


class FakeSecretsClient:
    def __init__(self, secret_string: str) -> None:
        self.secret_string = secret_string

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs == {"SecretId": "arn:canary", "VersionStage": "AWSCURRENT"}
        return {"SecretString": self.secret_string}


def test_the_canary_credentials_come_from_a_json_secret() -> None:
    client = FakeSecretsClient(json.dumps({"client_id": "c", "client_secret": "s"}))
    assert read_client_credentials(client, "arn:canary") == ("c", "s")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "document",
    [
        "not json but s3cret-value",
        '{"client_id": "c"}',
        '["s3cret-value"]',
        '{"client_id": 1, "client_secret": 2}',
    ],
)
def test_a_malformed_canary_secret_fails_without_quoting_it(document: str) -> None:
    with pytest.raises(CanaryFailedError) as failure:
        read_client_credentials(FakeSecretsClient(document), "arn:canary")  # type: ignore[arg-type]
    assert "s3cret" not in str(failure.value)
    assert failure.value.__cause__ is None
