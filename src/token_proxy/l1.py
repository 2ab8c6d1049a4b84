"""The in-memory L1 cache: two bounded, thread-safe LRUs inside one warm Lambda container.

Tokens and negative answers (Cognito's ``invalid_client``, ``invalid_scope`` and the like for
an exact key) are kept apart, each under its own bound of ``max_entries``, so a flood of wrong
secrets churns only the negative answers and never evicts a good token. A key holds one or the
other: putting either drops the other kind for that key.

Freshness is the service's decision, not the L1's, except that an expired negative answer is
dropped when read, and that a token is handed out by :meth:`TokenL1.get` only for
``max_age_seconds`` after it was put: after that the service must revalidate it against
DynamoDB (so an operator's invalidation reaches warm containers within that bound).
:meth:`TokenL1.get_unverified` still returns it, for when DynamoDB cannot answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from token_proxy.model import CachedToken, UpstreamResponse

EntryT = TypeVar("EntryT")


class _NegativeEntry(NamedTuple):
    response: UpstreamResponse
    until: float


class _TokenEntry(NamedTuple):
    token: CachedToken
    revalidate_at: float  # on the L1's clock


class _Lru(Generic[EntryT]):
    """An ordered map that keeps at most ``bound`` entries, evicting the least recently used
    (not thread-safe: :class:`TokenL1` holds the lock)."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._entries: OrderedDict[str, EntryT] = OrderedDict()

    def get(self, key: str) -> EntryT | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def peek(self, key: str) -> EntryT | None:
        return self._entries.get(key)

    def put(self, key: str, entry: EntryT) -> None:
        if self._bound == 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._bound:
            self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class TokenL1:
    """Least-recently-used maps from cache key to a token, and to a negative answer."""

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
        self._max_age = max_age_seconds
        self._clock = clock
        self._tokens: _Lru[_TokenEntry] = _Lru(max_entries)
        self._negatives: _Lru[_NegativeEntry] = _Lru(max_entries)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ tokens

    def get(self, key: str) -> CachedToken | None:
        """The token put under ``key`` less than ``max_age_seconds`` ago, else None."""
        with self._lock:
            entry = self._tokens.peek(key)
            if entry is None or entry.revalidate_at <= self._clock():
                return None
            self._tokens.get(key)  # most recently used
            return entry.token

    def get_unverified(self, key: str) -> CachedToken | None:
        """The token under ``key`` however long ago it was put (it may have been invalidated
        since): for the service to fall back on when DynamoDB cannot revalidate it."""
        with self._lock:
            entry = self._tokens.peek(key)
            return None if entry is None else entry.token

    def put(self, key: str, token: CachedToken) -> None:
        """Hold ``token`` (fetched or read from DynamoDB just now) for ``max_age_seconds``."""
        entry = _TokenEntry(token, self._clock() + self._max_age)
        with self._lock:
            self._negatives.pop(key)
            self._tokens.put(key, entry)

    def discard(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key)

    # ------------------------------------------------------------------ negative answers

    def get_negative(self, key: str, now: float) -> UpstreamResponse | None:
        with self._lock:
            entry = self._negatives.get(key)
            if entry is None:
                return None
            if now >= entry.until:
                self._negatives.pop(key)
                return None
            return entry.response

    def put_negative(self, key: str, response: UpstreamResponse, until: float) -> None:
        with self._lock:
            self._tokens.pop(key)
            self._negatives.put(key, _NegativeEntry(response, until))

    # ------------------------------------------------------------------ both

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._negatives.clear()

    @property
    def token_count(self) -> int:
        with self._lock:
            return len(self._tokens)

    @property
    def negative_count(self) -> int:
        with self._lock:
            return len(self._negatives)

    def __len__(self) -> int:
        """Entries of both kinds."""
        with self._lock:
            return len(self._tokens) + len(self._negatives)
