"""The in-memory L1 cache: a bounded, thread-safe LRU inside one warm Lambda container.

It holds cached tokens and short-lived negative answers (``invalid_client``) under the same
bound; one slot per cache key. Freshness is the service's decision, not the L1's, except
that an expired negative entry is dropped when read, and that a token is handed out by
:meth:`TokenL1.get` only for ``max_age_seconds`` after it was put: after that the service must
revalidate it against DynamoDB (so an operator's invalidation reaches warm containers within
that bound). :meth:`TokenL1.get_unverified` still returns it, for when DynamoDB cannot answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from token_proxy.model import CachedToken, UpstreamResponse


@dataclass(frozen=True, slots=True)
class _NegativeEntry:
    response: UpstreamResponse
    until: float


@dataclass(frozen=True, slots=True)
class _TokenEntry:
    token: CachedToken
    revalidate_at: float  # on the L1's clock


class TokenL1:
    """A least-recently-used map from cache key to a token or a negative answer."""

    def __init__(
        self,
        max_entries: int,
        *,
        max_age_seconds: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        if not max_age_seconds > 0:
            raise ValueError("max_age_seconds must be > 0")
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _TokenEntry | _NegativeEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        """The token put under ``key`` less than ``max_age_seconds`` ago, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if not isinstance(entry, _TokenEntry) or entry.revalidate_at <= self._clock():
                return None
            self._entries.move_to_end(key)
            return entry.token

    def get_unverified(self, key: str) -> CachedToken | None:
        """The token under ``key`` however long ago it was put (it may have been invalidated
        since): for the service to fall back on when DynamoDB cannot revalidate it."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.token if isinstance(entry, _TokenEntry) else None

    def put(self, key: str, token: CachedToken) -> None:
        """Hold ``token`` (fetched or read from DynamoDB just now) for ``max_age_seconds``."""
        self._store(key, _TokenEntry(token, self._clock() + self._max_age))

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

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

    def _store(self, key: str, entry: _TokenEntry | _NegativeEntry) -> None:
        if self._max_entries == 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
