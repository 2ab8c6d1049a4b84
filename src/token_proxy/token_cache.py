"""The token cache: this container's L1 and the shared DynamoDB table, in tokens and answers.

The service asks what is known for a key and hands over what to remember; this module turns
that into L1 entries and DynamoDB items and back, so the service never sees an item, a blob or
an encoding:

- a token response is kept as compact JSON, sealed (:mod:`token_proxy.seal`) under a key derived
  from the client's own secret with the cache key as associated data; a remembered
  ``invalid_client`` answer is sealed the same way, as its status, content type and body;
- an item that holds only a lease, is past its ``expires_at`` (DynamoDB TTL deletes late),
  does not open (another secret, tampered, malformed) or holds a token with less than a second
  left is a miss, never a token or an error;
- when DynamoDB fails, the cache fails open: a read answers what L1 holds (or nothing), a write
  is skipped, and each failure is counted (``StoreError``) and logged with the operation only.

Logs name the client id and the first eight hex characters of the cache key, never a value.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from token_proxy.errors import SealError, StoreUnavailable
from token_proxy.freshness import is_expired
from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken, StoredItem, TokenRequest, UpstreamResponse
from token_proxy.ports import MetricsSink, TokenStore
from token_proxy.seal import seal, unseal
from token_proxy.telemetry import STORE_ERROR

logger = logging.getLogger(__name__)

#: What the cache can hold for a key: a token, or Cognito's negative answer.
Cached = CachedToken | UpstreamResponse


class Layer(enum.Enum):
    """Where a token was found."""

    L1 = "l1"
    DYNAMODB = "dynamodb"


@dataclass(frozen=True, slots=True)
class Lookup:
    """The best token known for a key and its layer, or the negative answer stored for it."""

    token: CachedToken | None = None
    layer: Layer = Layer.L1
    negative: UpstreamResponse | None = None


@dataclass(frozen=True, slots=True)
class Polled:
    """One consistent look at a key's item, at ``at``: what it holds and whether its lease is
    free (absent or expired)."""

    found: Cached | None
    lease_free: bool
    at: float


def fail_open(metrics: MetricsSink, operation: str) -> None:
    """Count and log a DynamoDB failure that the caller works around (read, write, lease)."""
    metrics.add_metric(STORE_ERROR, "Count", 1)
    logger.warning("token table unavailable; failing open", extra={"operation": operation})


class TokenCache:
    """L1 and the token table (``store`` None: L1 alone), read and written as tokens."""

    def __init__(
        self,
        l1: TokenL1,
        store: TokenStore | None,
        *,
        clock: Callable[[], float],
        metrics: MetricsSink,
    ) -> None:
        self._l1 = l1
        self._store = store
        self._clock = clock
        self._metrics = metrics

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

    # ------------------------------------------------------------------ with DynamoDB

    def lookup(self, request: TokenRequest, key: str, in_memory: CachedToken | None) -> Lookup:
        """The longer-lived of ``in_memory`` (L1's, due for a refresh) and the stored token, or
        the stored negative answer; the stored token, when it wins, is kept in L1.

        Without ``in_memory`` L1 may still hold a copy past its max age: DynamoDB revalidates it
        (an operator may have invalidated it), and when DynamoDB cannot answer, it is used as is.
        """
        unverified = self._l1.get_unverified(key) if in_memory is None else None
        found = self._read(request, key, consistent=False, if_unavailable=unverified)
        if isinstance(found, UpstreamResponse):
            return Lookup(negative=found)
        if found is None and unverified is not None:
            self._l1.discard(key)  # gone from DynamoDB: invalidated (or expired)
        if found is not None and (in_memory is None or found.expires_at > in_memory.expires_at):
            # ``found is unverified`` when DynamoDB could not answer: the L1 copy stays in use.
            self._l1.put(key, found)
            return Lookup(found, Layer.L1 if found is unverified else Layer.DYNAMODB)
        return Lookup(in_memory, Layer.L1)

    def read(self, request: TokenRequest, key: str) -> Cached | None:
        """The stored token or negative answer, read consistently (for a lease holder's double
        check); None when there is none or DynamoDB cannot answer."""
        return self._read(request, key, consistent=True)

    def poll(self, request: TokenRequest, key: str) -> Polled | None:
        """A look at the item while another request holds its lease; None when there is no
        table or DynamoDB cannot answer."""
        read = self._item(key, consistent=True)
        if read is None:
            return None
        item, now = read
        lease_free = item is None or item.lease_until is None or item.lease_until < now
        return Polled(self._open(request, key, item, now), lease_free, now)

    def put_token(self, request: TokenRequest, key: str, token: CachedToken) -> None:
        """Keep a token Cognito just issued: in L1, and sealed in DynamoDB."""
        self._l1.put(key, token)
        if self._store is None:
            return
        plaintext = json.dumps(token.response, separators=(",", ":")).encode("utf-8")
        try:
            self._store.put_token(
                key,
                blob=seal(request.client_secret, key, plaintext),
                client_id=request.client_id,
                scope=request.scope,
                issued_at=token.issued_at,
                expires_at=token.expires_at,
                refresh_at=token.refresh_at,
            )
        except StoreUnavailable:
            fail_open(self._metrics, "write")

    def put_negative(
        self, request: TokenRequest, key: str, answer: UpstreamResponse, until: float
    ) -> None:
        """Remember Cognito's ``invalid_client`` answer for this exact key until ``until``."""
        self._l1.put_negative(key, answer, until)
        if self._store is None:
            return
        try:
            self._store.put_negative(
                key,
                blob=seal(request.client_secret, key, _negative_to_json(answer)),
                client_id=request.client_id,
                until=until,
            )
        except StoreUnavailable:
            fail_open(self._metrics, "write")

    def invalidate_client(self, client_id: str) -> int:
        """Delete every stored token and negative answer of ``client_id`` (raises
        StoreUnavailable) and empty this container's L1; returns the number of items deleted."""
        deleted = 0 if self._store is None else self._store.delete_client_items(client_id)
        self._l1.clear()
        return deleted

    # ------------------------------------------------------------------ items

    def _read(
        self,
        request: TokenRequest,
        key: str,
        *,
        consistent: bool,
        if_unavailable: CachedToken | None = None,
    ) -> Cached | None:
        """The item's token or negative answer; ``if_unavailable`` when DynamoDB cannot answer."""
        read = self._item(key, consistent=consistent)
        if read is None:
            return if_unavailable
        item, now = read
        return self._open(request, key, item, now)

    def _item(self, key: str, *, consistent: bool) -> tuple[StoredItem | None, float] | None:
        """The key's item and when it was read; None when there is no table or DynamoDB cannot
        answer (counted and logged)."""
        if self._store is None:
            return None
        try:
            item = self._store.get(key, consistent=consistent)
        except StoreUnavailable:
            fail_open(self._metrics, "read")
            return None
        return item, self._clock()

    def _open(
        self, request: TokenRequest, key: str, item: StoredItem | None, now: float
    ) -> Cached | None:
        """The valid token or live negative answer an item holds (a negative one is also put
        in L1); None for anything else."""
        if item is None or item.blob is None or now >= item.expires_at:
            return None
        try:
            plaintext = unseal(request.client_secret, key, item.blob)
            if item.kind == "negative":
                negative = _negative_from_json(plaintext)
                self._l1.put_negative(key, negative, item.expires_at)
                return negative
            response = json.loads(plaintext)
        except (SealError, ValueError, KeyError, TypeError, binascii.Error):
            logger.warning(
                "a cached item does not open; treating it as a miss",
                extra={"client_id": request.client_id, "key": key[:8]},
            )
            return None
        if not isinstance(response, dict):
            return None
        token = CachedToken(
            response=response,
            issued_at=item.issued_at,
            expires_at=item.expires_at,
            refresh_at=item.refresh_at,
        )
        return None if is_expired(token, now) else token


def _negative_to_json(answer: UpstreamResponse) -> bytes:
    record = {
        "status": answer.status,
        "content_type": answer.content_type,
        "body": base64.b64encode(answer.body).decode("ascii"),
    }
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def _negative_from_json(plaintext: bytes) -> UpstreamResponse:
    record = json.loads(plaintext)
    return UpstreamResponse(
        status=int(record["status"]),
        body=base64.b64decode(record["body"], validate=True),
        content_type=str(record["content_type"]),
    )
