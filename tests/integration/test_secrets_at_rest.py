"""Secrets at rest: after a run of several clients through the Lambda handler (tokens, cache
hits, a refused secret remembered in memory), no attribute of any table item holds a token, a
client secret, the origin secret or a JWT-shaped string, the table holds token items and the
budget's counters only, and a sealed blob opens only with its own client's secret under its own
key."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from boto3.dynamodb.types import Binary

from tests.conftest import REGION, TABLE_NAME
from tests.fakes.cognito_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORIGIN_VALUE,
    FakeCognito,
    stubbed_cognito,
)
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import load_event, proxy_environment
from tests.log_guard import JWT_SHAPED
from token_proxy import app
from token_proxy.errors import SealError
from token_proxy.seal import unseal

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

CLIENTS = {
    CLIENT_ID: CLIENT_SECRET,
    "2orders0client": "orders-client-secret-at-rest-0123",
    "3reports0client": "reports+client/secret=at%rest",
}
WRONG_SECRET = "a-wrong-secret-for-the-orders-client"
SCOPES = ("example-api/read", "example-api/read example-api/write")


@pytest.fixture(autouse=True)
def debug_logs_checked_too(caplog: pytest.LogCaptureFixture) -> None:
    """The suite's log guard sees this module's DEBUG records as well."""
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    caplog.set_level(logging.DEBUG, logger=app.logger.name)


def event_for(client_id: str, secret: str, scope: str, method: str) -> dict[str, Any]:
    event = load_event("token_body_credentials.json")
    form = f"grant_type=client_credentials&scope={quote(scope)}"
    credentials = f"client_id={quote(client_id, safe='')}&client_secret={quote(secret, safe='')}"
    if method == "basic":  # as Cognito takes it: Base64Encode(client_id:client_secret)
        raw = f"{client_id}:{secret}".encode()
        event["headers"]["authorization"] = "Basic " + base64.b64encode(raw).decode()
        event["body"] = form
    elif method == "query":
        event["rawQueryString"] = credentials
        event["body"] = form
    else:
        event["body"] = f"{form}&{credentials}"
    return event


@pytest.fixture
def cognito(token_table: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCognito]:
    with proxy_environment(monkeypatch), stubbed_cognito() as fake:
        fake.clients.update(CLIENTS)
        yield fake


def attribute_texts(value: Any) -> Iterator[str]:
    """Every way an attribute value could show a secret: text, and bytes read as text."""
    if isinstance(value, Binary):
        value = value.value
    if isinstance(value, bytes | bytearray):
        yield bytes(value).decode("latin-1")
        yield base64.b64encode(bytes(value)).decode()
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from attribute_texts(inner)
    elif isinstance(value, list | set | tuple):
        for inner in value:
            yield from attribute_texts(inner)
    else:
        yield str(value)


def test_a_table_dump_holds_no_token_secret_or_jwt(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN several clients asking by every method, twice each (the second from the cache),
    # and a client presenting a wrong secret (Cognito's refusal is cached negatively)
    for number, (client_id, secret) in enumerate(CLIENTS.items()):
        for scope in SCOPES:
            method = ("body", "basic", "query")[number]
            for _ in range(2):
                result = app.lambda_handler(
                    event_for(client_id, secret, scope, method), lambda_context()
                )
                assert result["statusCode"] == 200
    refused = app.lambda_handler(
        event_for("2orders0client", WRONG_SECRET, SCOPES[0], "body"), lambda_context()
    )
    assert refused["statusCode"] == 400
    assert len(fake.issued) == len(CLIENTS) * len(SCOPES)

    # WHEN the table is dumped
    items = boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME).scan()["Items"]

    # THEN it holds one item per token, naming clients and scopes only, and the budget's
    # counters (the refusal was remembered in memory, the wrong secret's lease item deleted)
    tokens = [item for item in items if not str(item["pk"]).startswith("budget#")]
    assert sorted(item["client_id"] for item in tokens) == sorted(
        client_id for client_id in CLIENTS for _ in SCOPES
    )
    assert all("blob" in item for item in tokens)
    # AND no attribute holds a token, a secret (in any spelling), the origin value or a JWT
    forbidden = [*fake.issued, ORIGIN_VALUE, WRONG_SECRET, *CLIENTS.values()]
    forbidden += [quote(value, safe="") for value in forbidden]
    for item in items:
        for name, value in item.items():
            for text in attribute_texts(value):
                assert not any(secret in text for secret in forbidden), name
                assert not JWT_SHAPED.search(text), name
                assert not re.search(r"access_token|invalid_client", text), name


def test_a_blob_opens_only_with_its_own_secret_and_key(
    cognito: FakeCognito,
) -> None:
    fake = cognito
    # GIVEN one cached token per client
    for client_id, secret in CLIENTS.items():
        event = event_for(client_id, secret, SCOPES[0], "body")
        assert app.lambda_handler(event, lambda_context())["statusCode"] == 200
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME)
    items = {item["client_id"]: item for item in table.scan()["Items"] if "client_id" in item}
    assert set(items) == set(CLIENTS)

    for client_id, secret in CLIENTS.items():
        item = items[client_id]
        blob = item["blob"].value
        # WHEN opened with the client's own secret under its own key
        # THEN it holds the token response Cognito gave that client, and what the proxy trusts
        # about it: its kind, client and times
        opened = json.loads(unseal(secret, item["pk"], blob))
        assert opened["response"]["access_token"] in fake.issued
        assert (opened["kind"], opened["client_id"]) == ("token", client_id)
        assert opened["issued_at"] <= opened["refresh_at"] <= opened["expires_at"]
        # WHEN opened with any other client's secret, or moved under another item's key
        for other_id, other_secret in CLIENTS.items():
            if other_id == client_id:
                continue
            # THEN it does not open
            with pytest.raises(SealError):
                unseal(other_secret, item["pk"], blob)
            with pytest.raises(SealError):
                unseal(secret, items[other_id]["pk"], blob)
        # AND a near miss of the secret does not open it either
        for near_miss in (secret + " ", secret.upper(), secret[:-1], ""):
            with pytest.raises(SealError):
                unseal(near_miss, item["pk"], blob)
