"""The token flow: hit -> refresh-ahead -> miss -> stale-if-error, read top to bottom.

:meth:`TokenService.handle` answers one client_credentials request:

1. a hit: a negative answer or a fresh token in this container's L1, then in DynamoDB (which
   also revalidates an L1 copy past its max age);
2. refresh-ahead: a token past ``refresh_at`` is served, and the one request that wins the
   key's lease fetches a new one (:meth:`TokenService._refresh_ahead`);
3. a miss: one request per key calls Cognito, the others wait for its token
   (:meth:`TokenService._fill`);
4. stale-if-error: when Cognito cannot answer, a token that is still valid is served; after
   such a failure this container serves valid tokens without queueing on Cognito again for
   ``lease_seconds`` (a per-container breaker).

Its collaborators are handed to it (see :mod:`token_proxy.wiring`): the cache (L1 and DynamoDB,
seen as tokens and negative answers: :mod:`token_proxy.token_cache`), the single flight
(:mod:`token_proxy.single_flight`), the freshness policy (:mod:`token_proxy.freshness`), the
Cognito client and the clock. So this module knows nothing of items, sealing or encodings,
never imports boto3 or requests, and never logs a secret or a token (only the client id and the
first eight hex characters of the cache key). Every call to Cognito writes one INFO line, the
one the saved Logs Insights queries read (:mod:`token_proxy.accounting`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from token_proxy import accounting
from token_proxy.errors import (
    OriginSecretUnavailable,
    TemporarilyUnavailable,
    UpstreamUnavailable,
)
from token_proxy.freshness import Freshness, FreshnessPolicy, is_expired, is_invalid_client
from token_proxy.model import CachedToken, HttpResponse, TokenRequest, UpstreamResponse
from token_proxy.ports import CognitoClient, MetricsSink
from token_proxy.replies import relay_reply, token_reply
from token_proxy.settings import Settings
from token_proxy.single_flight import Lease, SingleFlight
from token_proxy.telemetry import (
    HIT_DYNAMODB,
    HIT_L1,
    MISS,
    NEGATIVE_HIT,
    REFRESH_AHEAD,
    STALE_SERVED,
)
from token_proxy.token_cache import Layer, TokenCache

logger = logging.getLogger(__name__)

UNAVAILABLE_DESCRIPTION = "the token service is temporarily unavailable"
#: What the Cognito client raises when it has no answer (after its own bounded retries).
COGNITO_FAILURES = (UpstreamUnavailable, OriginSecretUnavailable)
_HIT_METRIC = {Layer.L1: HIT_L1, Layer.DYNAMODB: HIT_DYNAMODB}


class TokenService:
    """Answers client_credentials token requests from the cache or from Cognito."""

    def __init__(
        self,
        *,
        settings: Settings,
        policy: FreshnessPolicy,
        cache: TokenCache,
        flight: SingleFlight,
        cognito: CognitoClient,
        metrics: MetricsSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._cache = cache
        self._flight = flight
        self._cognito = cognito
        self._metrics = metrics
        self._clock = clock
        #: After Cognito failed (retries exhausted), requests of this instance that hold a still
        #: valid token serve it without calling Cognito until then (a per-container breaker).
        self._upstream_down_until = 0.0

    def handle(self, request: TokenRequest) -> HttpResponse:
        """A token (cached or fresh) or Cognito's relayed answer.

        Raises TemporarilyUnavailable only when Cognito is unusable and no valid token is cached.
        """
        key = request.cache_key()
        now = self._clock()

        negative = self._cache.negative_in_memory(key, now)
        if negative is not None:
            return self._relay_remembered(negative)

        local = self._cache.token_in_memory(key)
        if local is not None:
            state = self._policy.state(local, now)
            if state is Freshness.FRESH:
                return self._serve(local, HIT_L1)
            if state is Freshness.EXPIRED:
                self._cache.forget_in_memory(key)
                local = None

        # L1 missed, its token is due for a refresh, or it is past the L1 max age and must be
        # revalidated (an operator may have invalidated it): DynamoDB may hold a newer one.
        found = self._cache.lookup(request, key, in_memory=local)
        if found.negative is not None:
            return self._relay_remembered(found.negative)
        best = found.token
        if best is not None:
            state = self._policy.state(best, now)
            if state is Freshness.FRESH:
                return self._serve(best, _HIT_METRIC[found.layer])
            if state is Freshness.REFRESH:
                return self._refresh_ahead(request, key, best, _HIT_METRIC[found.layer])

        self._count(MISS)
        return self._fill(request, key, fallback=best)

    def invalidate_client(self, client_id: str) -> int:
        """Delete every cached token and negative answer of ``client_id`` from DynamoDB (raises
        StoreUnavailable) and empty this container's L1; returns the number of items deleted.
        Other warm containers revalidate their L1 copies within ``l1_max_age_seconds``."""
        return self._cache.invalidate_client(client_id)

    # ------------------------------------------------------------------ refresh-ahead and miss

    def _refresh_ahead(
        self, request: TokenRequest, key: str, cached: CachedToken, hit: str
    ) -> HttpResponse:
        """Serve ``cached``; the one request that wins the lease fetches a new token instead."""
        with self._flight.refresh(key) as turn:
            if turn.lease is Lease.TAKEN:  # another thread or instance is refreshing it
                return self._serve(cached, hit)
            if turn.lease is Lease.ACQUIRED:
                newer = self._cache.read(request, key)
                if isinstance(newer, UpstreamResponse):
                    return self._relay_remembered(newer)
                if (
                    newer is not None
                    and self._policy.state(newer, self._clock()) is Freshness.FRESH
                ):
                    self._cache.keep_in_memory(key, newer)  # refreshed just before our lease
                    return self._serve(newer, HIT_DYNAMODB)
            self._count(REFRESH_AHEAD)
            logger.info(
                "refreshing a token ahead of expiry",
                extra={"client_id": request.client_id, "key": key[:8]},
            )
            issued_at = self._clock()
            try:
                upstream = self._call_cognito(request, key, accounting.REFRESH_AHEAD)
            except COGNITO_FAILURES as exc:
                # Keep the lease: it expires after lease_seconds, so the fleet backs off
                # instead of every request in the window waiting on a failing Cognito.
                turn.keep_lease = True
                return self._stale_or_unavailable(request, key, cached, exc)
            return self._answer(request, key, upstream, issued_at)

    def _fill(self, request: TokenRequest, key: str, fallback: CachedToken | None) -> HttpResponse:
        """A miss: wait for whoever already fetches this key, or fetch it (holding its lease)."""
        with self._flight.miss(request, key, fallback) as turn:
            found = turn.found
            if isinstance(found, UpstreamResponse):
                return self._relay_remembered(found) if turn.from_store else relay_reply(found)
            if found is not None:
                if turn.from_store:
                    self._cache.keep_in_memory(key, found)
                return self._serve(found)
            return self._fetch(request, key, turn.fallback)

    # ------------------------------------------------------------------ Cognito

    def _fetch(self, request: TokenRequest, key: str, fallback: CachedToken | None) -> HttpResponse:
        """Call Cognito, or serve ``fallback`` (stale-if-error) when it cannot be used."""
        issued_at = self._clock()  # before the call: the token's life is counted conservatively
        if issued_at < self._upstream_down_until:
            stale = self._still_valid(key, fallback, issued_at)
            if stale is not None:  # Cognito failed moments ago: do not queue on it again
                return self._serve(stale, STALE_SERVED)
        try:
            upstream = self._call_cognito(request, key, accounting.MISS)
        except COGNITO_FAILURES as exc:
            return self._stale_or_unavailable(request, key, fallback, exc)
        return self._answer(request, key, upstream, issued_at)

    def _call_cognito(self, request: TokenRequest, key: str, reason: str) -> UpstreamResponse:
        """Cognito's answer, and one Cognito call line (:mod:`token_proxy.accounting`) for the
        saved queries, whatever the outcome."""
        started = self._clock()
        answer: UpstreamResponse | None = None
        try:
            answer = self._cognito.fetch(request)
        finally:
            fields = accounting.cognito_call_fields(
                reason=reason,
                key=key,
                client_id=request.client_id,
                elapsed_seconds=self._clock() - started,
                answer=answer,
            )
            logger.info(accounting.COGNITO_CALL, extra=fields)
        self._upstream_down_until = 0.0
        return answer

    def _answer(
        self, request: TokenRequest, key: str, upstream: UpstreamResponse, issued_at: float
    ) -> HttpResponse:
        """Cache a usable token or an invalid_client answer; relay everything else."""
        token = self._policy.token_from(upstream, issued_at)
        if token is not None:
            self._cache.put_token(request, key, token)
            return self._serve(token)
        log = {"client_id": request.client_id, "key": key[:8], "status": upstream.status}
        if is_invalid_client(upstream) and self._settings.negative_cache_seconds > 0:
            logger.info("caching an invalid_client answer for this exact key", extra=log)
            until = self._clock() + self._settings.negative_cache_seconds
            self._cache.put_negative(request, key, upstream, until)
        else:
            logger.info("relaying an uncacheable Cognito answer", extra=log)
        return relay_reply(upstream)

    # ------------------------------------------------------------------ stale-if-error

    def _stale_or_unavailable(
        self, request: TokenRequest, key: str, fallback: CachedToken | None, exc: Exception
    ) -> HttpResponse:
        now = self._clock()
        self._upstream_down_until = now + self._settings.lease_seconds
        best = self._still_valid(key, fallback, now)
        log = {"client_id": request.client_id, "key": key[:8], "error": type(exc).__name__}
        if best is not None:
            logger.warning("Cognito is unavailable; serving a still valid cached token", extra=log)
            return self._serve(best, STALE_SERVED)
        logger.warning("Cognito is unavailable and no valid token is cached", extra=log)
        raise TemporarilyUnavailable(UNAVAILABLE_DESCRIPTION) from exc

    def _still_valid(
        self, key: str, fallback: CachedToken | None, now: float
    ) -> CachedToken | None:
        """The longest-lived token known for ``key`` that may still be served stale."""
        candidates = [t for t in (fallback, self._cache.token_in_memory(key)) if t is not None]
        valid = [t for t in candidates if not is_expired(t, now)]
        return max(valid, key=lambda t: t.expires_at) if valid else None

    # ------------------------------------------------------------------ answers

    def _serve(self, token: CachedToken, metric: str | None = None) -> HttpResponse:
        if metric is not None:
            self._count(metric)
        return token_reply(token.response, math.floor(token.expires_at - self._clock()))

    def _relay_remembered(self, negative: UpstreamResponse) -> HttpResponse:
        self._count(NEGATIVE_HIT)
        return relay_reply(negative)

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)
