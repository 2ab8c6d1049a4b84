"""The token cache: this container's L1 and the shared DynamoDB table, in tokens and answers.

The service asks what is known for a key and hands over what to remember; this module turns
that into L1 entries and DynamoDB items and back, so the service never sees an item, a blob or
an encoding:

- a token is kept in DynamoDB as one sealed record (:mod:`token_proxy.token_record`): the token
  response with everything the proxy trusts about it, so a table writer can neither stretch a
  token's life nor turn anything into a token;
- an item that holds only a lease, is past the record's ``expires_at`` (DynamoDB TTL deletes
  late), does not open (another secret, tampered, malformed) or holds a token with less than a
  second left is a miss, never a token or an error. A record that opens proves that its key
  once produced a token, even after the token expired: the key is *proven*, and the item stays
  for ``proof_seconds`` after the token was issued so that a client returning after a quiet
  day is not counted against the budget of unproven credentials;
- negative answers (``invalid_client``, ``invalid_scope`` ...) are kept in L1 only: they never
  reach the table;
- when DynamoDB fails, or the request's deadline leaves no time for a DynamoDB call, the cache
  fails open: a read answers what L1 holds (or nothing), a write is skipped, and each failure is
  counted (``StoreError``) and logged with the operation only.

Logs name the first eight hex characters of the cache key, never a value or a client id.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from token_proxy.deadline import Deadline
from token_proxy.errors import SealError, StoreUnavailable
from token_proxy.freshness import is_expired
from token_proxy.l1 import TokenL1
from token_proxy.model import (
    CachedToken,
    Deletion,
    LeaseAttempt,
    StoredItem,
    TokenRequest,
    UpstreamResponse,
)
from token_proxy.telemetry import STORE_ERROR
from token_proxy.token_record import UNREADABLE, opened_token, sealed_token

if TYPE_CHECKING:
    from token_proxy.ports import MetricsSink, TokenItemStore


logger = logging.getLogger(__name__)

#: What the cache can hold for a key: a token, or Cognito's negative answer (L1 only).
Cached = CachedToken | UpstreamResponse


class Layer(enum.Enum):
    """Where a token was found."""

    L1 = "l1"
    DYNAMODB = "dynamodb"


class Opened(NamedTuple):
    """What an item holds for a request: its still valid token, and whether its sealed record
    opened at all (the key once produced a token: it is proven)."""

    token: CachedToken | None = None
    proven: bool = False


NOTHING = Opened()


class Lookup(NamedTuple):
    """The best token known for a key and its layer; ``proven`` when the key ever produced a
    token (a record in DynamoDB, or a token in L1)."""

    token: CachedToken | None = None
    layer: Layer = Layer.L1
    proven: bool = False


class Polled(NamedTuple):
    """One consistent look at a key's item, at ``at``: its token, whether its lease is free
    (absent or expired), and until when its holder backs off (Cognito failed)."""

    found: CachedToken | None
    lease_free: bool
    backoff_until: float | None
    at: float


def fail_open(metrics: MetricsSink, operation: str) -> None:
    """Count and log a DynamoDB failure that the caller works around (read, write, lease)."""
    metrics.add_metric(STORE_ERROR, "Count", 1)
    logger.warning("token table unavailable; failing open", extra={"operation": operation})


class TokenCache:
    """L1 and the token table (``store`` None: L1 alone), read and written as tokens.

    Every DynamoDB call is made only while the request's deadline still allows
    ``store_call_seconds`` (the worst case of one call, botocore's timeouts and attempts).
    """

    def __init__(
        self,
        l1: TokenL1,
        store: TokenItemStore | None,
        *,
        clock: Callable[[], float],
        metrics: MetricsSink,
        proof_seconds: float,
        store_call_seconds: float = 0.0,
    ) -> None:
        self._l1 = l1
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._proof_seconds = proof_seconds
        self._store_call_seconds = store_call_seconds

    @property
    def has_store(self) -> bool:
        return self._store is not None

    def store_usable(self, deadline: Deadline) -> bool:
        """Whether a DynamoDB call may be made now (a table, and time left for one call)."""
        return self._usable_store(deadline) is not None

    def _usable_store(self, deadline: Deadline) -> TokenItemStore | None:
        if self._store is None or not deadline.allows(self._store_call_seconds):
            return None
        return self._store

    # ------------------------------------------------------------------ this container's L1

    def negative_in_memory(self, key: str, now: float) -> UpstreamResponse | None:
        return self._l1.get_negative(key, now)

    def token_in_memory(self, key: str) -> CachedToken | None:
        """L1's token, if it was put less than its max age ago."""
        return self._l1.get(key)

    def keep_in_memory(self, key: str, token: CachedToken) -> None:
        """Hold a token just read from DynamoDB in L1."""
        self._l1.put(key, token)

    def forget_in_memory(self, key: str) -> None:
        self._l1.discard(key)

    def put_negative(self, key: str, answer: UpstreamResponse, until: float) -> None:
        """Remember Cognito's negative answer for this exact key until ``until``, in this
        container only (answers that are not tokens never grow the table)."""
        self._l1.put_negative(key, answer, until)

    # ------------------------------------------------------------------ with DynamoDB

    def lookup(
        self, request: TokenRequest, key: str, in_memory: CachedToken | None, deadline: Deadline
    ) -> Lookup:
        """The longer-lived of ``in_memory`` (L1's, due for a refresh) and the stored token; the
        stored token, when it wins, is kept in L1.

        Without ``in_memory`` L1 may still hold a copy past its max age: DynamoDB revalidates it
        (an operator may have invalidated it), and when DynamoDB cannot answer, it is used as is.
        """
        unverified = self._l1.get_unverified(key) if in_memory is None else None
        read = self._item(key, consistent=False, deadline=deadline)
        if read is None:  # DynamoDB cannot answer: L1's copy stays in use
            fallback = in_memory or unverified
            if unverified is not None:
                self._l1.put(key, unverified)
            return Lookup(fallback, Layer.L1, proven=fallback is not None)
        item, now = read
        opened = self.open(request, key, item, now)
        found = opened.token
        if found is None and unverified is not None:
            self._l1.discard(key)  # gone from DynamoDB: invalidated (or expired)
        proven = opened.proven or in_memory is not None
        if found is not None and (in_memory is None or found.expires_at > in_memory.expires_at):
            self._l1.put(key, found)
            return Lookup(found, Layer.DYNAMODB, proven=True)
        return Lookup(in_memory, Layer.L1, proven=proven)

    def poll(self, request: TokenRequest, key: str, deadline: Deadline) -> Polled | None:
        """A look at the item while another request holds its lease; None when there is no
        table or DynamoDB cannot answer."""
        read = self._item(key, consistent=True, deadline=deadline)
        if read is None:
            return None
        item, now = read
        lease_free = item is None or item.lease_until is None or item.lease_until < now
        backoff = None if item is None or lease_free else item.backoff_until
        return Polled(self.open(request, key, item, now).token, lease_free, backoff, now)

    def open_attempt(self, request: TokenRequest, key: str, attempt: LeaseAttempt) -> Opened:
        """What the item held when a lease was tried (the winner's double check)."""
        return self.open(request, key, attempt.item, self._clock())

    def put_token(
        self, request: TokenRequest, key: str, token: CachedToken, deadline: Deadline
    ) -> bool:
        """Keep a token Cognito just issued: in L1, and sealed in DynamoDB (which drops the
        key's lease). False when it could not be stored (no table, no time, or DynamoDB
        failed): the caller then drops the lease itself."""
        self._l1.put(key, token)
        store = self._usable_store(deadline)
        if store is None:
            return False
        try:
            store.put_token(
                key,
                blob=sealed_token(request, key, token),
                client_id=request.client_id,
                scope=request.scope,
                issued_at=token.issued_at,
                expires_at=token.expires_at,
                keep_until=token.issued_at + self._proof_seconds,
                now=self._clock(),
            )
        except StoreUnavailable:
            fail_open(self._metrics, "write")
            return False
        return True

    def invalidate_client(self, client_id: str, deadline: Deadline) -> Deletion:
        """Delete the stored tokens of ``client_id`` in batches while the deadline allows
        (raises StoreUnavailable), and empty this container's L1."""
        self._l1.clear()
        if self._store is None:
            return Deletion(0, complete=True)
        return self._store.delete_client_items(
            client_id, should_stop=lambda: not deadline.allows(self._store_call_seconds)
        )

    # ------------------------------------------------------------------ items

    def _item(
        self, key: str, *, consistent: bool, deadline: Deadline
    ) -> tuple[StoredItem | None, float] | None:
        """The key's item and when it was read; None when there is no table, no time, or
        DynamoDB cannot answer (counted and logged)."""
        store = self._usable_store(deadline)
        if store is None:
            return None
        try:
            item = store.get(key, consistent=consistent)
        except StoreUnavailable:
            fail_open(self._metrics, "read")
            return None
        return item, self._clock()

    def open(self, request: TokenRequest, key: str, item: StoredItem | None, now: float) -> Opened:
        """The valid token an item holds for this request, and whether its record opened."""
        if item is None or item.blob is None:
            return NOTHING
        try:
            token = opened_token(request, key, item.blob)
        except (SealError, *UNREADABLE):
            logger.warning(
                "a cached item does not open; treating it as a miss", extra={"key": key[:8]}
            )
            return NOTHING
        if token is None:
            return NOTHING
        return Opened(None if is_expired(token, now) else token, proven=True)
