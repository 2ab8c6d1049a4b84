"""The token cache: L1 -> DynamoDB -> single-flight lease -> Cognito, with freshness rules.

The service holds the flow and nothing else: the store, the issuer, the clock and the sleep
are handed to it, so tests drive it with fakes, moto and a controllable clock. It never
imports boto3 or requests and never logs a secret or a token (only the client id and the
first eight hex characters of the cache key).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from function_setup.metrics import MetricsSink, NullMetrics
from token_proxy.errors import (
    OriginSecretUnavailable,
    SealError,
    StoreUnavailable,
    TemporarilyUnavailable,
    UpstreamUnavailable,
)
from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken, HttpResponse, StoredItem, TokenRequest, UpstreamResponse
from token_proxy.replies import relay_reply, token_reply
from token_proxy.seal import seal, unseal
from token_proxy.settings import Settings
from token_proxy.telemetry import (
    COALESCED_WAIT,
    HIT_DYNAMODB,
    HIT_L1,
    MISS,
    NEGATIVE_HIT,
    REFRESH_AHEAD,
    STALE_SERVED,
    STORE_ERROR,
)

logger = logging.getLogger(__name__)

UNAVAILABLE_DESCRIPTION = "the token service is temporarily unavailable"
#: Polling a lease holder's result: the first sleep, doubled up to the cap.
FIRST_POLL_SECONDS = 0.025
MAX_POLL_SECONDS = 0.4
#: Cognito's answers for which the exact credentials are wrong (RFC 6749 section 5.2).
_NEGATIVE_STATUSES = (400, 401)


class Issuer(Protocol):
    """Cognito's token endpoint; raises UpstreamUnavailable after its own bounded retries."""

    def fetch(self, request: TokenRequest) -> UpstreamResponse: ...


class TokenStore(Protocol):
    """The shared cache (DynamoTokenStore); every failure is StoreUnavailable."""

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None: ...

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
    ) -> None: ...

    def put_negative(self, key: str, *, blob: bytes, client_id: str, until: float) -> None: ...

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> bool: ...

    def release_lease(self, key: str, *, owner: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def delete_client_items(self, client_id: str) -> int: ...


class Freshness(enum.Enum):
    FRESH = "fresh"  # before refresh_at: serve
    REFRESH = "refresh"  # serve; one request (the lease winner) refreshes
    LATE = "late"  # too little life left to hand out normally: a miss, kept for stale-if-error
    EXPIRED = "expired"  # less than one whole second left: never served


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


class TokenService:
    """Answers client_credentials token requests from the cache or from Cognito."""

    def __init__(
        self,
        *,
        settings: Settings,
        issuer: Issuer,
        store: TokenStore | None,
        l1: TokenL1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: MetricsSink | None = None,
        owner_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._issuer = issuer
        self._store = store
        self._l1 = l1
        self._clock = clock
        self._sleep = sleep
        self._metrics: MetricsSink = metrics if metrics is not None else NullMetrics()
        self._owner = owner_id or uuid.uuid4().hex
        self._key_locks = _KeyLocks()
        #: After Cognito failed (retries exhausted), requests of this instance that hold a still
        #: valid token serve it without calling Cognito until then (a per-container breaker).
        self._upstream_down_until = 0.0

    # ------------------------------------------------------------------ the flow

    def handle(self, request: TokenRequest) -> HttpResponse:
        """A token (cached or fresh) or Cognito's relayed answer.

        Raises TemporarilyUnavailable only when Cognito is unusable and no valid token is cached.
        """
        key = request.cache_key()
        now = self._clock()

        negative = self._l1.get_negative(key, now)
        if negative is not None:
            self._count(NEGATIVE_HIT)
            return relay_reply(negative)

        local = self._l1.get(key)
        if local is not None:
            state = self.freshness(local, now)
            if state is Freshness.FRESH:
                self._count(HIT_L1)
                return self._serve(local)
            if state is Freshness.EXPIRED:
                self._l1.discard(key)
                local = None

        # L1 missed, its token is due for a refresh, or it is past the L1 max age and must be
        # revalidated (an operator may have invalidated it): DynamoDB may hold a newer one.
        unverified = self._l1.get_unverified(key) if local is None else None
        found = self._read_store(request, key, consistent=False, if_unavailable=unverified)
        if isinstance(found, UpstreamResponse):
            self._count(NEGATIVE_HIT)
            return relay_reply(found)
        if found is None and unverified is not None:
            self._l1.discard(key)  # gone from DynamoDB: invalidated (or expired)

        best, layer = local, HIT_L1
        if found is not None and (best is None or found.expires_at > best.expires_at):
            # ``found is unverified`` when DynamoDB could not answer: the L1 copy stays in use.
            best, layer = found, HIT_L1 if found is unverified else HIT_DYNAMODB
            self._l1.put(key, found)

        if best is not None:
            state = self.freshness(best, now)
            if state is Freshness.FRESH:
                self._count(layer)
                return self._serve(best)
            if state is Freshness.REFRESH:
                return self._refresh_ahead(request, key, best, layer)

        self._count(MISS)
        return self._fill(request, key, fallback=best)

    def invalidate_client(self, client_id: str) -> int:
        """Delete every cached token and negative answer of ``client_id`` from DynamoDB (raises
        StoreUnavailable) and empty this container's L1; returns the number of items deleted.
        Other warm containers revalidate their L1 copies within ``l1_max_age_seconds``."""
        deleted = 0 if self._store is None else self._store.delete_client_items(client_id)
        self._l1.clear()
        return deleted

    def freshness(self, token: CachedToken, now: float) -> Freshness:
        remaining = token.expires_at - now
        if remaining < 1.0:
            return Freshness.EXPIRED
        if now < token.refresh_at:
            return Freshness.FRESH
        if remaining > self._settings.min_remaining_ratio * token.lifetime:
            return Freshness.REFRESH
        return Freshness.LATE

    def _usable(self, token: CachedToken, now: float) -> bool:
        return self.freshness(token, now) in (Freshness.FRESH, Freshness.REFRESH)

    def _refresh_ahead(
        self, request: TokenRequest, key: str, cached: CachedToken, layer: str
    ) -> HttpResponse:
        """Serve ``cached``; the one request that wins the lease fetches a new token instead."""
        with self._key_locks.hold(key, timeout=0) as (acquired, _):
            if not acquired:  # another thread of this instance is refreshing
                self._count(layer)
                return self._serve(cached)
            lease = self._try_lease(key)
            if lease is False:
                self._count(layer)
                return self._serve(cached)
            keep_lease = False
            try:
                if lease:
                    newer = self._read_store(request, key, consistent=True)
                    if isinstance(newer, UpstreamResponse):
                        self._count(NEGATIVE_HIT)
                        return relay_reply(newer)
                    if (
                        newer is not None
                        and self.freshness(newer, self._clock()) is Freshness.FRESH
                    ):
                        self._l1.put(key, newer)  # someone refreshed just before we took the lease
                        self._count(HIT_DYNAMODB)
                        return self._serve(newer)
                self._count(REFRESH_AHEAD)
                logger.info(
                    "refreshing a token ahead of expiry",
                    extra={"client_id": request.client_id, "key": key[:8]},
                )
                issued_at = self._clock()
                try:
                    upstream = self._issuer.fetch(request)
                except (UpstreamUnavailable, OriginSecretUnavailable) as exc:
                    # Keep the lease: it expires after lease_seconds, so the fleet backs off
                    # instead of every request in the window waiting on a failing Cognito.
                    keep_lease = True
                    return self._stale_or_unavailable(request, key, cached, exc)
                self._upstream_down_until = 0.0
                return self._answer(request, key, upstream, issued_at)
            finally:
                if lease and not keep_lease:
                    self._release(key)

    def _fill(self, request: TokenRequest, key: str, fallback: CachedToken | None) -> HttpResponse:
        """A miss: coalesce with this instance's threads, then with the fleet via the lease."""
        bound = self._settings.coalesce_wait_seconds + self._settings.lease_seconds
        with self._key_locks.hold(key, timeout=bound) as (_, contended):
            if contended:
                self._count(COALESCED_WAIT)
                now = self._clock()
                negative = self._l1.get_negative(key, now)
                if negative is not None:
                    return relay_reply(negative)
                local = self._l1.get(key)
                if local is not None and self._usable(local, now):
                    return self._serve(local)
            return self._single_flight(request, key, fallback, waited=contended)

    def _single_flight(
        self, request: TokenRequest, key: str, fallback: CachedToken | None, *, waited: bool
    ) -> HttpResponse:
        if self._store is None:
            return self._fetch(request, key, fallback)
        deadline = self._clock() + self._settings.coalesce_wait_seconds
        delay = FIRST_POLL_SECONDS
        lease_free = True
        while True:
            if lease_free:
                lease = self._try_lease(key)
                if lease is None:  # DynamoDB is failing: fail open to Cognito
                    return self._fetch(request, key, fallback)
                if lease:
                    return self._as_lease_holder(request, key, fallback)
            if not waited:
                self._count(COALESCED_WAIT)
                waited = True
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_SECONDS)
            try:
                item = self._store.get(key, consistent=True)
            except StoreUnavailable:
                self._store_error("read")
                break
            now = self._clock()
            opened = self._open_item(request, key, item, now)
            if isinstance(opened, UpstreamResponse):
                self._count(NEGATIVE_HIT)
                return relay_reply(opened)
            if opened is not None:
                if self._usable(opened, now):
                    self._l1.put(key, opened)
                    return self._serve(opened)
                if fallback is None or opened.expires_at > fallback.expires_at:
                    fallback = opened
            lease_free = item is None or item.lease_until is None or item.lease_until < now
        logger.info(
            "no token appeared while waiting for the lease holder; calling Cognito",
            extra={"client_id": request.client_id, "key": key[:8]},
        )
        return self._fetch(request, key, fallback)

    def _as_lease_holder(
        self, request: TokenRequest, key: str, fallback: CachedToken | None
    ) -> HttpResponse:
        try:
            # Double check: the previous holder may have stored a token and dropped its lease
            # between our read and our lease.
            opened = self._read_store(request, key, consistent=True)
            if isinstance(opened, UpstreamResponse):
                self._count(NEGATIVE_HIT)
                return relay_reply(opened)
            if opened is not None and self._usable(opened, self._clock()):
                self._l1.put(key, opened)
                return self._serve(opened)
            return self._fetch(request, key, fallback)
        finally:
            self._release(key)

    def _fetch(self, request: TokenRequest, key: str, fallback: CachedToken | None) -> HttpResponse:
        """Call Cognito, or serve ``fallback`` (stale-if-error) when it cannot be used."""
        issued_at = self._clock()  # before the call: the token's life is counted conservatively
        if issued_at < self._upstream_down_until:
            stale = self._still_valid(key, fallback, issued_at)
            if stale is not None:  # Cognito failed moments ago: do not queue on it again
                self._count(STALE_SERVED)
                return self._serve(stale)
        try:
            upstream = self._issuer.fetch(request)
        except (UpstreamUnavailable, OriginSecretUnavailable) as exc:
            return self._stale_or_unavailable(request, key, fallback, exc)
        self._upstream_down_until = 0.0
        return self._answer(request, key, upstream, issued_at)

    def _answer(
        self, request: TokenRequest, key: str, upstream: UpstreamResponse, issued_at: float
    ) -> HttpResponse:
        """Cache a usable token or an invalid_client answer; relay everything else."""
        token = self._token_from(upstream, issued_at)
        if token is not None:
            self._l1.put(key, token)
            self._store_token(request, key, token)
            return self._serve(token)
        if self._is_invalid_client(upstream) and self._settings.negative_cache_seconds > 0:
            self._remember_negative(request, key, upstream)
        else:
            logger.info(
                "relaying an uncacheable Cognito answer",
                extra={"client_id": request.client_id, "key": key[:8], "status": upstream.status},
            )
        return relay_reply(upstream)

    def _stale_or_unavailable(
        self,
        request: TokenRequest,
        key: str,
        fallback: CachedToken | None,
        exc: Exception,
    ) -> HttpResponse:
        now = self._clock()
        self._upstream_down_until = now + self._settings.lease_seconds
        best = self._still_valid(key, fallback, now)
        if best is not None:
            self._count(STALE_SERVED)
            logger.warning(
                "Cognito is unavailable; serving a still valid cached token",
                extra={"client_id": request.client_id, "key": key[:8], "error": type(exc).__name__},
            )
            return self._serve(best)
        logger.warning(
            "Cognito is unavailable and no valid token is cached",
            extra={"client_id": request.client_id, "key": key[:8], "error": type(exc).__name__},
        )
        raise TemporarilyUnavailable(UNAVAILABLE_DESCRIPTION) from exc

    def _still_valid(
        self, key: str, fallback: CachedToken | None, now: float
    ) -> CachedToken | None:
        """The longest-lived token known for ``key`` that may still be served stale."""
        candidates = [t for t in (fallback, self._l1.get(key)) if t is not None]
        valid = [t for t in candidates if self.freshness(t, now) is not Freshness.EXPIRED]
        return max(valid, key=lambda t: t.expires_at) if valid else None

    # ------------------------------------------------------------------ values

    def _serve(self, token: CachedToken) -> HttpResponse:
        return token_reply(token.response, math.floor(token.expires_at - self._clock()))

    def _token_from(self, upstream: UpstreamResponse, issued_at: float) -> CachedToken | None:
        """A cacheable token: a 200 JSON object with an access_token and a positive expires_in."""
        body = _json_object(upstream) if upstream.status == 200 else None
        if body is None:
            return None
        access_token = body.get("access_token")
        expires_in = body.get("expires_in")
        if not isinstance(access_token, str) or not access_token:
            return None
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            return None
        return CachedToken(
            response=body,
            issued_at=issued_at,
            # Cognito truncates iat to whole seconds: so does the lifetime counted here, so
            # that expires_in never claims more than the token's exp allows.
            expires_at=math.floor(issued_at) + expires_in,
            refresh_at=math.floor(issued_at) + self._settings.refresh_ratio * expires_in,
        )

    @staticmethod
    def _is_invalid_client(upstream: UpstreamResponse) -> bool:
        if upstream.status not in _NEGATIVE_STATUSES:
            return False
        body = _json_object(upstream)
        return body is not None and body.get("error") == "invalid_client"

    # ------------------------------------------------------------------ the store, failing open

    def _read_store(
        self,
        request: TokenRequest,
        key: str,
        *,
        consistent: bool,
        if_unavailable: CachedToken | None = None,
    ) -> CachedToken | UpstreamResponse | None:
        """The item's token or negative answer; ``if_unavailable`` when DynamoDB cannot answer."""
        if self._store is None:
            return if_unavailable
        try:
            item = self._store.get(key, consistent=consistent)
        except StoreUnavailable:
            self._store_error("read")
            return if_unavailable
        return self._open_item(request, key, item, self._clock())

    def _open_item(
        self, request: TokenRequest, key: str, item: StoredItem | None, now: float
    ) -> CachedToken | UpstreamResponse | None:
        """The valid token or live negative answer an item holds; None for anything else."""
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
        return None if self.freshness(token, now) is Freshness.EXPIRED else token

    def _store_token(self, request: TokenRequest, key: str, token: CachedToken) -> None:
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
            self._store_error("write")

    def _remember_negative(
        self, request: TokenRequest, key: str, upstream: UpstreamResponse
    ) -> None:
        until = self._clock() + self._settings.negative_cache_seconds
        self._l1.put_negative(key, upstream, until)
        logger.info(
            "caching an invalid_client answer for this exact key",
            extra={"client_id": request.client_id, "key": key[:8], "status": upstream.status},
        )
        if self._store is None:
            return
        try:
            self._store.put_negative(
                key,
                blob=seal(request.client_secret, key, _negative_to_json(upstream)),
                client_id=request.client_id,
                until=until,
            )
        except StoreUnavailable:
            self._store_error("write")

    def _try_lease(self, key: str) -> bool | None:
        """True/False as the store answers; None when there is no store or it is failing."""
        if self._store is None:
            return None
        try:
            return self._store.try_acquire_lease(
                key,
                owner=self._owner,
                now=self._clock(),
                lease_seconds=self._settings.lease_seconds,
            )
        except StoreUnavailable:
            self._store_error("lease")
            return None

    def _release(self, key: str) -> None:
        if self._store is not None:
            self._store.release_lease(key, owner=self._owner)

    def _store_error(self, operation: str) -> None:
        self._count(STORE_ERROR)
        logger.warning("token table unavailable; failing open", extra={"operation": operation})

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)


def _json_object(upstream: UpstreamResponse) -> dict[str, Any] | None:
    try:
        body = upstream.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _negative_to_json(upstream: UpstreamResponse) -> bytes:
    record = {
        "status": upstream.status,
        "content_type": upstream.content_type,
        "body": base64.b64encode(upstream.body).decode("ascii"),
    }
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def _negative_from_json(plaintext: bytes) -> UpstreamResponse:
    record = json.loads(plaintext)
    return UpstreamResponse(
        status=int(record["status"]),
        body=base64.b64decode(record["body"], validate=True),
        content_type=str(record["content_type"]),
    )
