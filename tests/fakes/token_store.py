"""The in-memory token store: the DynamoTokenStore contract in a dict.

It follows DynamoTokenStore's conditions; tests/integration/test_store.py runs the same
contract over both, so the fake cannot drift from the real adapter. ``attributes`` keeps the
plain attributes the real store writes (``client_id``, ``expires_at``, ``window``, ``calls``),
so tests can tamper with them as a table writer would.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from token_proxy.errors import StoreUnavailable
from token_proxy.model import Deletion, LeaseAttempt, StoredItem
from token_proxy.store import MAX_LEASE_SECONDS, MAX_TOKEN_LIFETIME_SECONDS, TTL_GRACE_SECONDS


class InMemoryTokenStore:
    """The DynamoTokenStore contract in a dict (thread-safe; one lock = per-item atomicity)."""

    def __init__(self) -> None:
        self.items: dict[str, StoredItem] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self.ttls: dict[str, int] = {}
        self.failing = False
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        if self.failing:
            raise StoreUnavailable(f"{operation} failed")

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        with self._lock:
            self._enter("get")
            return self.items.get(key)

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
        with self._lock:
            self._enter("put_token")
            stored = self.attributes.get(key, {}).get("expires_at")
            plausible = isinstance(stored, int | float) and (
                stored <= now + MAX_TOKEN_LIFETIME_SECONDS + TTL_GRACE_SECONDS
            )
            if plausible and stored > expires_at:
                return
            self.items[key] = StoredItem(blob)
            self.attributes[key] = {
                "client_id": client_id,
                "scope": scope,
                "issued_at": issued_at,
                "expires_at": expires_at,
            }
            self.ttls[key] = math.ceil(max(keep_until, expires_at)) + TTL_GRACE_SECONDS

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> LeaseAttempt:
        with self._lock:
            self._enter("try_acquire_lease")
            old = self.items.get(key)
            until = None if old is None else old.lease_until
            if until is not None and now <= until <= now + MAX_LEASE_SECONDS:
                return LeaseAttempt(won=False, item=old)
            if old is None:
                self.ttls.setdefault(key, math.ceil(now + lease_seconds) + TTL_GRACE_SECONDS)
            base = old if old is not None else StoredItem(None)
            self.items[key] = base._replace(
                lease_owner=owner, lease_until=now + lease_seconds, backoff_until=None
            )
            return LeaseAttempt(won=True, item=old)

    def release_lease(self, key: str, *, owner: str, delete_item: bool) -> None:
        with self._lock:
            self.calls.append("release_lease")
            old = self.items.get(key)
            if self.failing or old is None or old.lease_owner != owner:
                return
            if delete_item:
                if old.blob is None:
                    self._drop(key)
                return
            self.items[key] = old._replace(lease_owner=None, lease_until=None, backoff_until=None)

    def back_off(self, key: str, *, owner: str, until: float) -> bool:
        with self._lock:
            self._enter("back_off")
            old = self.items.get(key)
            if old is None or old.lease_owner != owner:
                return False
            self.items[key] = old._replace(lease_until=until, backoff_until=until)
            return True

    def count_call(self, counter: str, *, window: int, limit: int, expires_at: float) -> bool:
        with self._lock:
            self._enter("count_call")
            stored = self.attributes.setdefault(counter, {})
            if stored.get("window") != window:
                stored.update(window=window, calls=0)
                self.ttls[counter] = math.ceil(expires_at) + TTL_GRACE_SECONDS
            if stored["calls"] >= limit:
                return False
            stored["calls"] += 1
            return True

    def delete_client_items(self, client_id: str, *, should_stop: Callable[[], bool]) -> Deletion:
        with self._lock:
            self._enter("delete_client_items")
            keys = [k for k, a in self.attributes.items() if a.get("client_id") == client_id]
        deleted = 0
        for key in keys:
            if should_stop():
                return Deletion(deleted, complete=False)
            with self._lock:
                self._drop(key)
            deleted += 1
        return Deletion(deleted, complete=True)

    def _drop(self, key: str) -> None:
        self.items.pop(key, None)
        self.attributes.pop(key, None)
        self.ttls.pop(key, None)

    def token_items(self) -> list[str]:
        """Keys of the items holding a sealed token."""
        return [k for k, item in self.items.items() if item.blob is not None]
