"""An operator's invalidation: deleting every token item cached for one client.

The global secondary index :data:`CLIENT_INDEX` (KEYS_ONLY, on ``client_id``) lists a client's
token items; they are deleted 25 at a time with BatchWriteItem, a bounded number of
resubmissions of what DynamoDB left unprocessed, and a check of the request's deadline before
each page and each batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.model import Deletion
from token_proxy.store.attributes import TableAdapter

#: The table's index on ``client_id`` (template.yaml declares it under this name).
CLIENT_INDEX = "client-id"
#: BatchWriteItem takes at most 25 put or delete requests
#: (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
BATCH_DELETE_SIZE = 25
#: Resubmissions of a batch's UnprocessedItems before the invalidation reports itself incomplete.
MAX_BATCH_RESUBMITS = 2


class ClientInvalidation(TableAdapter):
    """Deletes a client's token items in batches, within a deadline."""

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
