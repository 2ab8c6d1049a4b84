"""Nothing a caller sent that Cognito has not confirmed is written: a client that swapped its id
and secret, or sent a secret holding ``&`` and ``=`` without form-encoding, never sees that
value in a log line, a response or a table item; and with the root logger at DEBUG a whole miss
through the function (Secrets Manager, DynamoDB and Cognito) logs no secret, no token and no
request or response body.

The function runs as in Lambda (``app.lambda_handler`` on moto, Cognito stubbed); the values are
registered with the suite's log guard, which checks every log record of every logger."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import boto3
import pytest

from tests.conftest import REGION, TABLE_NAME
from tests.fakes.cognito_endpoint import CLIENT_ID, CLIENT_SECRET, ORIGIN_VALUE, stubbed_cognito
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import CACHE_KEY_SECRET_VALUE, load_event, proxy_environment
from tests.log_guard import find_leaks, record_text, register_secret
from token_proxy import app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

#: A secret with '&' and then '=', sent unencoded: its tail parses as a parameter "Cd2Unenc".
UNENCODED_SECRET = "Ab1Unencoded&Cd2Unenc=Ef3Unenc"
UNENCODED_PARTS = ("Cd2Unenc", "Ef3Unenc")


def body_event(client_id: str, secret: str, *, encode: bool = True) -> dict[str, Any]:
    event = load_event("token_body_credentials.json")
    value = secret if not encode else secret.replace("&", "%26").replace("=", "%3D")
    event["body"] = (
        f"grant_type=client_credentials&client_id={client_id}&client_secret={value}"
        "&scope=example-api%2Fread"
    )
    event["headers"].pop("content-length", None)
    return event


def basic_event(client_id: str, secret: str) -> dict[str, Any]:
    event = load_event("token_basic.json")
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    event["headers"]["authorization"] = f"Basic {raw}"
    return event


def everything_written(token_table: Any, results: list[dict[str, Any]]) -> str:
    """The answers and the whole table, as text."""
    dump = token_table.scan(ConsistentRead=True)["Items"]
    texts = [json.dumps(result, default=str) for result in results]
    for item in dump:
        for value in item.values():
            raw = getattr(value, "value", value)
            texts.append(raw.decode("latin-1") if isinstance(raw, bytes) else str(raw))
    return "\n".join(texts)


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The root logger (and so every logger without its own level) at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    caplog.set_level(logging.DEBUG, logger=app.logger.name)
    return caplog


def test_a_swapped_id_and_secret_and_an_unencoded_secret_are_never_written(
    token_table: Any, monkeypatch: pytest.MonkeyPatch, debug_everywhere: pytest.LogCaptureFixture
) -> None:
    # GIVEN the values no log record may carry (the guard checks every record)
    register_secret(UNENCODED_SECRET, *UNENCODED_PARTS)
    with proxy_environment(monkeypatch), stubbed_cognito() as fake:
        # WHEN a client swaps its id and secret (body and Basic), twice each, and another
        # sends its secret with '&' and '=' unencoded
        results = [
            app.lambda_handler(event, lambda_context())
            for event in (
                body_event(CLIENT_SECRET, CLIENT_ID),
                body_event(CLIENT_SECRET, CLIENT_ID),
                basic_event(CLIENT_SECRET, CLIENT_ID),
                basic_event(CLIENT_SECRET, CLIENT_ID),
                body_event(CLIENT_ID, UNENCODED_SECRET, encode=False),
            )
        ]
        reached = len(fake.calls)

    # THEN the swapped requests got Cognito's refusal (one key however the credentials came:
    # Cognito was asked once, the others answered from memory), the unencoded one the proxy's
    # own refusal by position
    assert [r["statusCode"] for r in results] == [400, 400, 400, 400, 400]
    assert reached == 1
    assert json.loads(results[4]["body"])["error_description"].startswith(
        "unsupported parameter #4 of the body"
    )
    assert fake.issued == []
    # AND no response, no table item and no log record holds the secret, its parts, or the
    # secret sent as a client id (the records name the client by its keyed fingerprint only)
    written = everything_written(token_table, results)
    for value in (CLIENT_SECRET, UNENCODED_SECRET, *UNENCODED_PARTS):
        assert value not in written
    records = [r for r in debug_everywhere.records if r.name.startswith(("token", "token_proxy"))]
    assert any("client_fp" in vars(r) for r in records)
    for record in debug_everywhere.records:
        text = record_text(record)
        for value in (CLIENT_SECRET, UNENCODED_SECRET, *UNENCODED_PARTS):
            assert value not in text
    # AND the table holds no item for any of them: only the budget's counters
    assert all(str(i["pk"]).startswith("budget#") for i in token_table.scan()["Items"])


def test_with_the_root_logger_at_debug_a_whole_miss_logs_no_secret_token_or_body(
    token_table: Any, monkeypatch: pytest.MonkeyPatch, debug_everywhere: pytest.LogCaptureFixture
) -> None:
    # GIVEN a cold container (it reads the cache key and origin secrets from Secrets Manager),
    # every logger without a level of its own at DEBUG
    register_secret(CACHE_KEY_SECRET_VALUE)
    with proxy_environment(monkeypatch), stubbed_cognito() as fake:
        # WHEN a request misses (DynamoDB read, lease, budget, Cognito, write), then hits
        first = app.lambda_handler(load_event("token_basic.json"), lambda_context())
        second = app.lambda_handler(load_event("token_basic.json"), lambda_context())

    # THEN both got the token
    assert [first["statusCode"], second["statusCode"]] == [200, 200]
    # AND records were written at DEBUG, none holding the origin value, the cache key secret,
    # the client's secret, the token, or a request or response body of an AWS call
    records = debug_everywhere.records
    assert any(r.levelno == logging.DEBUG for r in records)
    forbidden = [ORIGIN_VALUE, CACHE_KEY_SECRET_VALUE, CLIENT_SECRET, *fake.issued]
    for record in records:
        text = record_text(record)
        assert find_leaks(text, forbidden) == [], record.name
        assert "SecretString" not in text and "Response body" not in text, record.name
    # AND the SDK's and urllib3's loggers stay at WARNING whatever the root's level
    for name in ("botocore", "boto3", "urllib3"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    assert not any(r.name.startswith(("botocore", "urllib3")) for r in records)
    # (the table holds the sealed token item and the budget's counters)
    client = boto3.client("dynamodb", region_name=REGION)
    assert client.scan(TableName=TABLE_NAME, Select="COUNT")["Count"] >= 1
