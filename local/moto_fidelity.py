"""Gives moto's DynamoDB the per-item write atomicity that real DynamoDB has.

moto 5 evaluates a ConditionExpression and then writes the item in separate steps, with no lock
in between, so under concurrent requests several conditional writes on one item can all pass
their condition. Real DynamoDB serialises writes to an item, which is what the proxy's
single-flight lease relies on. Wrapping the backend's write methods in one lock restores that
guarantee for the local stack, the benchmark and the tests; reads stay concurrent.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_WRITE_METHODS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
)
_LOCK = threading.RLock()
_MARKER = "__serialised_by_token_proxy__"


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _MARKER, True)
    return wrapper


def make_dynamodb_writes_atomic() -> None:
    """Serialise moto's DynamoDB writes (idempotent; affects this process only)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITE_METHODS:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, _MARKER, False):
            setattr(DynamoDBBackend, name, _serialised(method))
