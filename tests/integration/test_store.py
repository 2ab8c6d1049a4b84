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
from token_proxy.model import StoredItem
from token_proxy.store import DynamoTokenStore

T0 = 1_700_000_000.123456
KEY = "0f" * 32
BLOB = b"\x01sealed-bytes\x00\xff"


@pytest.fixture(params=["dynamodb", "in-memory fake"])
def store(request: pytest.FixtureRequest) -> Any:
    """The real adapter on moto, and the unit tests' fake: both must pass the contract."""
    if request.param == "dynamodb":
        return DynamoTokenStore(request.getfixturevalue("token_table"))
    return InMemoryTokenStore()


def put(store: Any, key: str = KEY, *, expires_at: float = T0 + 3600, blob: bytes = BLOB) -> None:
    store.put_token(
        key,
        blob=blob,
        client_id="client-1",
        scope="api/read api/write",
        issued_at=expires_at - 3600,
        expires_at=expires_at,
        refresh_at=expires_at - 900,
    )


def raw_item(key: str = KEY) -> dict[str, Any]:
    client = boto3.client("dynamodb", region_name=REGION)
    item: dict[str, Any] = client.get_item(TableName=TABLE_NAME, Key={"pk": {"S": key}})["Item"]
    return item


# --------------------------------------------------------------------------- the contract


def test_put_get_round_trip(store: Any) -> None:
    # GIVEN a stored token item
    put(store)

    # WHEN it is read (eventually and strongly consistent)
    items = [store.get(KEY), store.get(KEY, consistent=True)]

    # THEN the blob and the exact times come back, without a lease
    expected = StoredItem("token", BLOB, T0, T0 + 3600, T0 + 2700, None, None)
    assert items == [expected, expected]
    assert store.get("another-key") is None


def test_put_negative_round_trip(store: Any) -> None:
    store.put_negative(KEY, blob=BLOB, client_id="client-1", until=T0 + 30)

    item = store.get(KEY)

    assert item is not None
    assert (item.kind, item.blob, item.expires_at) == ("negative", BLOB, T0 + 30)
    assert (item.lease_owner, item.lease_until) == (None, None)


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
    assert (after_newer.blob, after_newer.expires_at) == (b"newer", T0 + 4000)


def test_a_token_replaces_a_negative_entry_and_a_negative_replaces_a_token(store: Any) -> None:
    store.put_negative(KEY, blob=b"negative", client_id="client-1", until=T0 + 1_000_000)
    put(store, blob=b"token")
    assert (store.get(KEY).kind, store.get(KEY).blob) == ("token", b"token")

    store.put_negative(KEY, blob=b"negative", client_id="client-1", until=T0 + 30)
    assert (store.get(KEY).kind, store.get(KEY).blob) == ("negative", b"negative")


def test_lease_acquire_contend_expire_release(store: Any) -> None:
    # GIVEN no item: A takes the lease for 10 s
    assert store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10) is True
    item = store.get(KEY, consistent=True)
    assert item == StoredItem("token", None, 0.0, 0.0, 0.0, "A", T0 + 10)

    # WHEN B contends while the lease is live (also at its very last instant)
    contended = [
        store.try_acquire_lease(KEY, owner="B", now=T0 + 5, lease_seconds=10),
        store.try_acquire_lease(KEY, owner="B", now=T0 + 10, lease_seconds=10),
    ]

    # THEN B loses both times
    assert contended == [False, False]

    # WHEN the lease has expired, B takes it over
    assert store.try_acquire_lease(KEY, owner="B", now=T0 + 10.5, lease_seconds=10) is True
    assert store.get(KEY, consistent=True).lease_owner == "B"

    # AND A's late release does nothing, while B's release frees it for C at once
    store.release_lease(KEY, owner="A")
    assert store.get(KEY, consistent=True).lease_owner == "B"
    store.release_lease(KEY, owner="B")
    assert store.get(KEY, consistent=True).lease_until is None
    assert store.try_acquire_lease(KEY, owner="C", now=T0 + 11, lease_seconds=10) is True


def test_a_lease_keeps_the_token_and_putting_a_token_drops_the_lease(store: Any) -> None:
    # GIVEN a token, then a lease on it (the refresh-ahead case)
    put(store)
    assert store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)

    # THEN the token is still there, with the lease
    leased = store.get(KEY, consistent=True)
    assert (leased.blob, leased.expires_at, leased.lease_owner) == (BLOB, T0 + 3600, "A")

    # WHEN the refreshed token is put
    put(store, expires_at=T0 + 6400, blob=b"refreshed")

    # THEN the item holds the new token and no lease
    assert store.get(KEY, consistent=True) == StoredItem(
        "token", b"refreshed", T0 + 2800, T0 + 6400, T0 + 5500, None, None
    )


def test_release_of_a_missing_item_or_lease_is_ignored(store: Any) -> None:
    store.release_lease("no-such-key", owner="A")
    put(store)
    store.release_lease(KEY, owner="A")
    assert store.get(KEY).blob == BLOB


def test_delete(store: Any) -> None:
    put(store)
    store.delete(KEY)
    store.delete(KEY)
    assert store.get(KEY) is None


# --------------------------------------------------------------------------- DynamoDB specifics


def test_item_attributes_and_ttl(token_table: Any) -> None:
    # GIVEN a token put through the adapter
    store = DynamoTokenStore(token_table)
    put(store)

    # THEN the item has exactly the documented attributes, types and TTL
    item = raw_item()
    assert item == {
        "pk": {"S": KEY},
        "kind": {"S": "token"},
        "client_id": {"S": "client-1"},
        "scope": {"S": "api/read api/write"},
        "blob": {"B": BLOB},
        "issued_at": {"N": repr(T0)},
        "expires_at": {"N": repr(T0 + 3600)},
        "refresh_at": {"N": repr(T0 + 2700)},
        "ttl": {"N": str(math.ceil(T0 + 3600) + 300)},
        "schema_version": {"N": "1"},
    }


def test_lease_only_item_gets_a_ttl_and_a_lease_does_not_move_a_tokens_ttl(
    token_table: Any,
) -> None:
    store = DynamoTokenStore(token_table)

    store.try_acquire_lease("lease-only", owner="A", now=T0, lease_seconds=10)
    put(store)
    store.try_acquire_lease(KEY, owner="A", now=T0 + 2800, lease_seconds=10)

    assert raw_item("lease-only")["ttl"] == {"N": str(math.ceil(T0 + 10) + 300)}
    assert raw_item()["ttl"] == {"N": str(math.ceil(T0 + 3600) + 300)}
    assert raw_item()["lease_until"] == {"N": repr(T0 + 2810)}


def test_negative_item_attributes(token_table: Any) -> None:
    DynamoTokenStore(token_table).put_negative(KEY, blob=BLOB, client_id="c", until=T0 + 30)

    assert raw_item() == {
        "pk": {"S": KEY},
        "kind": {"S": "negative"},
        "client_id": {"S": "c"},
        "blob": {"B": BLOB},
        "expires_at": {"N": repr(T0 + 30)},
        "ttl": {"N": str(math.ceil(T0 + 30) + 300)},
        "schema_version": {"N": "1"},
    }


def test_numbers_come_back_as_floats(token_table: Any) -> None:
    token_table.put_item(
        Item={
            "pk": KEY,
            "kind": "token",
            "blob": BLOB,
            "issued_at": Decimal(1),
            "expires_at": Decimal("3601.5"),
            "refresh_at": Decimal(2701),
            "lease_owner": "A",
            "lease_until": Decimal(12),
        }
    )

    item = DynamoTokenStore(token_table).get(KEY)

    assert item == StoredItem("token", BLOB, 1.0, 3601.5, 2701.0, "A", 12.0)
    assert item is not None
    assert all(type(v) is float for v in (item.issued_at, item.expires_at, item.lease_until))


def test_every_operation_on_a_missing_table_is_store_unavailable(token_table: Any) -> None:
    # GIVEN the table has been deleted
    store = DynamoTokenStore(token_table)
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE_NAME)

    # WHEN each operation runs, THEN it raises StoreUnavailable (release is silently ignored)
    operations = [
        lambda: store.get(KEY),
        lambda: store.get(KEY, consistent=True),
        lambda: put(store),
        lambda: store.put_negative(KEY, blob=BLOB, client_id="c", until=T0),
        lambda: store.try_acquire_lease(KEY, owner="A", now=T0, lease_seconds=10),
        lambda: store.delete(KEY),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        assert caught.value.__cause__ is not None
    store.release_lease(KEY, owner="A")


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
    store.release_lease(KEY, owner="A")


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
            if stores[n % 8].try_acquire_lease(key, owner=f"o{n}", now=T0, lease_seconds=10):
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


def test_a_retried_lease_write_recognises_the_lease_its_first_attempt_took(
    token_table: Any,
) -> None:
    # GIVEN a lease taken by owner "a" (as when DynamoDB applied a write whose answer timed out)
    store = DynamoTokenStore(token_table)
    assert store.try_acquire_lease(KEY, owner="a", now=T0, lease_seconds=10)

    # WHEN botocore retries that same write (same owner, same times)
    retried = store.try_acquire_lease(KEY, owner="a", now=T0, lease_seconds=10)

    # THEN the retry reports the lease as held by us
    assert retried is True
    # AND nobody else gets it, nor does "a" re-enter it with another request's times
    assert store.try_acquire_lease(KEY, owner="b", now=T0, lease_seconds=10) is False
    assert store.try_acquire_lease(KEY, owner="a", now=T0 + 1, lease_seconds=10) is False
