"""Single flight: one Cognito call per key, however many requests want the key at once.

Two levels, so that a burst of hundreds of requests for one cold key costs one call:

- in this container, a lock per key (:mod:`token_proxy.key_locks`): its threads coalesce
  without DynamoDB;
- across the fleet, the key's lease in DynamoDB: a conditional write with an expiry
  (``lease_seconds``), so a crashed holder cannot block anyone for longer. The write returns
  the item as it was, which is the new holder's double check (the previous holder may have
  stored a token and dropped its lease between our read and our lease) at no extra read. The
  holder calls Cognito and then either stores what it got (which drops the lease), turns the
  lease into a back-off (Cognito failed: the fleet leaves the key alone until ``keep_until``),
  or drops it - deleting the item when it held no token, so keys that never produce a token
  leave nothing in the table. The others poll the item with a doubling sleep for up to
  ``coalesce_wait_seconds``, take over a lease that expired, and stop at once when the holder
  backs off.

A waiter whose wait runs out while the lease is still held does not call Cognito itself (the
holder is still at it, and a slow Cognito would only get more load): the service answers
without it. With no table, or when DynamoDB fails or the deadline leaves no time for it, there
is no lease to be had and a request calls Cognito on its own (failing open). A request whose
token is only due for a refresh never waits: if someone else is refreshing it, it serves the
token it has. Every wait ends by the request's deadline.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from token_proxy.deadline import Deadline
from token_proxy.errors import StoreUnavailable
from token_proxy.freshness import FreshnessPolicy
from token_proxy.key_locks import KeyLocks
from token_proxy.model import CachedToken, LeaseAttempt, TokenRequest
from token_proxy.telemetry import COALESCED_WAIT
from token_proxy.token_cache import Cached, TokenCache, fail_open
from token_proxy.turn import Lease, Turn

if TYPE_CHECKING:
    from token_proxy.ports import LeaseStore, MetricsSink


logger = logging.getLogger(__name__)

#: Polling a lease holder's result: the first sleep, doubled up to the cap.
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.4


def _longer(a: CachedToken | None, b: CachedToken | None) -> CachedToken | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.expires_at >= b.expires_at else b


class SingleFlight:
    """Decides which request calls Cognito for a key, and makes the others wait for it."""

    def __init__(
        self,
        cache: TokenCache,
        store: LeaseStore | None,
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
        self._locks = KeyLocks()

    @contextmanager
    def refresh(self, request: TokenRequest, key: str, deadline: Deadline) -> Iterator[Turn]:
        """The turn of a request whose token is due for a refresh; it never waits. ``found`` is
        the token the item held when the lease was won (perhaps refreshed just before)."""
        with self._locks.hold(key, timeout=0) as (acquired, _):
            if not acquired:  # another thread of this container is refreshing
                yield Turn(Lease.TAKEN)
                return
            attempt = self._try_lease(key, deadline)
            if attempt is None:
                turn = Turn(Lease.UNAVAILABLE, proven=True)
            elif not attempt.won:
                turn = Turn(Lease.TAKEN, proven=True)
            else:
                opened = self._cache.open_attempt(request, key, attempt)
                turn = Turn(
                    Lease.ACQUIRED,
                    found=opened.token,
                    proven=True,
                    held_record=opened.proven or _holds_blob(attempt),
                )
            try:
                yield turn
            finally:
                self._finish(key, turn, deadline)

    @contextmanager
    def miss(
        self,
        request: TokenRequest,
        key: str,
        fallback: CachedToken | None,
        deadline: Deadline,
    ) -> Iterator[Turn]:
        """The turn of a request that found no usable token: wait for whoever is fetching it
        (a thread of this container, then the lease holder), or fetch it. The key's lock and
        lease are held until the caller is done (it stores what it fetched first)."""
        bound = deadline.bound(self._coalesce_wait + self._lease_seconds)
        with self._locks.hold(key, timeout=bound) as (_, contended):
            if contended:
                self._metrics.add_metric(COALESCED_WAIT, "Count", 1)
                found = self._in_memory(key)
                if found is not None:  # what the thread we waited for got
                    yield Turn(Lease.TAKEN, found=found)
                    return
            turn = self._wait_for_lease(request, key, fallback, deadline, waited=contended)
            try:
                yield turn
            finally:
                self._finish(key, turn, deadline)

    def _in_memory(self, key: str) -> Cached | None:
        now = self._clock()
        negative = self._cache.negative_in_memory(key, now)
        if negative is not None:
            return negative
        local = self._cache.token_in_memory(key)
        return local if local is not None and self._policy.usable(local, now) else None

    def _wait_for_lease(
        self,
        request: TokenRequest,
        key: str,
        fallback: CachedToken | None,
        deadline: Deadline,
        *,
        waited: bool,
    ) -> Turn:
        """Take the lease, or poll the item until its holder's result appears, the lease is
        free again, the holder backs off, or the wait (or the deadline) runs out."""
        wait_until = min(self._clock() + self._coalesce_wait, deadline.at)
        delay = FIRST_POLL_SECONDS
        lease_free = True
        while True:
            if lease_free:
                attempt = self._try_lease(key, deadline)
                if attempt is None:  # no table, no time, or DynamoDB failing: fail open
                    return Turn(Lease.UNAVAILABLE, fallback=fallback)
                if attempt.won:
                    return self._won(request, key, fallback, attempt)
                held = attempt.item
                now = self._clock()
                if held is not None and held.backoff_until is not None and held.backoff_until > now:
                    return Turn(Lease.TAKEN, fallback=fallback, backoff_until=held.backoff_until)
            if not waited:
                self._metrics.add_metric(COALESCED_WAIT, "Count", 1)
                waited = True
            remaining = wait_until - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_SECONDS)
            polled = self._cache.poll(request, key, deadline)
            if polled is None:  # DynamoDB stopped answering (or no time left for it)
                return Turn(Lease.UNAVAILABLE, fallback=fallback)
            found = polled.found
            if found is not None and self._policy.usable(found, polled.at):
                return Turn(Lease.TAKEN, found=found, from_store=True)
            fallback = _longer(fallback, found)
            if polled.backoff_until is not None and polled.backoff_until > polled.at:
                return Turn(Lease.TAKEN, fallback=fallback, backoff_until=polled.backoff_until)
            lease_free = polled.lease_free
        logger.info("no token appeared while waiting for the lease holder", extra={"key": key[:8]})
        return Turn(Lease.TAKEN, fallback=fallback)

    def _won(
        self,
        request: TokenRequest,
        key: str,
        fallback: CachedToken | None,
        attempt: LeaseAttempt,
    ) -> Turn:
        """The new lease holder's double check, from the item as the lease found it."""
        opened = self._cache.open_attempt(request, key, attempt)
        held_record = opened.proven or _holds_blob(attempt)
        token = opened.token
        if token is not None and self._policy.usable(token, self._clock()):
            return Turn(
                Lease.ACQUIRED, found=token, from_store=True, proven=True, held_record=held_record
            )
        return Turn(
            Lease.ACQUIRED,
            fallback=_longer(fallback, token),
            proven=opened.proven,
            held_record=held_record,
        )

    def _try_lease(self, key: str, deadline: Deadline) -> LeaseAttempt | None:
        """The lease attempt, or None when there is no table, no time, or DynamoDB failed."""
        if self._store is None or not self._cache.store_usable(deadline):
            return None
        try:
            return self._store.try_acquire_lease(
                key, owner=self._owner, now=self._clock(), lease_seconds=self._lease_seconds
            )
        except StoreUnavailable:
            fail_open(self._metrics, "lease")
            return None

    def _finish(self, key: str, turn: Turn, deadline: Deadline) -> None:
        """What becomes of a lease this request holds (a lease left alone expires)."""
        if turn.lease is not Lease.ACQUIRED or turn.stored or self._store is None:
            return
        if not self._cache.store_usable(deadline):
            return
        if turn.keep_until is not None:
            try:
                self._store.back_off(key, owner=self._owner, until=turn.keep_until)
            except StoreUnavailable:
                fail_open(self._metrics, "back-off")
            return
        self._store.release_lease(key, owner=self._owner, delete_item=not turn.held_record)


def _holds_blob(attempt: LeaseAttempt) -> bool:
    return attempt.item is not None and attempt.item.blob is not None
