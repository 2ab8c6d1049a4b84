"""Hostile and failing traffic on a moto table: a flood of random secrets spends its client's
budget and leaves nothing in the table; a failing Cognito asking for time is left alone by the
whole fleet and its Retry-After relayed; a table writer's replayed, forged or malformed items are
a miss - never a token, never a 5xx."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import Binary

from function_setup.metrics import RecordingMetrics
from tests.conftest import REGION, TABLE_NAME
from tests.fakes.clock import FakeClock
from tests.fakes.cognito_client import FakeCognitoClient, jwt_like
from tests.fakes.cognito_endpoint import CLIENT_ID as EVENTS_CLIENT_ID
from tests.fakes.cognito_endpoint import stubbed_cognito
from tests.fakes.http_endpoint import Reply, loopback_endpoint
from tests.fakes.lambda_context import lambda_context
from tests.fakes.origin_secret import FakeOriginSecret
from tests.fakes.proxy_function import load_event, proxy_environment
from tests.fakes.token_requests import (
    CLIENT_ID,
    CLIENT_SECRET,
    KEYS,
    cache_key,
    settings,
    token_request,
)
from token_proxy import app, telemetry
from token_proxy.budget import WINDOW_SECONDS
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.errors import TemporarilyUnavailable
from token_proxy.l1 import TokenL1
from token_proxy.seal import seal
from token_proxy.service import TokenService
from token_proxy.store import DynamoTokenStore
from token_proxy.wiring import build_token_service

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

TEN_YEARS = 10 * 365 * 86_400


def items(table: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = table.scan(ConsistentRead=True)["Items"]
    return found


def cache_items(table: Any) -> list[dict[str, Any]]:
    return [i for i in items(table) if not str(i["pk"]).startswith("budget#")]


def container(
    table: Any, cognito: Any, clock: FakeClock, metrics: RecordingMetrics | None = None
) -> TokenService:
    return build_token_service(
        settings=settings(),
        cognito=cognito,
        store=DynamoTokenStore(table),
        keys=KEYS,
        l1=TokenL1(64),
        clock=clock,
        sleep=clock.sleep,
        metrics=metrics if metrics is not None else RecordingMetrics(),
    )


# --------------------------------------------------------------------------- a flood


def test_a_random_secret_flood_spends_its_clients_budget_and_leaves_nothing_behind(
    token_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the function (moto, Cognito stubbed) with the template's budget: 30 calls per
    # client id per minute for credentials that never obtained a token
    with proxy_environment(monkeypatch) as env, stubbed_cognito() as fake:
        per_client = int(env["UNPROVEN_CALLS_PER_CLIENT_PER_MINUTE"])
        started = time.time()

        # WHEN 300 requests come with the known client id and a fresh random secret each
        statuses: Counter[int] = Counter()
        retry_after: set[str] = set()
        for n in range(300):
            event = load_event("token_body_credentials.json")
            event["body"] = event["body"].replace(
                "example-secret-not-real", f"random-guess-{n:04d}-0123456789"
            )
            result = app.lambda_handler(event, lambda_context())
            statuses[result["statusCode"]] += 1
            if result["statusCode"] == 429:
                retry_after.add(result["headers"]["Retry-After"])
                assert json.loads(result["body"])["error"] == "temporarily_unavailable"
        windows = math.floor(time.time() / WINDOW_SECONDS) - math.floor(started / WINDOW_SECONDS)
        calls = len(fake.calls)

    # THEN Cognito was called within the budget (one window, or two across a boundary)
    assert calls <= per_client * (windows + 1)
    assert statuses == Counter({400: calls, 429: 300 - calls})
    assert all(1 <= int(seconds) <= WINDOW_SECONDS for seconds in retry_after)
    # AND the table holds nothing for them: no negative answer, no lease, no client id; only
    # the budget's counters (the client's bucket and the total)
    assert cache_items(token_table) == []
    assert len(items(token_table)) <= 2
    assert all("client_id" not in item for item in items(token_table))


# --------------------------------------------------------------------------- Cognito failing


def test_cognito_failing_with_retry_after_is_left_alone_by_every_container(
    token_table: Any,
) -> None:
    # GIVEN four containers whose key once had a token (now expired), and Cognito answering
    # 429 with Retry-After: 20 to every call, behind the real Cognito client
    clock = FakeClock()
    token = json.dumps({"access_token": jwt_like(1), "expires_in": 3600, "token_type": "Bearer"})
    answers = {"now": Reply(200, token.encode(), {"Content-Type": "application/json"})}
    with loopback_endpoint(lambda _: answers["now"]) as cognito_endpoint:

        def cognito() -> CognitoTokenClient:
            return CognitoTokenClient(
                token_url=cognito_endpoint.url(),
                origin=FakeOriginSecret("origin-value-hostile-tests"),
                timeout_seconds=3,
                max_attempts=3,
                user_agent="test",
                sleep=clock.sleep,
                clock=clock,
                wall_clock=clock,
            )

        containers = [container(token_table, cognito(), clock) for _ in range(4)]
        assert containers[0].handle(token_request()).status == 200
        clock.advance(3601)
        answers["now"] = Reply(
            429,
            b'{"error":"too_many_requests"}',
            {"Content-Type": "application/json", "Retry-After": "20"},
        )
        calls_before = len(cognito_endpoint.calls)

        # WHEN 40 requests come round-robin over 60 s
        told: list[int] = []
        for n in range(40):
            with pytest.raises(TemporarilyUnavailable) as caught:
                containers[n % 4].handle(token_request())
            told.append(int(caught.value.to_response().headers["Retry-After"]))
            clock.advance(1.5)

        # THEN Cognito was asked once per 20 s window, by one container, once each time (its
        # Retry-After is longer than the proxy waits within a request)
        assert len(cognito_endpoint.calls) - calls_before == math.ceil(60 / 20)
    # AND every client was told to come back within Cognito's 20 s, counting down
    assert all(1 <= seconds <= 20 for seconds in told)
    assert told[:4] == [20, 19, 17, 16]


# --------------------------------------------------------------------------- a table writer


def raw_item(key: str) -> dict[str, Any]:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE_NAME, Key={"pk": {"S": key}}, ConsistentRead=True
    )["Item"]
    assert isinstance(item, dict)
    return item


def put_raw(item: dict[str, Any]) -> None:
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE_NAME, Item=item)


def test_a_replayed_invalidated_token_never_lives_longer_than_its_own_expiry(
    token_table: Any,
) -> None:
    # GIVEN a token cached, a copy of its item taken, then the client invalidated
    clock, issuer = FakeClock(), FakeCognitoClient()
    assert container(token_table, issuer, clock).handle(token_request()).status == 200
    copied = raw_item(cache_key())
    assert container(token_table, issuer, clock).invalidate_client(CLIENT_ID).deleted == 1

    # WHEN a table writer puts it back with a ten-year expiry and TTL
    copied["expires_at"] = {"N": str(clock() + TEN_YEARS)}
    copied["ttl"] = {"N": str(int(clock() + TEN_YEARS))}
    put_raw(copied)

    # THEN within the token's own life a new container serves it with its real remaining
    # life (the sealed record's), never ten years
    clock.advance(600)
    reply = container(token_table, issuer, clock).handle(token_request())
    assert json.loads(reply.body) == {
        "access_token": jwt_like(1),
        "expires_in": 3000,
        "token_type": "Bearer",
    }
    # AND after it, it is a miss: Cognito's new token replaces the forged item
    clock.advance(3000)
    reply = container(token_table, issuer, clock).handle(token_request())
    assert json.loads(reply.body)["access_token"] == jwt_like(2)
    assert float(raw_item(cache_key())["expires_at"]["N"]) < clock() + 3601


def test_a_negative_answer_dressed_as_a_token_is_a_miss(token_table: Any) -> None:
    # GIVEN an item holding Cognito's refusal sealed under the right secret and key, marked as
    # a token item with a long life (what the previous item format would have served)
    clock, issuer = FakeClock(), FakeCognitoClient()
    key = cache_key()
    refusal = json.dumps({"status": 400, "body": "eyJlcnJvciI6ImludmFsaWRfY2xpZW50In0="})
    token_table.put_item(
        Item={
            "pk": key,
            "kind": "token",
            "client_id": CLIENT_ID,
            "blob": seal(CLIENT_SECRET, key, refusal.encode()),
            "issued_at": Decimal(str(clock())),
            "expires_at": Decimal(str(clock() + 3600)),
            "refresh_at": Decimal(str(clock() + 2700)),
        }
    )

    # WHEN the key is requested
    reply = container(token_table, issuer, clock).handle(token_request())

    # THEN the item is a miss (its record is no token record): Cognito's token is served
    assert json.loads(reply.body)["access_token"] == jwt_like(1)
    assert issuer.calls == 1


MALFORMED: list[dict[str, Any]] = [
    {"blob": "not-bytes"},
    {"blob": Decimal(7)},
    {"blob": Binary(b"\x01" + b"\x00" * 40)},
    {"blob": Binary(b"")},
    {"lease_owner": 7, "lease_until": "soon"},
    {"lease_owner": "someone", "lease_until": Decimal("1e12")},
    {"backoff_until": "forever", "lease_until": ["x"]},
    {"expires_at": "never", "ttl": "later", "kind": 5, "issued_at": {"a": 1}},
    {"client_id": Decimal(3), "scope": Binary(b"\xff"), "schema_version": "x"},
]


@pytest.mark.parametrize("attributes", MALFORMED)
def test_malformed_attributes_are_a_miss_never_a_token_or_an_error(
    token_table: Any, attributes: dict[str, Any]
) -> None:
    # GIVEN the key's item with attributes of the wrong types
    clock, issuer, metrics = FakeClock(), FakeCognitoClient(), RecordingMetrics()
    token_table.put_item(Item={"pk": cache_key(), **attributes})

    # WHEN the key is requested
    reply = container(token_table, issuer, clock, metrics).handle(token_request())

    # THEN Cognito's token is served, and stored in place of the malformed item
    assert json.loads(reply.body)["access_token"] == jwt_like(1)
    assert metrics.counts[telemetry.MISS] == 1
    assert "blob" in raw_item(cache_key())


def test_the_handler_answers_a_request_whose_item_is_malformed(
    token_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the function, and its key's item made of the wrong types everywhere
    with proxy_environment(monkeypatch), stubbed_cognito() as fake:
        app.lambda_handler(load_event("token_body_credentials.json"), lambda_context())
        (item,) = cache_items(token_table)
        token_table.put_item(
            Item={"pk": item["pk"], **{k: v for a in MALFORMED for k, v in a.items()}}
        )
        app.reset()  # a new container: its L1 is empty

        # WHEN the client asks again
        result = app.lambda_handler(load_event("token_body_credentials.json"), lambda_context())

    # THEN it gets a new token from Cognito, never a 5xx
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["access_token"] == fake.issued[-1]
    assert len(fake.issued) == 2
    assert [i.get("client_id") for i in cache_items(token_table)] == [EVENTS_CLIENT_ID]
