"""Invalidating a client's cached tokens (an operator's admin event) on a moto table: the
store deletes through the client-id index in batches, within the deadline, warm containers
revalidate their L1 copies after L1_MAX_AGE_SECONDS, no flood of wrong secrets makes it long,
and no HTTP request can trigger it."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from function_setup.metrics import RecordingMetrics
from tests.conftest import REGION, TABLE_NAME
from tests.fakes.clock import T0, FakeClock
from tests.fakes.cognito_client import FakeCognitoClient, jwt_like
from tests.fakes.cognito_endpoint import CLIENT_ID as EVENTS_CLIENT_ID
from tests.fakes.cognito_endpoint import stubbed_cognito
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import load_event, proxy_environment
from tests.fakes.token_requests import (
    CLIENT_ID,
    CLIENT_SECRET,
    KEYS,
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    settings,
    token_request,
)
from token_proxy import app, telemetry
from token_proxy.admin import AdminEventError, handle_admin_event
from token_proxy.errors import StoreUnavailable
from token_proxy.l1 import TokenL1
from token_proxy.model import Deletion
from token_proxy.service import TokenService
from token_proxy.store import CLIENT_INDEX, DynamoTokenStore
from token_proxy.wiring import build_token_service

# Refusals add no application metric, and Powertools warns about the empty metric set.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MAX_AGE = 30.0


def scan() -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=REGION)
    items: list[dict[str, Any]] = client.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"]
    return items


def keys_of(client_id: str) -> set[str]:
    return {i["pk"]["S"] for i in scan() if i.get("client_id", {}).get("S") == client_id}


def container(
    table: Any, issuer: FakeCognitoClient, clock: FakeClock, metrics: RecordingMetrics | None = None
) -> TokenService:
    """One warm container: its own L1 (30 s max age on the test's clock), the shared table."""
    return build_token_service(
        settings=settings(l1_max_age_seconds=MAX_AGE),
        cognito=issuer,
        store=DynamoTokenStore(table),
        keys=KEYS,
        l1=TokenL1(64, max_age_seconds=MAX_AGE, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        metrics=metrics if metrics is not None else RecordingMetrics(),
    )


def access_token(reply: Any) -> str:
    assert reply.status == 200
    return str(json.loads(reply.body)["access_token"])


class FailingReads:
    """A table whose reads fail (DynamoDB unavailable) and whose writes go through."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get_item(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "GetItem")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


# --------------------------------------------------------------------------- the store


def never() -> bool:
    return False


def test_the_store_deletes_every_item_of_one_client_and_nothing_else(token_table: Any) -> None:
    # GIVEN client A's tokens for three scope sets, client B's token, and an item that holds
    # only a lease (it has no client_id)
    store = DynamoTokenStore(token_table)
    for key, client_id in (
        ("a1", CLIENT_ID),
        ("a2", CLIENT_ID),
        ("a3", CLIENT_ID),
        ("b1", OTHER_CLIENT_ID),
    ):
        store.put_token(
            key,
            blob=b"sealed",
            client_id=client_id,
            scope="api/read",
            issued_at=T0,
            expires_at=T0 + 3600,
            keep_until=T0 + 86_400,
            now=T0,
        )
    assert store.try_acquire_lease("lease-only", owner="x", now=T0, lease_seconds=10).won

    # WHEN client A is invalidated
    deletion = store.delete_client_items(CLIENT_ID, should_stop=never)

    # THEN its three items are gone; B's token and the lease-only item remain
    assert deletion == Deletion(3, complete=True)
    assert {i["pk"]["S"] for i in scan()} == {"b1", "lease-only"}
    # AND invalidating again (or a client with nothing cached) deletes nothing
    assert store.delete_client_items(CLIENT_ID, should_stop=never) == Deletion(0, True)
    assert store.delete_client_items("never-seen", should_stop=never) == Deletion(0, True)


def test_the_store_reports_a_missing_table_as_unavailable(token_table: Any) -> None:
    store = DynamoTokenStore(token_table)
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE_NAME)
    with pytest.raises(StoreUnavailable) as caught:
        store.delete_client_items(CLIENT_ID, should_stop=never)
    assert caught.value.__cause__ is not None


def test_the_index_the_store_queries_is_the_tables(token_table: Any) -> None:
    described = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=TABLE_NAME)
    (index,) = described["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == CLIENT_INDEX
    assert index["KeySchema"] == [{"AttributeName": "client_id", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


# --------------------------------------------------------------------------- warm containers


def test_warm_containers_stop_serving_an_invalidated_client_within_the_l1_max_age(
    token_table: Any,
) -> None:
    # GIVEN a warm container that served clients A and B (both now in its L1 and in DynamoDB)
    clock = FakeClock()
    issuer = FakeCognitoClient({CLIENT_ID: CLIENT_SECRET, OTHER_CLIENT_ID: OTHER_SECRET})
    metrics = RecordingMetrics()
    warm = container(token_table, issuer, clock, metrics)
    a = token_request()
    b = token_request(client_id=OTHER_CLIENT_ID, client_secret=OTHER_SECRET)
    assert [access_token(warm.handle(a)), access_token(warm.handle(b))] == [
        jwt_like(1),
        jwt_like(2),
    ]

    # WHEN an operator invalidates A through another container
    operator_metrics = RecordingMetrics()
    result = handle_admin_event(
        {"action": "invalidate", "client_id": CLIENT_ID},
        container(token_table, issuer, clock),
        metrics=operator_metrics,
        l1_max_age_seconds=MAX_AGE,
    )
    assert result["deleted_items"] == 1
    assert keys_of(CLIENT_ID) == set()
    assert len(keys_of(OTHER_CLIENT_ID)) == 1
    assert operator_metrics.counts[telemetry.INVALIDATED_ITEMS] == 1

    # THEN within the max age the warm container still answers A from memory (the bound)
    clock.advance(MAX_AGE - 1)
    assert access_token(warm.handle(a)) == jwt_like(1)
    assert issuer.calls == 2

    # AND once the max age is over it revalidates: A is gone from DynamoDB, so Cognito is asked
    # again; B is still in DynamoDB and is served without a Cognito call
    clock.advance(1)
    before = metrics.counts.copy()
    assert access_token(warm.handle(a)) == jwt_like(3)
    assert access_token(warm.handle(b)) == jwt_like(2)
    assert issuer.calls == 3
    # (the invalidation dropped A's proof with its items: its next call counts in the budget)
    assert dict(metrics.counts - before) == {
        telemetry.MISS: 1,
        telemetry.UNPROVEN_ADMITTED: 1,
        telemetry.HIT_DYNAMODB: 1,
    }
    # AND the fresh token of A is cached again, in DynamoDB and in memory
    assert len(keys_of(CLIENT_ID)) == 1
    before = metrics.counts.copy()
    assert access_token(warm.handle(a)) == jwt_like(3)
    assert dict(metrics.counts - before) == {telemetry.HIT_L1: 1}


def test_the_container_that_runs_the_invalidation_empties_its_own_l1(token_table: Any) -> None:
    # GIVEN a container that served client A
    clock, issuer = FakeClock(), FakeCognitoClient()
    warm = container(token_table, issuer, clock)
    warm.handle(token_request())

    # WHEN it runs the invalidation itself
    assert warm.invalidate_client(CLIENT_ID) == Deletion(1, complete=True)

    # THEN its next answer for A comes from Cognito at once
    assert access_token(warm.handle(token_request())) == jwt_like(2)
    assert issuer.calls == 2


def test_when_dynamodb_cannot_revalidate_the_l1_copy_keeps_being_served(token_table: Any) -> None:
    # GIVEN a warm container that cached A, whose DynamoDB reads then start failing
    clock, issuer, metrics = FakeClock(), FakeCognitoClient(), RecordingMetrics()
    warm = build_token_service(
        settings=settings(l1_max_age_seconds=MAX_AGE),
        cognito=issuer,
        keys=KEYS,
        store=DynamoTokenStore(FailingReads(token_table)),
        l1=TokenL1(64, max_age_seconds=MAX_AGE, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        metrics=metrics,
    )
    assert access_token(warm.handle(token_request())) == jwt_like(1)
    before = metrics.counts.copy()

    # WHEN A is asked for after the max age (the copy cannot be revalidated), twice
    clock.advance(MAX_AGE + 5)
    replies = [access_token(warm.handle(token_request())) for _ in range(2)]

    # THEN the copy is served (failing open, as for any DynamoDB fault), without a Cognito call,
    # and DynamoDB was tried only once (the copy is trusted for another max age)
    assert replies == [jwt_like(1), jwt_like(1)]
    assert issuer.calls == 1
    assert dict(metrics.counts - before) == {telemetry.STORE_ERROR: 1, telemetry.HIT_L1: 2}


# --------------------------------------------------------------------------- the handler


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, token_table: Any) -> Any:
    with proxy_environment(monkeypatch) as env:
        yield env


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = app.lambda_handler(event, lambda_context())
    return result


def test_the_invalidate_event_file_runs_through_the_handler(proxy_env: dict[str, str]) -> None:
    # GIVEN the example client's token cached through the HTTP API event
    with stubbed_cognito() as cognito:
        assert invoke(load_event("token_body_credentials.json"))["statusCode"] == 200
    assert len(keys_of(EVENTS_CLIENT_ID)) == 1

    # WHEN events/invalidate_client.json is invoked (aws lambda invoke --payload ...)
    result = invoke(load_event("invalidate_client.json"))

    # THEN the client's item is deleted and the answer says so
    assert result == {
        "action": "invalidate",
        "client_id": EVENTS_CLIENT_ID,
        "deleted_items": 1,
        "complete": True,
        "complete_within_seconds": float(proxy_env["L1_MAX_AGE_SECONDS"]),
    }
    assert keys_of(EVENTS_CLIENT_ID) == set()
    assert len(cognito.issued) == 1


def test_a_malformed_admin_event_fails_the_invocation(proxy_env: dict[str, str]) -> None:
    with pytest.raises(AdminEventError, match="unknown action"):
        invoke({"action": "invalidate-everything"})


@pytest.mark.parametrize("where", ["top level", "body", "query string"])
def test_no_http_request_can_invalidate(proxy_env: dict[str, str], where: str) -> None:
    # GIVEN the example client's token cached
    with stubbed_cognito() as cognito:
        assert invoke(load_event("token_body_credentials.json"))["statusCode"] == 200
        cached = keys_of(EVENTS_CLIENT_ID)
        assert len(cached) == 1

        # WHEN a token request carries the admin command in some part of the event
        event = copy.deepcopy(load_event("token_body_credentials.json"))
        if where == "top level":
            event.update({"action": "invalidate", "client_id": EVENTS_CLIENT_ID})
        elif where == "body":
            event["body"] += "&action=invalidate"
            event["headers"].pop("content-length", None)
        else:
            event["rawQueryString"] = "action=invalidate"
            event["queryStringParameters"] = {"action": "invalidate"}
        result = invoke(event)

    # THEN it is an HTTP request like any other: served from the cache, or refused for an
    # unknown parameter; the cached item is untouched
    body = json.loads(result["body"])
    if where == "top level":
        assert result["statusCode"] == 200
        assert body["access_token"] == cognito.issued[0]
    else:
        assert result["statusCode"] == 400
        assert body["error"] == "invalid_request"
    assert keys_of(EVENTS_CLIENT_ID) == cached
    assert len(cognito.issued) == 1
