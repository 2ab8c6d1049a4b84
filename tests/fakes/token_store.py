"""The in-memory token store: the DynamoTokenStore contract in a dict.

It follows DynamoTokenStore's conditions; tests/integration/test_store.py
runs the same contract over both, so the fake cannot drift from the real adapter.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace

from token_proxy.errors import StoreUnavailable
from token_proxy.model import StoredItem


class InMemoryTokenStore:
    """The DynamoTokenStore contract in a dict (thread-safe; one lock = per-item atomicity)."""

    def __init__(self) -> None:
        self.items: dict[str, StoredItem] = {}
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
        refresh_at: float,
    ) -> None:
        with self._lock:
            self._enter("put_token")
            old = self.items.get(key)
            if (
                old is not None
                and old.blob is not None
                and old.kind == "token"
                and old.expires_at > expires_at
            ):
                return
            self.items[key] = StoredItem(
                "token", blob, issued_at, expires_at, refresh_at, None, None
            )
            self.ttls[key] = math.ceil(expires_at) + 300

    def put_negative(self, key: str, *, blob: bytes, client_id: str, until: float) -> None:
        with self._lock:
            self._enter("put_negative")
            self.items[key] = StoredItem("negative", blob, 0.0, until, 0.0, None, None)
            self.ttls[key] = math.ceil(until) + 300

    def try_acquire_lease(self, key: str, *, owner: str, now: float, lease_seconds: float) -> bool:
        with self._lock:
            self._enter("try_acquire_lease")
            old = self.items.get(key)
            if old is not None and old.lease_until is not None and not old.lease_until < now:
                return False
            if old is None:
                old = StoredItem("token", None, 0.0, 0.0, 0.0, None, None)
                self.ttls.setdefault(key, math.ceil(now + lease_seconds) + 300)
            self.items[key] = replace(old, lease_owner=owner, lease_until=now + lease_seconds)
            return True

    def release_lease(self, key: str, *, owner: str) -> None:
        with self._lock:
            self.calls.append("release_lease")
            old = self.items.get(key)
            if self.failing or old is None or old.lease_owner != owner:
                return
            self.items[key] = replace(old, lease_owner=None, lease_until=None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._enter("delete")
            self.items.pop(key, None)
            self.ttls.pop(key, None)
