"""A key's lease: who may call Cognito for it now, and the back-off after Cognito failed.

The lease lives in the key's item (``lease_owner``, ``lease_until``; ``backoff_until`` while it
is kept as a back-off), or in a lease item of its own while the key holds no token. Taking it
is one conditional write that also answers with the item as it was; every lease has an expiry,
so a crashed holder cannot block a key for longer.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.model import LeaseAttempt
from token_proxy.store.attributes import (
    MAX_LEASE_SECONDS,
    TableAdapter,
    condition_failed,
    error_code,
    item_from_attributes,
    item_from_wire,
    number,
    old_item,
    ttl,
)

logger = logging.getLogger(__name__)

#: The lease's attributes, as update expressions name them.
_LEASE_NAMES = {
    "#lease_owner": "lease_owner",
    "#lease_until": "lease_until",
    "#backoff_until": "backoff_until",
}


class Leases(TableAdapter):
    """Takes, drops and keeps (as a back-off) a key's lease."""

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
                    ":lease_until": number(lease_until),
                    ":now": number(now),
                    ":n": "N",
                    ":implausible": number(now + MAX_LEASE_SECONDS),
                    ":ttl": ttl(lease_until),
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if condition_failed(exc):
                held = item_from_wire(old_item(exc))
                # botocore retries a write whose answer timed out; the retry then fails on the
                # lease its first attempt took. That lease is ours.
                ours = held.lease_owner == owner and held.lease_until == float(number(lease_until))
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
            if not condition_failed(exc):
                logger.warning(
                    "lease release failed; it will expire",
                    extra={"key": key[:8], "error_code": error_code(exc)},
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
                ExpressionAttributeValues={":owner": owner, ":until": number(until)},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreUnavailable("token table back-off failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table back-off failed") from exc
        return True
