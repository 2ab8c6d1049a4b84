"""AWS failing under the Lambda handler, each with and without a valid cached token:
DynamoDB throttling (ProvisionedThroughputExceededException) and unavailability (its endpoint
refusing connections on loopback), Secrets Manager unavailable (the last known origin value is
used until it can be refreshed).

The handler runs as in Lambda (``app.lambda_handler``, its clients built by
``get_token_service`` from the template's environment) on moto, with Cognito's token endpoint
faked over HTTP on loopback (tests/fakes/cognito_endpoint.py). Faults are injected where
botocore sends a request (tests/fakes/aws_faults.py): answered as the service would (HTTP 400
``ProvisionedThroughputExceededException``) or the connection failed
(``EndpointConnectionError``), every attempt counted, so botocore's own retry
policy (``DYNAMODB_CONFIG``) runs for real; its backoff pauses are set to zero.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.conftest import REGION, TABLE_NAME
from tests.fakes.aws_faults import THROTTLED, AwsFaults, install
from tests.fakes.cognito_endpoint import CLIENT_ID, ORIGIN_VALUE, FakeCognito, serving
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import load_event, proxy_environment
from token_proxy import app, wiring

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

NEW_ORIGIN_VALUE = "RotatedOriginValueForFaultTests987654"
#: botocore's "total_max_attempts" counts the first try too.
DYNAMODB_ATTEMPTS = wiring.DYNAMODB_CONFIG.retries["total_max_attempts"]  # type: ignore[index]
UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "the token service is temporarily unavailable",
}


@pytest.fixture(autouse=True)
def debug_logs_checked_too(caplog: pytest.LogCaptureFixture) -> None:
    """The suite's log guard sees this module's DEBUG records as well."""
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    caplog.set_level(logging.DEBUG, logger=app.logger.name)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, token_table: Any) -> AwsFaults:
    return install(monkeypatch)


@pytest.fixture
def cognito(faults: AwsFaults, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCognito]:
    with proxy_environment(monkeypatch), serving(FakeCognito()) as fake:
        yield fake


def invoke() -> tuple[int, dict[str, Any]]:
    result = app.lambda_handler(load_event("token_body_credentials.json"), lambda_context())
    assert result["headers"]["Cache-Control"] == "no-store"
    return result["statusCode"], json.loads(result["body"])


def new_container() -> None:
    """A cold start: the next invocation builds its service, L1 and clients afresh."""
    app.reset()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------- DynamoDB throttling


def test_dynamodb_throttling_without_a_cached_token_fails_open_to_cognito(
    faults: AwsFaults, cognito: FakeCognito
) -> None:
    fake = cognito
    # GIVEN every DynamoDB call throttled
    faults.errors["dynamodb"] = THROTTLED
    # WHEN a client asks for a token
    status, body = invoke()
    # THEN it gets Cognito's token after one call
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 1)
    # AND each DynamoDB operation was tried exactly as often as the retry policy allows
    # (the read, the lease, the budget's two counters - this container then counts alone -
    # and the write), then given up
    dynamodb = {op: n for op, n in faults.attempts.items() if op.startswith("dynamodb.")}
    assert dynamodb == {
        "dynamodb.GetItem": DYNAMODB_ATTEMPTS,
        "dynamodb.UpdateItem": 3 * DYNAMODB_ATTEMPTS,
        "dynamodb.PutItem": DYNAMODB_ATTEMPTS,
    }


def test_dynamodb_throttling_with_a_cached_token_in_this_container_costs_nothing(
    faults: AwsFaults, cognito: FakeCognito
) -> None:
    fake = cognito
    # GIVEN a warm container that cached a token, then DynamoDB throttled
    assert invoke()[0] == 200
    faults.clear()
    faults.errors["dynamodb"] = THROTTLED
    # WHEN the client asks again
    status, body = invoke()
    # THEN the cached token is served from memory: no DynamoDB call, no Cognito call
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 1)
    assert faults.count("dynamodb") == 0


def test_dynamodb_throttling_with_a_token_cached_only_in_the_table_fails_open(
    faults: AwsFaults, cognito: FakeCognito
) -> None:
    fake = cognito
    # GIVEN a token cached in the table by another container, then reads throttled only
    assert invoke()[0] == 200
    new_container()
    faults.clear()
    faults.errors["dynamodb.GetItem"] = THROTTLED
    # WHEN a client reaches the new container
    status, body = invoke()
    # THEN the read failed, but the lease write returned the item as it was (its double
    # check): the table's token is served without a call to Cognito
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 1)
    assert faults.attempts["dynamodb.GetItem"] == DYNAMODB_ATTEMPTS
    assert faults.attempts["dynamodb.UpdateItem"] == 2  # the lease, and its release
    assert faults.attempts["dynamodb.PutItem"] == 0
    items = boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME).scan()["Items"]
    assert [item["client_id"] for item in items if "client_id" in item] == [CLIENT_ID]


# ---------------------------------------------------------------------- DynamoDB unavailable


def test_dynamodb_refusing_connections_fails_open_with_and_without_a_cached_token(
    faults: AwsFaults,
    cognito: FakeCognito,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = cognito
    # GIVEN the function's DynamoDB endpoint refusing connections (nothing listens there)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed_port()}")
    # WHEN a client asks in a cold container, then again
    first_status, first = invoke()
    attempts_after_first = faults.count("dynamodb")
    second_status, second = invoke()
    # THEN the first request gets Cognito's token after one call, each DynamoDB operation
    # having been tried as the retry policy allows
    assert (first_status, first["access_token"]) == (200, fake.issued[0])
    # (read, lease, the budget's two counters, write)
    assert attempts_after_first == 5 * DYNAMODB_ATTEMPTS
    # AND the second is served from memory without touching DynamoDB or Cognito
    assert (second_status, second["access_token"]) == (200, fake.issued[0])
    assert len(fake.calls) == 1
    assert faults.count("dynamodb") == attempts_after_first


# ---------------------------------------------------------------------- Secrets Manager


@pytest.fixture
def origin_max_age_zero(monkeypatch: pytest.MonkeyPatch, cognito: Any) -> None:
    """Every invocation re-reads the origin secret (so an outage is met at once)."""
    monkeypatch.setenv("ORIGIN_SECRET_MAX_AGE_SECONDS", "0")
    new_container()


def test_secrets_manager_down_the_last_known_value_is_used_until_it_can_be_refreshed(
    faults: AwsFaults,
    cognito: FakeCognito,
    origin_max_age_zero: None,
) -> None:
    fake = cognito
    # GIVEN a warm container that read the origin secret, then Secrets Manager unreachable
    assert invoke()[0] == 200
    faults.refused.add("secrets-manager")
    fake.clients["second-client"] = "second-client-secret-value"
    event = load_event("token_body_credentials.json")
    event["body"] = event["body"].replace(CLIENT_ID, "second-client")
    event["body"] = event["body"].replace("example-secret-not-real", "second-client-secret-value")
    # WHEN a client that needs Cognito asks
    result = app.lambda_handler(event, lambda_context())
    # THEN the last known value went with the request, and the client got its token
    assert result["statusCode"] == 200
    assert fake.calls[-1].headers["x-origin-verify"] == ORIGIN_VALUE
    assert faults.attempts["secrets-manager.GetSecretValue"] >= 1

    # GIVEN Secrets Manager back, the secret rotated, and Cognito accepting only the new value
    faults.refused.clear()
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="origin-verify", SecretString=NEW_ORIGIN_VALUE
    )
    fake.origin_value = NEW_ORIGIN_VALUE
    calls = len(fake.calls)
    # WHEN another client needs Cognito (within the failed read's back-off period)
    fake.clients["third-client"] = "third-client-secret-value"
    event["body"] = event["body"].replace("second-client", "third-client")
    result = app.lambda_handler(event, lambda_context())
    # THEN the old value was refused once, the secret re-read, and the retry got the token
    assert result["statusCode"] == 200
    sent = [call.headers["x-origin-verify"] for call in fake.calls[calls:]]
    assert sent == [ORIGIN_VALUE, NEW_ORIGIN_VALUE]


def test_secrets_manager_down_at_cold_start_without_a_cached_token_is_a_503(
    faults: AwsFaults,
    cognito: FakeCognito,
    origin_max_age_zero: None,
) -> None:
    fake = cognito
    # GIVEN a cold container and Secrets Manager unreachable: no origin value is known
    faults.refused.add("secrets-manager")
    # WHEN a client asks
    status, body = invoke()
    # THEN 503 temporarily_unavailable, without calling Cognito (WAF would block the call)
    assert (status, body) == (503, UNAVAILABLE)
    assert len(fake.calls) == 0
    assert faults.attempts["secrets-manager.GetSecretValue"] >= 1


def test_secrets_manager_down_at_cold_start_is_a_503_until_the_cache_key_can_be_read(
    faults: AwsFaults,
    cognito: FakeCognito,
    origin_max_age_zero: None,
) -> None:
    fake = cognito
    # GIVEN a token cached in the table by another container, then a cold container with
    # Secrets Manager unreachable: it cannot read the cache key secret, so cannot name items
    assert invoke()[0] == 200
    new_container()
    faults.clear()
    faults.refused.add("secrets-manager")
    # WHEN the client asks
    status, body = invoke()
    # THEN 503 temporarily_unavailable (never a 500, never a call to Cognito)
    assert (status, body) == (503, UNAVAILABLE)
    assert len(fake.calls) == 1
    assert faults.count("secrets-manager") >= 1
    # AND once Secrets Manager answers, the next request reads the key and is served the
    # table's token
    faults.clear()
    status, body = invoke()
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 1)
