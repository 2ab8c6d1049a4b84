"""Test-only help for running the DynamoDB store on moto from many threads.

moto's in-process DynamoDB evaluates a ConditionExpression and then writes the item in
separate steps, with no lock around them (moto 5.2: ``DynamoDBBackend.update_item`` reads the
item, checks the condition, then mutates it). Under threads, several conditional
``UpdateItem`` calls on one item can therefore all pass their condition: in a trial of
100 rounds of 40 threads racing ``try_acquire_lease`` on a fresh key, 89 rounds had 2 to 5
winners. Real DynamoDB serialises writes to one item, so a conditional write is atomic.

``SerializedTable`` restores that guarantee for tests: it forwards everything to a boto3
Table resource, and holds one lock (shared by every wrapper of the table) around each
write. Reads are not serialised. The store code under test is unchanged; only the fake
AWS endpoint gets the atomicity the real one has.
"""

from __future__ import annotations

import threading
from typing import Any


class SerializedTable:
    """A boto3 Table whose writes are serialised with a lock shared across wrappers."""

    def __init__(self, table: Any, lock: threading.Lock) -> None:
        self._table = table
        self._lock = lock

    def put_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._table.put_item(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._table.update_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._table.delete_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)
