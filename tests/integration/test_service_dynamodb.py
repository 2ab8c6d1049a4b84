"""The cache service on a moto DynamoDB table: shared cache, sealing at rest, faults, a burst."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import boto3
import pytest

from function_setup.metrics import RecordingMetrics
from tests.conftest import REGION, TABLE_NAME
from tests.fakes.clock import FakeClock
from tests.fakes.cognito_client import FakeCognitoClient, jwt_like
from tests.fakes.token_requests import CLIENT_ID, CLIENT_SECRET, KEYS, settings, token_request
from token_proxy import telemetry
from token_proxy.errors import NO_STORE_HEADERS, TemporarilyUnavailable, UpstreamUnavailable
from token_proxy.l1 import TokenL1
from token_proxy.model import HttpResponse
from token_proxy.service import TokenService
from token_proxy.settings import Settings
from token_proxy.store import DynamoTokenStore
from token_proxy.wiring import build_token_service

JWT_SHAPE = re.compile(rb"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def instance(
    table: Any,
    issuer: FakeCognitoClient,
    clock: FakeClock,
    metrics: RecordingMetrics | None = None,
    config: Settings | None = None,
) -> TokenService:
    """A service instance as one Lambda container would have it: its own L1, the shared table."""
    return build_token_service(
        settings=config or settings(),
        cognito=issuer,
        store=DynamoTokenStore(table),
        keys=KEYS,
        l1=TokenL1(64),
        clock=clock,
        sleep=clock.sleep,
        metrics=metrics or RecordingMetrics(),
    )


def assert_token(reply: HttpResponse, serial: int, expires_in: int) -> None:
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "access_token": jwt_like(serial),
        "expires_in": expires_in,
        "token_type": "Bearer",
    }
    assert reply.headers == NO_STORE_HEADERS


def scan(table: Any) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=REGION)
    items: list[dict[str, Any]] = client.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"]
    return items


def cache_items(table: Any) -> list[dict[str, Any]]:
    """The table's items but the budget counters (a bounded number of ``budget#...`` items)."""
    return [item for item in scan(table) if not item["pk"]["S"].startswith("budget#")]


def test_a_second_instance_is_served_from_dynamodb(token_table: Any) -> None:
    # GIVEN container 1 fetched a token into the shared table
    clock, issuer = FakeClock(), FakeCognitoClient()
    first = instance(token_table, issuer, clock)
    assert_token(first.handle(token_request()), serial=1, expires_in=3600)

    # WHEN container 2 (its own empty L1) gets the same request 20 minutes later
    clock.advance(1200)
    metrics = RecordingMetrics()
    second = instance(token_table, issuer, clock, metrics)
    replies = [second.handle(token_request()) for _ in range(2)]

    # THEN it serves the stored token with its real remaining life: DynamoDB, then its L1
    for reply in replies:
        assert_token(reply, serial=1, expires_in=2400)
    assert issuer.calls == 1
    assert dict(metrics.counts) == {telemetry.HIT_DYNAMODB: 1, telemetry.HIT_L1: 1}


def test_refresh_ahead_across_containers_calls_cognito_once(token_table: Any) -> None:
    # GIVEN three containers that all cached the token
    clock, issuer = FakeClock(), FakeCognitoClient()
    containers = [instance(token_table, issuer, clock) for _ in range(3)]
    for container in containers:
        container.handle(token_request())

    # WHEN each gets requests inside the refresh window
    clock.advance(2750)
    replies = [c.handle(token_request()) for c in containers for _ in range(2)]

    # THEN one refresh served everyone the new token
    assert issuer.calls == 2
    for reply in replies:
        assert_token(reply, serial=2, expires_in=3600)


def test_an_expired_item_ttl_has_not_deleted_is_never_served(token_table: Any) -> None:
    # GIVEN an item whose expires_at passed an hour ago (TTL has not removed it yet)
    clock, issuer = FakeClock(), FakeCognitoClient()
    instance(token_table, issuer, clock).handle(token_request())
    clock.advance(7200)
    assert len(cache_items(token_table)) == 1

    # WHEN a new container asks while Cognito is down
    issuer.script.append(UpstreamUnavailable("down"))
    with pytest.raises(TemporarilyUnavailable):
        instance(token_table, issuer, clock).handle(token_request())

    # THEN nothing was served; and when Cognito is back (and the fleet's back-off of the key,
    # LEASE_SECONDS, is over) the item is replaced
    clock.advance(settings().lease_seconds + 1)
    assert_token(instance(token_table, issuer, clock).handle(token_request()), 3, 3600)


def test_no_plaintext_token_or_secret_is_stored(token_table: Any) -> None:
    # GIVEN a token, a refreshed token and a negative answer written through the service
    clock, issuer = FakeClock(), FakeCognitoClient()
    service = instance(token_table, issuer, clock)
    served = [service.handle(token_request(scopes=("api/read", "api/write")))]
    clock.advance(3000)
    served.append(service.handle(token_request(scopes=("api/read", "api/write"))))
    service.handle(token_request(client_secret="wrong-secret"))
    tokens = [json.loads(r.body)["access_token"] for r in served]
    assert tokens == [jwt_like(1), jwt_like(2)]

    # WHEN the whole table is dumped
    items = scan(token_table)

    # THEN the table holds the token item only (the negative answer stayed in memory) besides
    # the budget's counters, and no attribute holds a token, a secret, or anything JWT-shaped
    assert len(cache_items(token_table)) == 1
    for item in items:
        for name, value in item.items():
            raw = value["B"] if "B" in value else str(next(iter(value.values()))).encode()
            for forbidden in (*tokens, CLIENT_SECRET, "wrong-secret"):
                assert forbidden.encode() not in raw, name
            assert not JWT_SHAPE.search(raw), name
    # AND the operator-facing attributes are plain
    (token_item,) = cache_items(token_table)
    assert token_item["client_id"] == {"S": CLIENT_ID}
    assert token_item["scope"] == {"S": "api/read api/write"}


def test_a_deleted_table_still_serves_via_cognito(token_table: Any) -> None:
    # GIVEN the table is gone (every DynamoDB call fails)
    clock, issuer, metrics = FakeClock(), FakeCognitoClient(), RecordingMetrics()
    service = instance(token_table, issuer, clock, metrics)
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE_NAME)

    # WHEN tokens are requested
    replies = [service.handle(token_request()) for _ in range(3)]

    # THEN Cognito's token is served (then from L1), and the store errors were counted
    for reply in replies:
        assert_token(reply, serial=1, expires_in=3600)
    assert issuer.calls == 1
    # read, lease, the two budget counters (then counted in this container alone), write
    assert metrics.counts[telemetry.STORE_ERROR] == 5


def test_a_burst_on_a_cold_key_costs_one_cognito_call(token_table: Any) -> None:
    # GIVEN 8 containers (own L1 and Table resource each, one shared table whose writes are
    # atomic per item as DynamoDB's are; see local/moto_fidelity.py) and a Cognito that takes
    # 0.2 s per call, on the real clock
    issuer = FakeCognitoClient(delay=0.2)
    config = settings(coalesce_wait_seconds=20.0, lease_seconds=30.0, function_timeout_seconds=29.0)
    containers = [
        build_token_service(
            settings=config,
            cognito=issuer,
            keys=KEYS,
            store=DynamoTokenStore(
                boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME)
            ),
            l1=TokenL1(64),
            metrics=RecordingMetrics(),
        )
        for _ in range(8)
    ]
    barrier = threading.Barrier(200)
    replies: list[HttpResponse] = []
    failures: list[BaseException] = []

    def client(n: int) -> None:
        barrier.wait()
        try:
            replies.append(containers[n % 8].handle(token_request()))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    # WHEN 200 threads ask for the same cold key at once
    threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # THEN exactly one Cognito call produced 200 successful answers with the same token
    assert failures == []
    assert issuer.calls == 1
    assert len(replies) == 200
    assert {r.status for r in replies} == {200}
    assert {json.loads(r.body)["access_token"] for r in replies} == {jwt_like(1)}
    now = time.time()
    for reply in replies:
        assert 3590 <= json.loads(reply.body)["expires_in"] <= 3600
    # AND the table holds the sealed token and no lease
    (item,) = cache_items(token_table)
    assert "blob" in item
    assert "lease_owner" not in item
    assert float(item["expires_at"]["N"]) > now
