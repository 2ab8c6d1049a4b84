"""Token items: reading a key's item, and writing a token Cognito issued.

A token item replaces whatever the key held (a lease item, an older token, the lease fields),
unless it already holds a token that lives longer: two containers that refreshed one key at
once keep the longer-lived token, whichever writes last.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.model import StoredItem
from token_proxy.store.attributes import (
    MAX_TOKEN_LIFETIME_SECONDS,
    SCHEMA_VERSION,
    TTL_GRACE_SECONDS,
    TableAdapter,
    condition_failed,
    item_from_attributes,
    number,
    ttl,
)

logger = logging.getLogger(__name__)


class TokenItems(TableAdapter):
    """Reads a key's item and writes tokens; every AWS failure becomes StoreUnavailable."""

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        try:
            answer = self._table.get_item(Key={"pk": key}, ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable("token table read failed") from exc
        item = answer.get("Item")
        return None if item is None else item_from_attributes(item)

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
            "issued_at": number(issued_at),
            "expires_at": number(expires_at),
            "ttl": ttl(max(keep_until, expires_at)),
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
                    ":expires_at": number(expires_at),
                    ":implausible": number(now + MAX_TOKEN_LIFETIME_SECONDS + TTL_GRACE_SECONDS),
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                logger.debug("a longer-lived token is already stored", extra={"key": key[:8]})
                return
            raise StoreUnavailable("token table write failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table write failed") from exc
