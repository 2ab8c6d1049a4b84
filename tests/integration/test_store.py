"""The DynamoDB token store on moto; its contract also holds for the unit tests' in-memory fake."""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import REGION, TABLE_NAME
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy.errors import StoreUnavailable
from token_proxy.model import Deletion, LeaseAttempt, StoredItem
from token_proxy.store import DynamoTokenStore

T0 = 1_700_000_000.123456
KEY = "0f" * 32
BLOB = b"\x01sealed-bytes\x00\xff"
DAY = 86_400.0


@pytest.fixture(params=["dynamodb", "in-memory fake"])
def store(request: pytest.FixtureRequest) -> Any:
    """The real adapter on moto, and the unit tests' fake: both must pass the contract."""
    if request.param == "dynamodb":
        return DynamoTokenStore(request.getfixturevalue("token_table"))
    return InMemoryTokenStore()


def put(
    store: Any,
    key: str = KEY,
    *,
    expires_at: float = T0 + 3600,
    blob: bytes = BLOB,
    client_id: str = "client-1",
) -> None:
    store.put_token(
        key,
        blob=blob,
        client_id=client_id,
        scope="api/read api/write",
        issued_at=expires_at - 3600,
        expires_at=expires_at,
        keep_until=expires_at - 3600 + 30 * DAY,
        now=expires_at - 3600,
    )


def raw_item(key: str = KEY) -> dict[str, Any]:
    client = boto3.client("dynamodb", region_name=REGION)
    item: dict[str, Any] = client.get_item(TableName=TABLE_NAME, Key={"pk": {"S": key}})["Item"]
    return item


def never() -> bool:
    return False


# --------------------------------------------------------------------------- the contract


def test_put_get_round_trip(store: Any) -> None:
    # GIVEN a stored token item
    put(store)

    # WHEN it is read (eventually and strongly consistent)
    items = [store.get(KEY), store.get(KEY, consistent=True)]

    # THEN the blob comes back, without a lease
    assert items == [StoredItem(BLOB), StoredItem(BLOB)]
    assert store.get("another-key") is None


def test_a_token_never_replaces_a_longer_lived_one(store: Any) -> None:
    # GIVEN a token expiring at T0+3600
    put(store, blob=b"first")

    # WHEN an older token (expiring earlier) is put, then a newer one
    put(store, expires_at=T0 + 3000, blob=b"older")
    after_older = store.get(KEY)
    put(store, expires_at=T0 + 4000, blob=b"newer")
    after_newer = store.get(KEY)

    # THEN the older one was refused and the newer one replaced the item
    assert after_older.blob == b"first"
    assert after_newer.blob == b"newer"


def test_lease_acquire_contend_expire_release(store: Any) -> None:
    # GIVEN no item: A takes the lease for 10 s (there was no item before)
    assert store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10) == LeaseAttempt(
        True, None
    )
    assert store.get(KEY, consistent=True) == StoredItem(None, "A", T0 + 10)

    # WHEN B contends while the lease is live (also at its very last instant)
    contended = [
        store.try_acquire_lease(KEY, owner="B", now=T0 + 5, lease_seconds=10),
        store.try_acquire_lease(KEY, owner="B", now=T0 + 10, lease_seconds=10),
    ]

    # THEN B loses both times, and is told who holds it until when
    assert contended == [LeaseAttempt(False, StoredItem(None, "A", T0 + 10))] * 2

    # WHEN the lease has expired, B takes it over (and sees A's expired lease item)
    taken = store.try_acquire_lease(KEY, owner="B", now=T0 + 10.5, lease_seconds=10)
    assert taken == LeaseAttempt(True, StoredItem(None, "A", T0 + 10))

    # AND A's late release does nothing, while B's release of a key that never got a token
    # deletes the lease item: nothing stays behind
    store.release_lease(KEY, owner="A", delete_item=True)
    assert store.get(KEY, consistent=True).lease_owner == "B"
    store.release_lease(KEY, owner="B", delete_item=True)
    assert store.get(KEY, consistent=True) is None
    assert store.try_acquire_lease(KEY, owner="C", now=T0 + 11, lease_seconds=10).won


def test_a_lease_keeps_the_token_and_putting_a_token_drops_the_lease(store: Any) -> None:
    # GIVEN a token, then a lease on it (the refresh-ahead case): the lease write returns it
    put(store)
    attempt = store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)
    assert attempt == LeaseAttempt(True, StoredItem(BLOB))

    # THEN the token is still there, with the lease
    assert store.get(KEY, consistent=True) == StoredItem(BLOB, "A", T0 + 2810)

    # WHEN the refreshed token is put
    put(store, expires_at=T0 + 6400, blob=b"refreshed")

    # THEN the item holds the new token and no lease
    assert store.get(KEY, consistent=True) == StoredItem(b"refreshed")


def test_releasing_a_lease_on_a_token_item_keeps_the_token(store: Any) -> None:
    # GIVEN a token item under a lease
    put(store)
    store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)

    # WHEN the holder releases it, even asking to delete an item without a token
    store.release_lease(KEY, owner="A", delete_item=True)
    store.release_lease(KEY, owner="A", delete_item=False)

    # THEN the token stays and the lease is gone
    assert store.get(KEY, consistent=True) == StoredItem(BLOB)


def test_release_of_a_missing_item_or_lease_is_ignored(store: Any) -> None:
    store.release_lease("no-such-key", owner="A", delete_item=True)
    store.release_lease("no-such-key", owner="A", delete_item=False)
    put(store)
    store.release_lease(KEY, owner="A", delete_item=False)
    assert store.get(KEY).blob == BLOB


def test_a_back_off_keeps_the_lease_and_tells_contenders_until_when(store: Any) -> None:
    # GIVEN A holds a token item's lease and Cognito failed: A backs off for 30 s
    put(store)
    store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)
    assert store.back_off(KEY, owner="A", until=T0 + 2830) is True

    # WHEN B tries the lease after the lease time, within the back-off
    attempt = store.try_acquire_lease(KEY, owner="B", now=T0 + 2815, lease_seconds=10)

    # THEN B loses and learns the back-off; afterwards B takes the lease, the back-off cleared
    assert attempt == LeaseAttempt(False, StoredItem(BLOB, "A", T0 + 2830, T0 + 2830))
    later = store.try_acquire_lease(KEY, owner="B", now=T0 + 2831, lease_seconds=10)
    assert later.won
    assert store.get(KEY, consistent=True) == StoredItem(BLOB, "B", T0 + 2841)
    # AND only the lease's holder can back off
    assert store.back_off(KEY, owner="A", until=T0 + 9999) is False


def test_budget_counters_count_per_window_up_to_the_limit(store: Any) -> None:
    # GIVEN a limit of 3 calls per window
    counted = [store.count_call("budget#total", window=7, limit=3, expires_at=T0) for _ in range(4)]
    # THEN three are counted and the fourth is refused; another counter is separate
    assert counted == [True, True, True, False]
    assert store.count_call("budget#client#1", window=7, limit=3, expires_at=T0) is True
    # AND a new window starts from zero (the same counter item, reset)
    assert store.count_call("budget#total", window=8, limit=3, expires_at=T0 + 60) is True
    assert [
        store.count_call("budget#total", window=8, limit=3, expires_at=T0 + 60) for _ in range(3)
    ] == [True, True, False]


def test_the_client_items_are_deleted_and_nothing_else(store: Any) -> None:
    # GIVEN two token items of client-1, one of client-2, and a lease item
    put(store, "k1")
    put(store, "k2")
    put(store, "k3", client_id="client-2")
    store.try_acquire_lease("k4", owner="A", now=T0, lease_seconds=10)

    # WHEN client-1 is invalidated (twice: idempotent)
    first = store.delete_client_items("client-1", should_stop=never)
    again = store.delete_client_items("client-1", should_stop=never)

    # THEN its items are gone and the others remain
    assert (first, again) == (Deletion(2, complete=True), Deletion(0, complete=True))
    assert store.get("k1") is None and store.get("k2") is None
    assert store.get("k3") is not None and store.get("k4") is not None


def test_an_invalidation_told_to_stop_reports_itself_incomplete(store: Any) -> None:
    put(store, "k1")
    assert store.delete_client_items("client-1", should_stop=lambda: True) == Deletion(
        0, complete=False
    )
    assert store.get("k1") is not None


# --------------------------------------------------------------------------- DynamoDB specifics


def test_item_attributes_and_ttl(token_table: Any) -> None:
    # GIVEN a token put through the adapter
    store = DynamoTokenStore(token_table)
    put(store)

    # THEN the item has exactly the documented attributes and types, and stays (TTL) for as
    # long as it proves its key produced a token (30 days here), not just the token's life
    assert raw_item() == {
        "pk": {"S": KEY},
        "client_id": {"S": "client-1"},
        "scope": {"S": "api/read api/write"},
        "blob": {"B": BLOB},
        "issued_at": {"N": repr(T0)},
        "expires_at": {"N": repr(T0 + 3600)},
        "ttl": {"N": str(math.ceil(T0 + 30 * DAY) + 300)},
        "schema_version": {"N": "2"},
    }


def test_lease_only_item_gets_a_ttl_and_a_lease_does_not_move_a_tokens_ttl(
    token_table: Any,
) -> None:
    store = DynamoTokenStore(token_table)

    store.try_acquire_lease("lease-only", owner="A", now=T0, lease_seconds=10)
    put(store)
    store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)

    assert raw_item("lease-only")["ttl"] == {"N": str(math.ceil(T0 + 10) + 300)}
    assert raw_item()["ttl"] == {"N": str(math.ceil(T0 + 30 * DAY) + 300)}
    assert raw_item()["lease_until"] == {"N": repr(T0 + 2810)}


def test_a_budget_counter_is_one_item_whatever_the_window(token_table: Any) -> None:
    store = DynamoTokenStore(token_table)
    for window in (100, 101, 102):
        store.count_call("budget#total", window=window, limit=5, expires_at=window * 60 + 60)
        store.count_call("budget#total", window=window, limit=5, expires_at=window * 60 + 60)

    assert raw_item("budget#total") == {
        "pk": {"S": "budget#total"},
        "window": {"N": "102"},
        "calls": {"N": "2"},
        "ttl": {"N": str(102 * 60 + 60 + 300)},
    }
    assert token_table.scan(Select="COUNT")["Count"] == 1


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"blob": "not-bytes"}, StoredItem(None)),
        ({"blob": Decimal(7), "lease_owner": 12}, StoredItem(None)),
        ({"lease_owner": "A", "lease_until": "soon"}, StoredItem(None, "A", None)),
        ({"lease_until": Decimal(12), "backoff_until": [1]}, StoredItem(None, None, 12.0)),
        ({"blob": BLOB, "lease_until": b"\x01"}, StoredItem(BLOB)),
        ({"blob": BLOB, "kind": "negative", "expires_at": "never"}, StoredItem(BLOB)),
    ],
)
def test_malformed_attributes_are_read_as_absent_never_as_an_error(
    token_table: Any, attributes: dict[str, Any], expected: StoredItem
) -> None:
    # GIVEN an item a table writer filled with attributes of the wrong types
    token_table.put_item(Item={"pk": KEY, **attributes})

    # WHEN it is read, THEN what is malformed reads as absent; nothing raises
    assert DynamoTokenStore(token_table).get(KEY) == expected


def test_malformed_or_implausible_lease_and_expiry_never_block_the_key(token_table: Any) -> None:
    # GIVEN an item whose lease time is a string and whose expiry says ten years
    token_table.put_item(
        Item={
            "pk": KEY,
            "blob": b"forged",
            "lease_owner": "X",
            "lease_until": "forever",
            "expires_at": Decimal(T0 + 10 * 365 * DAY),
        }
    )
    store = DynamoTokenStore(token_table)

    # THEN the lease can be taken, and a real token replaces the forged one
    assert store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10).won
    put(store, expires_at=T0 + 3600, blob=b"real")
    assert store.get(KEY) == StoredItem(b"real")
    # AND so can a lease written for a year from now
    token_table.update_item(
        Key={"pk": KEY},
        UpdateExpression="SET lease_owner = :o, lease_until = :u",
        ExpressionAttributeValues={":o": "X", ":u": Decimal(T0 + 365 * DAY)},
    )
    assert store.try_acquire_lease(KEY, owner="B", now=T0 + 1, lease_seconds=10).won


def test_an_invalidation_deletes_in_batches_of_25_a_page_at_a_time(token_table: Any) -> None:
    # GIVEN 60 token items of one client
    store = DynamoTokenStore(token_table)
    for n in range(60):
        put(store, f"key-{n:02d}")
    calls: list[str] = []
    token_table.meta.client.meta.events.register(
        "before-call.dynamodb", lambda event_name, **kwargs: calls.append(event_name)
    )

    # WHEN the client is invalidated
    deletion = store.delete_client_items("client-1", should_stop=never)

    # THEN every item went, in 3 BatchWriteItem calls after one page of the index
    assert deletion == Deletion(60, complete=True)
    assert calls == ["before-call.dynamodb.Query"] + ["before-call.dynamodb.BatchWriteItem"] * 3
    assert token_table.scan(Select="COUNT")["Count"] == 0


def test_every_operation_on_a_missing_table_is_store_unavailable(token_table: Any) -> None:
    # GIVEN the table has been deleted
    store = DynamoTokenStore(token_table)
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE_NAME)

    # WHEN each operation runs, THEN it raises StoreUnavailable (release is silently ignored)
    operations = [
        lambda: store.get(KEY),
        lambda: store.get(KEY, consistent=True),
        lambda: put(store),
        lambda: store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10),
        lambda: store.back_off(KEY, owner="A", until=T0),
        lambda: store.count_call("budget#total", window=1, limit=1, expires_at=T0),
        lambda: store.delete_client_items("client-1", should_stop=never),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        assert caught.value.__cause__ is not None
    store.release_lease(KEY, owner="A", delete_item=True)
    store.release_lease(KEY, owner="A", delete_item=False)


def test_an_unreachable_endpoint_is_store_unavailable() -> None:
    # GIVEN a table behind an endpoint nobody listens on (loopback only, no retries)
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1)
    dynamodb = boto3.resource(
        "dynamodb", region_name=REGION, endpoint_url="http://127.0.0.1:9", config=config
    )
    store = DynamoTokenStore(dynamodb.Table(TABLE_NAME))

    # WHEN it is read or leased, THEN the connection error becomes StoreUnavailable
    with pytest.raises(StoreUnavailable):
        store.get(KEY)
    with pytest.raises(StoreUnavailable):
        store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10)
    store.release_lease(KEY, owner="A", delete_item=True)


def test_concurrent_lease_contention_has_exactly_one_winner(token_table: Any) -> None:
    # GIVEN 8 containers (own Table resource each, writes atomic per item as DynamoDB's are;
    # see local/moto_fidelity.py for why moto needs this) and 40 threads
    stores = [
        DynamoTokenStore(boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME))
        for _ in range(8)
    ]
    for round_number in range(5):
        key = f"cold-key-{round_number}"
        barrier = threading.Barrier(40)
        winners: list[int] = []

        def contend(
            n: int,
            key: str = key,
            barrier: threading.Barrier = barrier,
            winners: list[int] = winners,
        ) -> None:
            barrier.wait()
            attempt = stores[n % 8].try_acquire_lease(key, owner=f"o{n}", now=T0, lease_seconds=10)
            if attempt.won:
                winners.append(n)

        # WHEN they race for one cold key's lease
        threads = [threading.Thread(target=contend, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        # THEN exactly one wins, and the item names it
        assert len(winners) == 1
        assert stores[0].get(key, consistent=True).lease_owner == f"o{winners[0]}"


def test_concurrent_budget_counting_never_exceeds_the_limit(token_table: Any) -> None:
    # GIVEN 8 containers and 40 threads counting against a limit of 25, in a new window
    stores = [
        DynamoTokenStore(boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME))
        for _ in range(8)
    ]
    barrier = threading.Barrier(40)
    counted: list[bool] = []

    def count(n: int) -> None:
        barrier.wait()
        counted.append(stores[n % 8].count_call("budget#total", window=9, limit=25, expires_at=T0))

    threads = [threading.Thread(target=count, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # THEN exactly 25 were counted
    assert (counted.count(True), counted.count(False)) == (25, 15)


def test_a_retried_lease_write_recognises_the_lease_its_first_attempt_took(
    token_table: Any,
) -> None:
    # GIVEN a lease taken by owner "a" (as when DynamoDB applied a write whose answer timed out)
    store = DynamoTokenStore(token_table)
    assert store.try_acquire_lease(KEY, owner="a", now=T0, lease_seconds=10).won

    # WHEN botocore retries that same write (same owner, same times)
    retried = store.try_acquire_lease(KEY, owner="a", now=T0, lease_seconds=10)

    # THEN the retry reports the lease as held by us
    assert retried.won is True
    # AND nobody else gets it, nor does "a" re-enter it with another request's times
    assert store.try_acquire_lease(KEY, owner="b", now=T0, lease_seconds=10).won is False
    assert store.try_acquire_lease(KEY, owner="a", now=T0 + 1, lease_seconds=10).won is False
