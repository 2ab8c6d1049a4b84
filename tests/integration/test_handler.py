"""The Lambda handler end to end in process: moto for DynamoDB and Secrets Manager, Cognito's
token endpoint faked over HTTP on loopback, the environment exactly as template.yaml passes it."""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.conftest import REGION, TABLE_NAME
from tests.fakes.cognito_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORIGIN_VALUE,
    FakeCognito,
    stubbed_cognito,
)
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import function_log, load_event, proxy_environment
from token_proxy import app
from token_proxy.model import HttpResponse, TokenRequest
from token_proxy.settings import Settings

WRONG_SECRET = "example-wrong-secret-not-real"
EVENT_FILES = {
    "body": "token_body_credentials.json",
    "basic": "token_basic.json",
    "query": "token_query_credentials.json",
    "base64": "token_base64_body.json",
}


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, token_table: Any) -> Iterator[dict[str, str]]:
    with proxy_environment(monkeypatch) as env:
        yield env


@pytest.fixture
def cognito(proxy_env: dict[str, str]) -> Iterator[FakeCognito]:
    with stubbed_cognito() as stub:
        yield stub


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the Powertools handler writes (the app's and the token_proxy.* modules' lines)."""
    with function_log() as stream:
        yield stream


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    result = app.lambda_handler(event, lambda_context())
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert result["isBase64Encoded"] is False
    return result["statusCode"], result["headers"], json.loads(result["body"])


def with_secret(method: str, secret: str) -> dict[str, Any]:
    """The method's event file with another client_secret."""
    event = copy.deepcopy(load_event(EVENT_FILES[method]))
    if method == "basic":
        raw = f"{CLIENT_ID}:{secret}".encode()
        event["headers"]["authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif method == "query":
        event["rawQueryString"] = event["rawQueryString"].replace(CLIENT_SECRET, secret)
        event["queryStringParameters"]["client_secret"] = secret
    elif method == "base64":
        body = base64.b64decode(event["body"]).decode().replace(CLIENT_SECRET, secret)
        event["body"] = base64.b64encode(body.encode()).decode()
    else:
        event["body"] = event["body"].replace(CLIENT_SECRET, secret)
    return event


def assert_no_store(headers: dict[str, str]) -> None:
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method", sorted(EVENT_FILES))
def test_each_credential_method_gets_a_token(
    method: str, cognito: FakeCognito, proxy_env: dict[str, str]
) -> None:
    fake = cognito
    # GIVEN a client presenting its credentials by one method
    event = load_event(EVENT_FILES[method])
    # WHEN the handler answers
    status, headers, body = invoke(event)
    # THEN the client gets Cognito's token with its remaining lifetime, not to be cached
    assert status == 200
    assert_no_store(headers)
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert (body["access_token"], body["token_type"]) == (fake.issued[0], "Bearer")
    assert 3590 <= body["expires_in"] <= 3600
    # AND the one upstream call went through the web ACL's door with a User-Agent
    assert len(fake.calls) == 1
    upstream = fake.calls[0]
    assert upstream.headers["x-origin-verify"] == ORIGIN_VALUE
    assert upstream.headers["User-Agent"] == Settings.from_env(proxy_env).user_agent
    if method == "basic":
        assert upstream.headers["Authorization"] == event["headers"]["authorization"]
    else:
        assert "Authorization" not in upstream.headers


def test_a_second_call_is_served_from_the_cache(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN a token already fetched for this client
    first_status, _, first = invoke(load_event("token_body_credentials.json"))
    # WHEN the same client asks again
    status, headers, second = invoke(load_event("token_body_credentials.json"))
    # THEN it gets the same token, with no more lifetime than before, without calling Cognito
    assert (first_status, status) == (200, 200)
    assert_no_store(headers)
    assert second["access_token"] == first["access_token"] == fake.issued[0]
    assert second["expires_in"] <= first["expires_in"]
    assert len(fake.calls) == 1
    # AND the shared cache holds one item that names the client but holds no secret or token
    # (besides the counters of the budget the first, unproven call was counted in)
    items = boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME).scan()["Items"]
    items = [item for item in items if not str(item["pk"]).startswith("budget#")]
    assert len(items) == 1
    assert items[0]["client_id"] == CLIENT_ID
    assert CLIENT_SECRET not in repr(items[0])
    assert fake.issued[0] not in repr(items[0])


def test_the_same_client_by_another_method_shares_the_cached_token(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN a token fetched with body credentials
    invoke(load_event("token_body_credentials.json"))
    # WHEN the same credentials and scope come by Basic and by query string
    answers = [invoke(load_event(EVENT_FILES[m]))[2] for m in ("basic", "query", "base64")]
    # THEN they are served the cached token (the key is the credentials, not how they came)
    assert [a["access_token"] for a in answers] == [fake.issued[0]] * 3
    assert len(fake.calls) == 1


@pytest.mark.parametrize("method", sorted(EVENT_FILES))
def test_a_wrong_secret_is_never_served_the_cached_token(method: str, cognito: FakeCognito) -> None:
    fake = cognito
    # GIVEN the real client's token in the cache
    invoke(load_event("token_body_credentials.json"))
    # WHEN someone presents the same client_id with a wrong secret
    status, headers, body = invoke(with_secret(method, WRONG_SECRET))
    # THEN the request went to Cognito, and Cognito's refusal is relayed
    assert len(fake.calls) == 2
    assert (status, body) == (400, {"error": "invalid_client"})
    assert_no_store(headers)
    # AND the real client is still served from the cache
    status, _, body = invoke(load_event("token_body_credentials.json"))
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 2)


def test_cognito_errors_are_relayed_as_sent_and_not_cached_as_tokens(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN a scope the app client is not allowed
    event = load_event("token_body_credentials.json")
    event["body"] = event["body"].replace("example-api%2Fread", "other-api%2Fadmin")
    # WHEN asked twice
    answers = [app.lambda_handler(event, lambda_context()) for _ in range(2)]
    # THEN Cognito's 400 is relayed byte for byte both times (the second remembered in this
    # container for NEGATIVE_CACHE_SECONDS), and nothing is cached in the table
    for answer in answers:
        assert answer["statusCode"] == 400
        assert answer["body"] == json.dumps({"error": "invalid_scope"})
        assert_no_store(answer["headers"])
    assert len(fake.calls) == 1
    items = boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME).scan()["Items"]
    assert [item for item in items if not str(item["pk"]).startswith("budget#")] == []


def emf_metrics(printed: str) -> list[str]:
    """The metric names of the EMF documents in the handler's output."""
    documents = [json.loads(line) for line in printed.splitlines() if line.startswith('{"_aws"')]
    return [
        metric["Name"]
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    ]


@pytest.mark.parametrize(
    ("event_file", "status", "error", "metric"),
    [
        ("token_get_method.json", 405, "invalid_request", "RefusedInvalidRequest"),
        ("token_two_methods.json", 400, "invalid_request", "RefusedInvalidRequest"),
        ("token_missing_secret.json", 401, "invalid_client", "RefusedInvalidClient"),
        ("token_wrong_grant.json", 400, "unsupported_grant_type", "RefusedUnsupportedGrantType"),
        ("token_oversize.json", 413, "invalid_request", "RefusedInvalidRequest"),
        ("token_scope_malformed", 400, "invalid_scope", "RefusedInvalidScope"),
    ],
)
def test_refused_requests_never_reach_cognito_and_are_counted_by_error(
    event_file: str,
    status: int,
    error: str,
    metric: str,
    *,
    cognito: FakeCognito,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = cognito
    # GIVEN a request the proxy refuses itself (a shipped event, or one with a malformed scope)
    if event_file == "token_scope_malformed":
        event = copy.deepcopy(load_event("token_body_credentials.json"))
        event["body"] = re.sub(r"scope=[^&]*", "scope=%22quoted%22", event["body"])
    else:
        event = load_event(event_file)
    capsys.readouterr()
    # WHEN the handler answers, with every warning an error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got_status, headers, body = invoke(event)
    # THEN an RFC 6749 error, with no upstream call
    assert (got_status, body["error"]) == (status, error)
    assert set(body) == {"error", "error_description"}
    assert_no_store(headers)
    assert len(fake.calls) == 0
    # AND the refusal is counted by its error, so the metrics flush without Powertools'
    # "No application metrics to publish" warning
    assert metric in emf_metrics(capsys.readouterr().out)


def test_no_secret_token_or_authorization_value_is_logged(
    cognito: FakeCognito,
    log_output: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = cognito
    # (our loggers at DEBUG; botocore's own DEBUG lines print whole API responses by design)
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    caplog.set_level(logging.DEBUG, logger=app.logger.name)
    # GIVEN requests by every method, a cache hit, a wrong secret and a refusal
    events = [load_event(f) for f in EVENT_FILES.values()]
    events += [with_secret("basic", WRONG_SECRET), load_event("token_two_methods.json")]
    for event in events:
        invoke(event)
    # WHEN the log lines and records are collected
    lines = log_output.getvalue()
    records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    printed = capsys.readouterr().out
    # THEN the handler did log, as JSON with the correlation id, and the metrics went out
    json_lines = [json.loads(line) for line in lines.splitlines()]
    answered = [line for line in json_lines if line["message"] == "token request answered"]
    assert len(answered) == 5  # four tokens and Cognito's relayed invalid_client
    assert {line["correlation_id"] for line in answered} == {"JKJaXmPLvHcESHA="}
    assert '"CognitoTokenProxy"' in printed
    # AND no secret, token, origin value or Authorization value appears anywhere
    forbidden = [CLIENT_SECRET, WRONG_SECRET, ORIGIN_VALUE, *fake.issued]
    forbidden += [
        e["headers"]["authorization"].split(" ", 1)[1]
        for e in events
        if "authorization" in e["headers"]
    ]
    assert len(fake.issued) == 1
    for text in (lines, records, printed):
        for value in forbidden:
            assert value not in text


def test_dynamodb_down_fails_open_to_cognito(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN the cache table is gone
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE_NAME)
    # WHEN a client asks for a token
    status, _, body = invoke(load_event("token_body_credentials.json"))
    # THEN Cognito's token is served anyway
    assert (status, body["access_token"], len(fake.calls)) == (200, fake.issued[0], 1)


# A function that cannot start adds no application metric (the API's 5xx alarm counts it).
@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_a_misconfigured_function_answers_server_error(
    cognito: FakeCognito,
    monkeypatch: pytest.MonkeyPatch,
    log_output: io.StringIO,
) -> None:
    fake = cognito
    # GIVEN the function's environment lacks the table name
    monkeypatch.delenv("TOKEN_TABLE_NAME")
    # WHEN invoked
    status, headers, body = invoke(load_event("token_body_credentials.json"))
    # THEN a 500 server_error without details, and the log says which variable is missing
    assert (status, body) == (
        500,
        {"error": "server_error", "error_description": "the token proxy failed unexpectedly"},
    )
    assert_no_store(headers)
    assert "TOKEN_TABLE_NAME" in log_output.getvalue()
    assert len(fake.calls) == 0


class ExplodingService:
    def handle(
        self, request: TokenRequest, *, remaining_seconds: float | None = None
    ) -> HttpResponse:
        raise RuntimeError(f"boom with {request.client_secret}")

    def fingerprint(self, client_id: str) -> str:
        return "fingerprint"


def test_an_unexpected_failure_is_a_bare_server_error(
    proxy_env: dict[str, str], log_output: io.StringIO
) -> None:
    # GIVEN a service that fails in a way no input should cause (its message holds a secret)
    settings = Settings.from_env(proxy_env)
    # WHEN the handler answers
    response = app.handle_event(
        load_event("token_body_credentials.json"), ExplodingService(), settings
    )
    # THEN 500 server_error, and the log names the exception type only
    assert (response.status, json.loads(response.body)) == (
        500,
        {"error": "server_error", "error_description": "the token proxy failed unexpectedly"},
    )
    assert response.headers["Cache-Control"] == "no-store"
    logged = log_output.getvalue()
    assert "RuntimeError" in logged
    assert CLIENT_SECRET not in logged
    assert "boom" not in logged


def test_the_service_is_built_once_per_container(proxy_env: dict[str, str]) -> None:
    # GIVEN the cached factories
    # WHEN asked twice
    # THEN the same objects come back
    assert app.get_token_service() is app.get_token_service()
    assert app.get_settings() is app.get_settings()
    assert app.get_settings() == Settings.from_env(proxy_env)
