"""The DynamoDB token store: one item per cache key (the only module that reads or writes it).

Item attributes: ``pk`` (the cache key), ``kind`` ("token" or "negative"), ``client_id`` and
``scope`` (plain, for operators), ``blob`` (the sealed response), ``issued_at``, ``expires_at``,
``refresh_at``, ``ttl`` (DynamoDB TTL; it deletes late, so readers check ``expires_at``),
``lease_owner`` and ``lease_until`` (the single-flight lease), ``schema_version``.

The global secondary index :data:`CLIENT_INDEX` (KEYS_ONLY, on ``client_id``) lists a client's
items for :meth:`DynamoTokenStore.delete_client_items` (an operator's invalidation). Items that
hold only a lease have no ``client_id`` and stay out of it.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.model import StoredItem, StoredKind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

__all__ = ["CLIENT_INDEX", "SCHEMA_VERSION", "TTL_GRACE_SECONDS", "DynamoTokenStore", "StoredItem"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: DynamoDB TTL removes an item some time after ``ttl``; keep it a little past expiry.
TTL_GRACE_SECONDS = 300
_CONDITIONAL_FAILED = "ConditionalCheckFailedException"
#: The table's index on ``client_id`` (template.yaml declares it under this name).
CLIENT_INDEX = "client-id"


def _number(value: float) -> Decimal:
    """A float as the Decimal boto3 accepts, round-tripping exactly (shortest repr)."""
    return Decimal(repr(float(value)))


def _ttl(expires_at: float) -> int:
    return math.ceil(expires_at) + TTL_GRACE_SECONDS


def _as_float(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, Binary):
        value = value.__bytes__()  # the boto3 stubs type __bytes__ as str; it returns bytes
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise StoreUnavailable("token table item has a malformed blob")


def _is_conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == _CONDITIONAL_FAILED)


class DynamoTokenStore:
    """Reads and writes cache items; every AWS failure becomes :class:`StoreUnavailable`."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        try:
            answer = self._table.get_item(Key={"pk": key}, ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table read failed") from exc
        item = answer.get("Item")
        if item is None:
            return None
        kind: StoredKind = "negative" if item.get("kind") == "negative" else "token"
        lease_owner = item.get("lease_owner")
        lease_until = item.get("lease_until")
        return StoredItem(
            kind=kind,
            blob=_as_bytes(item.get("blob")),
            issued_at=_as_float(item.get("issued_at")),
            expires_at=_as_float(item.get("expires_at")),
            refresh_at=_as_float(item.get("refresh_at")),
            lease_owner=None if lease_owner is None else str(lease_owner),
            lease_until=None if lease_until is None else float(lease_until),  # type: ignore[arg-type]
        )

    def put_token(
        self,
        key: str,
        *,
        blob: bytes,
        client_id: str,
        scope: str,
        issued_at: float,
        expires_at: float,
        refresh_at: float,
    ) -> None:
        """Replace the item (dropping any lease) unless it holds a token that lives longer."""
        item: dict[str, Any] = {
            "pk": key,
            "kind": "token",
            "client_id": client_id,
            "scope": scope,
            "blob": blob,
            "issued_at": _number(issued_at),
            "expires_at": _number(expires_at),
            "refresh_at": _number(refresh_at),
            "ttl": _ttl(expires_at),
            "schema_version": SCHEMA_VERSION,
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(#expires_at) OR #expires_at <= :expires_at"
                    " OR #kind = :negative"
                ),
                ExpressionAttributeNames={"#expires_at": "expires_at", "#kind": "kind"},
                ExpressionAttributeValues={
                    ":expires_at": _number(expires_at),
                    ":negative": "negative",
                },
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                logger.debug("a longer-lived token is already stored", extra={"key": key[:8]})
                return
            raise StoreUnavailable("token table write failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table write failed") from exc

    def put_negative(self, key: str, *, blob: bytes, client_id: str, until: float) -> None:
        """Remember a sealed ``invalid_client`` answer for this exact key until ``until``."""
        item: dict[str, Any] = {
            "pk": key,
            "kind": "negative",
            "client_id": client_id,
            "blob": blob,
            "expires_at": _number(until),
            "ttl": _ttl(until),
            "schema_version": SCHEMA_VERSION,
        }
        try:
            self._table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table write failed") from exc

    def try_acquire_lease(self, key: str, *, owner: str, now: float, lease_seconds: float) -> bool:
        """Take the key's lease if nobody holds an unexpired one (creating the item if absent)."""
        lease_until = now + lease_seconds
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression=(
                    "SET #lease_owner = :owner, #lease_until = :lease_until,"
                    " #ttl = if_not_exists(#ttl, :ttl)"
                ),
                ConditionExpression="attribute_not_exists(#lease_until) OR #lease_until < :now",
                ExpressionAttributeNames={
                    "#lease_owner": "lease_owner",
                    "#lease_until": "lease_until",
                    "#ttl": "ttl",
                },
                ExpressionAttributeValues={
                    ":owner": owner,
                    ":lease_until": _number(lease_until),
                    ":now": _number(now),
                    ":ttl": _ttl(lease_until),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                # botocore retries a write whose answer timed out; the retry then fails on the
                # lease its first attempt took. That lease is ours.
                return _holds_lease(exc, owner=owner, lease_until=_number(lease_until))
            raise StoreUnavailable("token table lease failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table lease failed") from exc
        return True

    def release_lease(self, key: str, *, owner: str) -> None:
        """Drop the lease if ``owner`` still holds it; any failure is ignored (it expires)."""
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="REMOVE #lease_owner, #lease_until",
                ConditionExpression="#lease_owner = :owner",
                ExpressionAttributeNames={
                    "#lease_owner": "lease_owner",
                    "#lease_until": "lease_until",
                },
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                logger.warning(
                    "lease release failed; it will expire",
                    extra={"key": key[:8], "error_code": exc.response.get("Error", {}).get("Code")},
                )
        except BotoCoreError:
            logger.warning("lease release failed; it will expire", extra={"key": key[:8]})

    def delete(self, key: str) -> None:
        try:
            self._table.delete_item(Key={"pk": key})
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table delete failed") from exc

    def delete_client_items(self, client_id: str) -> int:
        """Delete every item (tokens and negative answers) cached for ``client_id``; returns how
        many were deleted. The index is eventually consistent: an item written in the last
        moment may be missed (running it again is harmless)."""
        keys: list[str] = []
        query: dict[str, Any] = {
            "IndexName": CLIENT_INDEX,
            "KeyConditionExpression": Key("client_id").eq(client_id),
        }
        try:
            while True:
                page = self._table.query(**query)
                keys.extend(str(item["pk"]) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            deleted = 0
            for key in keys:
                # Only while the item still belongs to the client (the index may lag behind).
                try:
                    self._table.delete_item(
                        Key={"pk": key},
                        ConditionExpression="#client_id = :client_id",
                        ExpressionAttributeNames={"#client_id": "client_id"},
                        ExpressionAttributeValues={":client_id": client_id},
                    )
                except ClientError as exc:
                    if not _is_conditional_failure(exc):
                        raise
                    continue
                deleted += 1
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table invalidation failed") from exc
        return deleted


def _holds_lease(exc: ClientError, *, owner: str, lease_until: Decimal) -> bool:
    """Whether the item a failed lease condition returned carries exactly this lease."""
    item: dict[str, dict[str, str]] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
    stored_owner = item.get("lease_owner", {}).get("S")
    stored_until = item.get("lease_until", {}).get("N")
    if stored_owner != owner or stored_until is None:
        return False
    return Decimal(stored_until) == lease_until
