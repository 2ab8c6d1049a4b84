"""A model of the API Gateway cache recipe this product replaces.

The recipe puts a REST API stage with caching enabled in front of Cognito's token endpoint and
makes the ``Authorization`` header and the ``scope`` query parameter the cache keys. What the
model keeps from API Gateway's cache, and what drives the figures:

- the key is exactly (``Authorization`` header, ``scope`` query parameter);
- one TTL for the whole stage (the recipe uses the maximum, 3600 s, for 1 h tokens), counted
  from the moment the response is stored, not from when Cognito issued the token;
- no request coalescing: every request that finds no live entry goes to Cognito, however many
  are already on their way there for the same key;
- the cached body is replayed byte for byte, so ``expires_in`` always says the original
  lifetime however old the token is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The recipe's TTL: API Gateway's maximum, used for 1 h tokens.
RECIPE_TTL_SECONDS = 3600.0

#: Calls Cognito with (Authorization header, scope) and returns (status, body).
Upstream = Callable[[str, str], tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class _Entry:
    stored_at: float
    body: bytes


class ApiGatewayCacheModel:
    """The stage cache: look up, or call upstream and store the 2xx answer."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        ttl_seconds: float = RECIPE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._upstream = upstream
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self.upstream_calls = 0

    def request(self, authorization: str, scope: str) -> tuple[int, bytes]:
        key = (authorization, scope)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.stored_at + self._ttl:
            return 200, entry.body
        # A miss: straight to Cognito, whether or not other requests for this key are in flight.
        with self._lock:
            self.upstream_calls += 1
        status, body = self._upstream(authorization, scope)
        if 200 <= status < 300:
            with self._lock:
                self._entries[key] = _Entry(self._clock(), body)
        return status, body
