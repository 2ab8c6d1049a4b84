"""Single flight: one Cognito call per key, however many requests want the key at once.

Two levels, so that a burst of hundreds of requests for one cold key costs one call:

- in this container, a lock per key: its threads coalesce without DynamoDB (the locks are
  reference-counted and dropped when unused, so the map stays small);
- across the fleet, the key's lease in DynamoDB: a conditional write with an expiry
  (``lease_seconds``), so a crashed holder cannot block anyone for longer. The holder re-reads
  the item first (the previous holder may have stored a token and dropped its lease between
  our read and our lease), then calls Cognito, stores what it got and drops the lease; the
  others poll the item with a doubling sleep for up to ``coalesce_wait_seconds`` and take
  over a lease that expired.

With no table, or when DynamoDB fails, there is no lease to be had and a request calls Cognito
on its own (failing open); so does a waiter whose wait ran out. A request whose token is only
due for a refresh never waits: if someone else is refreshing it, it serves the token it has.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from token_proxy.errors import StoreUnavailable
from token_proxy.freshness import FreshnessPolicy
from token_proxy.model import CachedToken, TokenRequest, UpstreamResponse
from token_proxy.ports import MetricsSink, TokenStore
from token_proxy.telemetry import COALESCED_WAIT
from token_proxy.token_cache import Cached, TokenCache, fail_open

logger = logging.getLogger(__name__)

#: Polling a lease holder's result: the first sleep, doubled up to the cap.
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.4


class Lease(enum.Enum):
    """The answer to "may I call Cognito for this key?"."""

    ACQUIRED = "acquired"  # this request holds the key's lease until it drops it
    TAKEN = "taken"  # another request (a thread here, or another container) holds it
    UNAVAILABLE = "unavailable"  # no table, or DynamoDB failed: go on without one


@dataclass(slots=True)
class RefreshTurn:
    """A refresh-ahead request's turn: it refreshes unless ``lease`` is TAKEN. Setting
    ``keep_lease`` leaves an acquired lease to expire instead of dropping it."""

    lease: Lease
    keep_lease: bool = False


@dataclass(frozen=True, slots=True)
class MissTurn:
    """What a request that missed does next: serve ``found`` (a token or negative answer that
    another request produced; ``from_store`` when it was read from DynamoDB rather than this
    container's L1), or call Cognito itself, with ``fallback`` as the longest-lived token seen
    that stale-if-error may still serve."""

    found: Cached | None = None
    from_store: bool = False
    fallback: CachedToken | None = None


class SingleFlight:
    """Decides which request calls Cognito for a key, and makes the others wait for it."""

    def __init__(
        self,
        cache: TokenCache,
        store: TokenStore | None,
        policy: FreshnessPolicy,
        *,
        lease_seconds: float,
        coalesce_wait_seconds: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: MetricsSink,
        owner_id: str | None = None,
    ) -> None:
        self._cache = cache
        self._store = store
        self._policy = policy
        self._lease_seconds = lease_seconds
        self._coalesce_wait = coalesce_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._owner = owner_id or uuid.uuid4().hex
        self._locks = _KeyLocks()

    @contextmanager
    def refresh(self, key: str) -> Iterator[RefreshTurn]:
        """The turn of a request whose token is due for a refresh; it never waits."""
        with self._locks.hold(key, timeout=0) as (acquired, _):
            if not acquired:  # another thread of this container is refreshing
                yield RefreshTurn(Lease.TAKEN)
                return
            turn = RefreshTurn(self._try_lease(key))
            try:
                yield turn
            finally:
                if turn.lease is Lease.ACQUIRED and not turn.keep_lease:
                    self._release(key)

    @contextmanager
    def miss(
        self, request: TokenRequest, key: str, fallback: CachedToken | None
    ) -> Iterator[MissTurn]:
        """The turn of a request that found no usable token: wait for whoever is fetching it
        (a thread of this container, then the lease holder), or fetch it. The key's lock and
        lease are held until the caller is done (it stores what it fetched first)."""
        bound = self._coalesce_wait + self._lease_seconds
        with self._locks.hold(key, timeout=bound) as (_, contended):
            if contended:
                self._metrics.add_metric(COALESCED_WAIT, "Count", 1)
                found = self._in_memory(key)
                if found is not None:  # what the thread we waited for got
                    yield MissTurn(found=found)
                    return
            lease, turn = self._wait_for_lease(request, key, fallback, waited=contended)
            try:
                if lease is Lease.ACQUIRED:
                    turn = self._double_check(request, key, turn.fallback)
                yield turn
            finally:
                if lease is Lease.ACQUIRED:
                    self._release(key)

    def _in_memory(self, key: str) -> Cached | None:
        now = self._clock()
        negative = self._cache.negative_in_memory(key, now)
        if negative is not None:
            return negative
        local = self._cache.token_in_memory(key)
        return local if local is not None and self._policy.usable(local, now) else None

    def _wait_for_lease(
        self, request: TokenRequest, key: str, fallback: CachedToken | None, *, waited: bool
    ) -> tuple[Lease, MissTurn]:
        """Take the lease, or poll the item until its holder's result appears, the lease is
        free again, or the wait runs out."""
        if self._store is None:
            return Lease.UNAVAILABLE, MissTurn(fallback=fallback)
        deadline = self._clock() + self._coalesce_wait
        delay = FIRST_POLL_SECONDS
        lease_free = True
        while True:
            if lease_free:
                lease = self._try_lease(key)
                if lease is not Lease.TAKEN:  # ours, or DynamoDB is failing: fail open
                    return lease, MissTurn(fallback=fallback)
            if not waited:
                self._metrics.add_metric(COALESCED_WAIT, "Count", 1)
                waited = True
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_SECONDS)
            polled = self._cache.poll(request, key)
            if polled is None:
                break
            found = polled.found
            if isinstance(found, UpstreamResponse):
                return Lease.TAKEN, MissTurn(found=found, from_store=True)
            if found is not None:
                if self._policy.usable(found, polled.at):
                    return Lease.TAKEN, MissTurn(found=found, from_store=True)
                if fallback is None or found.expires_at > fallback.expires_at:
                    fallback = found
            lease_free = polled.lease_free
        logger.info(
            "no token appeared while waiting for the lease holder; calling Cognito",
            extra={"client_id": request.client_id, "key": key[:8]},
        )
        return Lease.UNAVAILABLE, MissTurn(fallback=fallback)

    def _double_check(
        self, request: TokenRequest, key: str, fallback: CachedToken | None
    ) -> MissTurn:
        """The new lease holder's read: the previous holder may have stored a token and dropped
        its lease between our read and our lease."""
        found = self._cache.read(request, key)
        if isinstance(found, UpstreamResponse) or (
            found is not None and self._policy.usable(found, self._clock())
        ):
            return MissTurn(found=found, from_store=True)
        return MissTurn(fallback=fallback)

    def _try_lease(self, key: str) -> Lease:
        if self._store is None:
            return Lease.UNAVAILABLE
        try:
            won = self._store.try_acquire_lease(
                key, owner=self._owner, now=self._clock(), lease_seconds=self._lease_seconds
            )
        except StoreUnavailable:
            fail_open(self._metrics, "lease")
            return Lease.UNAVAILABLE
        return Lease.ACQUIRED if won else Lease.TAKEN

    def _release(self, key: str) -> None:
        if self._store is not None:
            self._store.release_lease(key, owner=self._owner)


class _KeyLocks:
    """Per-key in-process locks, so threads of one instance coalesce without DynamoDB.

    Entries are reference-counted and dropped when nobody uses them, so the map stays small.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[tuple[bool, bool]]:
        """Yield ``(acquired, contended)``; ``timeout`` 0 means do not wait at all."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            acquired = lock.acquire(blocking=False)
            contended = not acquired
            if contended and timeout > 0:
                acquired = lock.acquire(timeout=timeout)
            try:
                yield acquired, contended
            finally:
                if acquired:
                    lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
