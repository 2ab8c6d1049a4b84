"""The in-memory L1 cache: a bounded, thread-safe LRU inside one warm Lambda container.

It holds cached tokens and short-lived negative answers (``invalid_client``) under the same
bound; one slot per cache key. Freshness is the service's decision, not the L1's, except
that an expired negative entry is dropped when read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from token_proxy.model import CachedToken, UpstreamResponse


@dataclass(frozen=True, slots=True)
class _NegativeEntry:
    response: UpstreamResponse
    until: float


class TokenL1:
    """A least-recently-used map from cache key to a token or a negative answer."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max_entries = max_entries
        self._entries: OrderedDict[str, CachedToken | _NegativeEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            entry = self._entries.get(key)
            if not isinstance(entry, CachedToken):
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, token: CachedToken) -> None:
        self._store(key, token)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def get_negative(self, key: str, now: float) -> UpstreamResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if not isinstance(entry, _NegativeEntry):
                return None
            if now >= entry.until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.response

    def put_negative(self, key: str, response: UpstreamResponse, until: float) -> None:
        self._store(key, _NegativeEntry(response, until))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _store(self, key: str, entry: CachedToken | _NegativeEntry) -> None:
        if self._max_entries == 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
