"""How the token store writes and reads an item's attribute values, and the limits it trusts.

Numbers go to DynamoDB as Decimals that round-trip a float exactly; times read back are
``None`` when absent, not numbers or not finite, so a malformed item is never an error. The
store acts only on what :class:`~token_proxy.model.StoredItem` holds (the blob, the lease
fields, the back-off), read from the resource API's Python values or, in a failed
condition's answer, from the low-level API's ``{"N": ...}`` values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

from token_proxy.model import StoredItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SCHEMA_VERSION = 2
#: DynamoDB TTL removes an item some time after ``ttl``; keep it a little past its use.
TTL_GRACE_SECONDS = 300
CONDITIONAL_FAILED = "ConditionalCheckFailedException"
#: Cognito access tokens live at most 24 hours: a stored ``expires_at`` further away than this
#: (plus a margin) was not written by the proxy, and may be replaced.
MAX_TOKEN_LIFETIME_SECONDS = 86_400
#: No lease or back-off the proxy takes lasts this long: a later ``lease_until`` was not written
#: by the proxy and does not block the key.
MAX_LEASE_SECONDS = 3_600


class TableAdapter:
    """One kind of work on the token table (a part of the token store)."""

    def __init__(self, table: Table) -> None:
        self._table = table


def number(value: float) -> Decimal:
    """A float as the Decimal boto3 accepts, round-tripping exactly (shortest repr)."""
    return Decimal(repr(float(value)))


def ttl(until: float) -> int:
    """The ``ttl`` attribute of an item used until ``until``."""
    return math.ceil(until) + TTL_GRACE_SECONDS


def stored_time(value: Any) -> float | None:
    """A stored number of seconds, or None when absent or malformed."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


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
        lease_until=stored_time(item.get("lease_until")),
        backoff_until=stored_time(item.get("backoff_until")),
    )


def item_from_wire(item: Mapping[str, Any]) -> StoredItem:
    """The same from the low-level client's attribute values (``{"S": ...}``)."""
    blob = item.get("blob", {}).get("B")
    owner = item.get("lease_owner", {}).get("S")
    return StoredItem(
        blob=blob if isinstance(blob, bytes) else None,
        lease_owner=owner if isinstance(owner, str) else None,
        lease_until=wire_time(item.get("lease_until")),
        backoff_until=wire_time(item.get("backoff_until")),
    )


def wire_time(value: Any) -> float | None:
    """A low-level ``{"N": ...}`` number of seconds, or None when absent or malformed."""
    if not isinstance(value, Mapping) or not isinstance(value.get("N"), str):
        return None
    try:
        return stored_time(Decimal(value["N"]))
    except ArithmeticError:
        return None


def old_item(exc: ClientError) -> dict[str, Any]:
    """The item a failed condition returned (``ReturnValuesOnConditionCheckFailure``), in the
    low-level API's values; empty when there was none."""
    old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
    return old


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def condition_failed(exc: ClientError) -> bool:
    """Whether a conditional write was refused because its condition did not hold."""
    return error_code(exc) == CONDITIONAL_FAILED
