"""The DynamoDB token store: one item per cache key (the only module that reads or writes it).

Item kinds, by what they hold:

- a token item: ``pk`` (the cache key), ``blob`` (the sealed record: the token response, its
  times and client id; :mod:`token_proxy.token_cache`), plain ``client_id``, ``scope``,
  ``issued_at`` and ``expires_at`` for operators (never trusted), ``ttl`` (DynamoDB TTL: the
  item stays while it still proves that its key once produced a token, see ``keep_until``) and
  ``schema_version``; while its key is being fetched or backed off, also the lease fields
  ``lease_owner``, ``lease_until`` and ``backoff_until``;
- a lease item: only the lease fields and ``ttl``, while a key that never produced a token is
  being fetched. It is deleted when the fetch ends without a token (:meth:`release_lease`), so
  keys that never produce a token leave nothing behind;
- a budget counter (``pk`` ``budget#...``): ``window`` and ``calls``, see :meth:`count_call`.

Nothing a caller sent that Cognito has not confirmed is written: lease items and counters hold
no client id, and answers that are not tokens are not stored at all.

Reads never fail on a malformed attribute: what the store acts on (the blob, the lease fields,
the back-off) is ``None`` when it is not of its type, and everything else is the sealed record's
business. Every AWS failure becomes :class:`StoreUnavailable`.

The global secondary index :data:`CLIENT_INDEX` (KEYS_ONLY, on ``client_id``) lists a client's
token items for :meth:`DynamoTokenStore.delete_client_items` (an operator's invalidation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.model import Deletion, LeaseAttempt, StoredItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

__all__ = [
    "BATCH_DELETE_SIZE",
    "CLIENT_INDEX",
    "SCHEMA_VERSION",
    "TTL_GRACE_SECONDS",
    "DynamoTokenStore",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: DynamoDB TTL removes an item some time after ``ttl``; keep it a little past its use.
TTL_GRACE_SECONDS = 300
_CONDITIONAL_FAILED = "ConditionalCheckFailedException"
#: The table's index on ``client_id`` (template.yaml declares it under this name).
CLIENT_INDEX = "client-id"
#: BatchWriteItem takes at most 25 put or delete requests
#: (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
BATCH_DELETE_SIZE = 25
#: Resubmissions of a batch's UnprocessedItems before the invalidation reports itself incomplete.
MAX_BATCH_RESUBMITS = 2
#: Cognito access tokens live at most 24 hours: a stored ``expires_at`` further away than this
#: (plus a margin) was not written by the proxy, and may be replaced.
MAX_TOKEN_LIFETIME_SECONDS = 86_400
#: No lease or back-off the proxy takes lasts this long: a later ``lease_until`` was not written
#: by the proxy and does not block the key.
MAX_LEASE_SECONDS = 3_600
#: The lease's attributes, as update expressions name them.
_LEASE_NAMES = {
    "#lease_owner": "lease_owner",
    "#lease_until": "lease_until",
    "#backoff_until": "backoff_until",
}
#: A budget counter counts a call while it is in the window and under the limit.
_COUNT_IN_WINDOW = (
    "attribute_type(#window, :n) AND attribute_type(#calls, :n)"
    " AND #window = :window AND #calls < :limit"
)


def _number(value: float) -> Decimal:
    """A float as the Decimal boto3 accepts, round-tripping exactly (shortest repr)."""
    return Decimal(repr(float(value)))


def _ttl(until: float) -> int:
    return math.ceil(until) + TTL_GRACE_SECONDS


def _time(value: Any) -> float | None:
    """A stored number of seconds, or None when absent or malformed."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _blob(value: Any) -> bytes | None:
    if isinstance(value, Binary):
        value = value.__bytes__()  # the boto3 stubs type __bytes__ as str; it returns bytes
    return bytes(value) if isinstance(value, bytes | bytearray) else None


def item_from_attributes(item: Mapping[str, Any]) -> StoredItem:
    """What the store acts on in an item's attributes (boto3's resource types)."""
    owner = item.get("lease_owner")
    return StoredItem(
        blob=_blob(item.get("blob")),
        lease_owner=owner if isinstance(owner, str) else None,
        lease_until=_time(item.get("lease_until")),
        backoff_until=_time(item.get("backoff_until")),
    )


def _item_from_wire(item: Mapping[str, Any]) -> StoredItem:
    """The same from the low-level client's attribute values (``{"S": ...}``)."""
    blob = item.get("blob", {}).get("B")
    owner = item.get("lease_owner", {}).get("S")
    return StoredItem(
        blob=blob if isinstance(blob, bytes) else None,
        lease_owner=owner if isinstance(owner, str) else None,
        lease_until=_wire_time(item.get("lease_until")),
        backoff_until=_wire_time(item.get("backoff_until")),
    )


def _wire_time(value: Any) -> float | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("N"), str):
        return None
    try:
        return _time(Decimal(value["N"]))
    except ArithmeticError:
        return None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoTokenStore:
    """Reads and writes cache items; every AWS failure becomes :class:`StoreUnavailable`."""

    def __init__(self, table: Table) -> None:
        self._table = table

    # ------------------------------------------------------------------ reads

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        try:
            answer = self._table.get_item(Key={"pk": key}, ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table read failed") from exc
        item = answer.get("Item")
        return None if item is None else item_from_attributes(item)

    # ------------------------------------------------------------------ tokens

    def put_token(
        self,
        key: str,
        *,
        blob: bytes,
        client_id: str,
        scope: str,
        issued_at: float,
        expires_at: float,
        keep_until: float,
        now: float,
    ) -> None:
        """Replace the item (dropping any lease) unless it holds a token that lives longer.

        The item stays until ``keep_until`` (DynamoDB TTL): after its token expired it still
        proves that its key produced a token. A stored ``expires_at`` that is not a number or
        lies beyond any token's lifetime was not written by the proxy and does not protect
        the item.
        """
        item: dict[str, Any] = {
            "pk": key,
            "client_id": client_id,
            "scope": scope,
            "blob": blob,
            "issued_at": _number(issued_at),
            "expires_at": _number(expires_at),
            "ttl": _ttl(max(keep_until, expires_at)),
            "schema_version": SCHEMA_VERSION,
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(#expires_at) OR NOT attribute_type(#expires_at, :n)"
                    " OR #expires_at <= :expires_at OR #expires_at > :implausible"
                ),
                ExpressionAttributeNames={"#expires_at": "expires_at"},
                ExpressionAttributeValues={
                    ":n": "N",
                    ":expires_at": _number(expires_at),
                    ":implausible": _number(now + MAX_TOKEN_LIFETIME_SECONDS + TTL_GRACE_SECONDS),
                },
            )
        except ClientError as exc:
            if _error_code(exc) == _CONDITIONAL_FAILED:
                logger.debug("a longer-lived token is already stored", extra={"key": key[:8]})
                return
            raise StoreUnavailable("token table write failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table write failed") from exc

    # ------------------------------------------------------------------ the lease

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> LeaseAttempt:
        """Take the key's lease unless someone holds an unexpired one (creating a lease item if
        there is no item); either way, with the item as it was before the write.

        UpdateItem returns the item's attributes from before the update (``ReturnValues``
        ``ALL_OLD``) and, when the condition fails, the item that made it fail
        (``ReturnValuesOnConditionCheckFailure``), so neither outcome costs another read
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html).
        """
        lease_until = now + lease_seconds
        try:
            answer = self._table.update_item(
                Key={"pk": key},
                UpdateExpression=(
                    "SET #lease_owner = :owner, #lease_until = :lease_until,"
                    " #ttl = if_not_exists(#ttl, :ttl) REMOVE #backoff_until"
                ),
                # Types first: DynamoDB compares numbers only with numbers (and moto raises on a
                # comparison of a string with a number where DynamoDB evaluates it as false).
                ConditionExpression=(
                    "attribute_not_exists(#lease_until) OR NOT attribute_type(#lease_until, :n)"
                    " OR #lease_until < :now OR #lease_until > :implausible"
                ),
                ExpressionAttributeNames={**_LEASE_NAMES, "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":owner": owner,
                    ":lease_until": _number(lease_until),
                    ":now": _number(now),
                    ":n": "N",
                    ":implausible": _number(now + MAX_LEASE_SECONDS),
                    ":ttl": _ttl(lease_until),
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) == _CONDITIONAL_FAILED:
                held = _item_from_wire(dict(exc.response.get("Item") or {}))  # type: ignore[call-overload]
                # botocore retries a write whose answer timed out; the retry then fails on the
                # lease its first attempt took. That lease is ours.
                ours = held.lease_owner == owner and held.lease_until == float(_number(lease_until))
                return LeaseAttempt(won=ours, item=held)
            raise StoreUnavailable("token table lease failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table lease failed") from exc
        old = answer.get("Attributes")
        return LeaseAttempt(won=True, item=None if not old else item_from_attributes(old))

    def release_lease(self, key: str, *, owner: str, delete_item: bool) -> None:
        """Drop the lease if ``owner`` still holds it; with ``delete_item`` (the item held no
        token when the lease was taken), delete the whole item, unless a token arrived since.
        Any failure is ignored: a lease left behind expires."""
        try:
            if delete_item:
                self._table.delete_item(
                    Key={"pk": key},
                    ConditionExpression="#lease_owner = :owner AND attribute_not_exists(#blob)",
                    ExpressionAttributeNames={"#lease_owner": "lease_owner", "#blob": "blob"},
                    ExpressionAttributeValues={":owner": owner},
                )
                return
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="REMOVE #lease_owner, #lease_until, #backoff_until",
                ConditionExpression="#lease_owner = :owner",
                ExpressionAttributeNames=_LEASE_NAMES,
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as exc:
            if _error_code(exc) != _CONDITIONAL_FAILED:
                logger.warning(
                    "lease release failed; it will expire",
                    extra={"key": key[:8], "error_code": _error_code(exc)},
                )
        except BotoCoreError:
            logger.warning("lease release failed; it will expire", extra={"key": key[:8]})

    def back_off(self, key: str, *, owner: str, until: float) -> bool:
        """Keep the lease until ``until`` and mark it as a back-off (Cognito failed): the whole
        fleet leaves the key alone until then. False when the lease is no longer ours."""
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="SET #lease_until = :until, #backoff_until = :until",
                ConditionExpression="#lease_owner = :owner",
                ExpressionAttributeNames=_LEASE_NAMES,
                ExpressionAttributeValues={":owner": owner, ":until": _number(until)},
            )
        except ClientError as exc:
            if _error_code(exc) == _CONDITIONAL_FAILED:
                return False
            raise StoreUnavailable("token table back-off failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table back-off failed") from exc
        return True

    # ------------------------------------------------------------------ budget counters

    def count_call(self, counter: str, *, window: int, limit: int, expires_at: float) -> bool:
        """Count one call against ``counter`` in time window ``window`` unless it already holds
        ``limit`` calls there; True when counted.

        One item per counter, whatever the window: ``window`` and ``calls`` are conditional
        atomic updates (``ADD``), so the fleet's calls are counted exactly and the table holds
        one item per counter, never one per window. A counter still in an older window (or
        malformed) is reset to this window first.
        """
        try:
            try:
                self._add_call(
                    counter, window, limit, ReturnValuesOnConditionCheckFailure="ALL_OLD"
                )
                return True
            except ClientError as exc:
                if _error_code(exc) != _CONDITIONAL_FAILED:
                    raise
                old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
                if _wire_time(old.get("window")) == float(window):
                    return False  # this window's calls are spent
            try:
                self._table.update_item(
                    Key={"pk": counter},
                    UpdateExpression="SET #window = :window, #calls = :one, #ttl = :ttl",
                    ConditionExpression=(
                        "attribute_not_exists(#window) OR NOT attribute_type(#window, :n)"
                        " OR #window < :window"
                    ),
                    ExpressionAttributeNames={
                        "#window": "window",
                        "#calls": "calls",
                        "#ttl": "ttl",
                    },
                    ExpressionAttributeValues={
                        ":window": window,
                        ":one": 1,
                        ":n": "N",
                        ":ttl": _ttl(expires_at),
                    },
                )
                return limit >= 1
            except ClientError as exc:
                if _error_code(exc) != _CONDITIONAL_FAILED:
                    raise
            # Another request opened this window in between: count in it once more.
            self._add_call(counter, window, limit)
            return True
        except ClientError as exc:
            if _error_code(exc) == _CONDITIONAL_FAILED:
                return False
            raise StoreUnavailable("token table counter failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table counter failed") from exc

    def _add_call(self, counter: str, window: int, limit: int, **options: Any) -> None:
        """Count one call in ``window`` if it is the counter's window and under ``limit``."""
        self._table.update_item(
            Key={"pk": counter},
            UpdateExpression="ADD #calls :one",
            ConditionExpression=_COUNT_IN_WINDOW,
            ExpressionAttributeNames={"#window": "window", "#calls": "calls"},
            ExpressionAttributeValues={":one": 1, ":window": window, ":limit": limit, ":n": "N"},
            **options,
        )

    # ------------------------------------------------------------------ invalidation

    def delete_client_items(self, client_id: str, *, should_stop: Callable[[], bool]) -> Deletion:
        """Delete every token item cached for ``client_id``, a page of the index and 25 items
        (one BatchWriteItem) at a time, until done or ``should_stop()`` (the deadline is near);
        the result says how many were deleted and whether every one was.

        An item's key is an HMAC over its client id and secret, so a key listed for a client
        can only ever hold that client's token: deleting it unconditionally is safe. The index
        is eventually consistent (an item written in the last moment may be missed), and the
        deletes are idempotent: running it again is harmless.
        """
        query: dict[str, Any] = {
            "IndexName": CLIENT_INDEX,
            "KeyConditionExpression": Key("client_id").eq(client_id),
        }
        deleted = 0
        try:
            while True:
                if should_stop():
                    return Deletion(deleted, complete=False)
                page = self._table.query(**query)
                keys = [str(item["pk"]) for item in page.get("Items", [])]
                for start in range(0, len(keys), BATCH_DELETE_SIZE):
                    if should_stop():
                        return Deletion(deleted, complete=False)
                    batch = keys[start : start + BATCH_DELETE_SIZE]
                    left = self._delete_batch(batch)
                    deleted += len(batch) - left
                    if left:
                        return Deletion(deleted, complete=False)
                if "LastEvaluatedKey" not in page:
                    return Deletion(deleted, complete=True)
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table invalidation failed") from exc

    def _delete_batch(self, keys: list[str]) -> int:
        """Delete ``keys`` with BatchWriteItem, resubmitting what DynamoDB left unprocessed a
        bounded number of times; returns how many are still left."""
        name = self._table.name
        # The Table resource's client takes and returns Python values, as the resource does.
        requests: list[Any] = [{"DeleteRequest": {"Key": {"pk": key}}} for key in keys]
        client = self._table.meta.client
        for _ in range(1 + MAX_BATCH_RESUBMITS):
            answer = client.batch_write_item(RequestItems={name: requests})
            requests = list((answer.get("UnprocessedItems") or {}).get(name, []))
            if not requests:
                return 0
        return len(requests)
