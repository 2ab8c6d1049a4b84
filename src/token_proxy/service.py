"""The token flow: hit -> refresh-ahead -> miss -> stale-if-error, read top to bottom.

:meth:`TokenService.handle` answers one client_credentials request within one deadline (the
Lambda context's remaining time less a margin, :mod:`token_proxy.deadline`):

1. a hit: a negative answer or a fresh token in this container's L1, then in DynamoDB (which
   also revalidates an L1 copy past its max age);
2. refresh-ahead: a token past ``refresh_at`` is served, and the one request that wins the
   key's lease fetches a new one (:meth:`TokenService._refresh_ahead`);
3. a miss: one request per key calls Cognito, the others wait for its token
   (:meth:`TokenService._fill`). A key that never produced a token (unproven: a wrong secret,
   a made-up client id, a new client) calls Cognito only within the budget of such calls
   (:mod:`token_proxy.budget`); past it the answer is 429 at once;
4. stale-if-error and backing off: when Cognito cannot answer, a token that is still valid is
   served, else 503 ``temporarily_unavailable`` with a ``Retry-After`` that reflects
   Cognito's. After such a failure this container calls Cognito for no key until the back-off
   window ends (:mod:`token_proxy.backoff`), and the key's lease stays held as a back-off, so
   the whole fleet leaves that key alone as long.

Its collaborators are handed to it (see :mod:`token_proxy.wiring`): the cache keys
(:mod:`token_proxy.cache_key`), the cache (L1 and DynamoDB, seen as tokens and negative
answers: :mod:`token_proxy.token_cache`), the single flight (:mod:`token_proxy.single_flight`),
the budget, the back-off, the freshness policy (:mod:`token_proxy.freshness`), the Cognito
client and the clock. So this module knows nothing of items, sealing or encodings, never
imports boto3 or urllib3, and never logs a secret or a token. A client id is logged only once
its key has produced a token (``client_id``); before that, only its keyed fingerprint
(``client_fp``), since an unconfirmed client id may be a secret sent in the wrong field. Every
call to Cognito writes one INFO line, the one the saved Logs Insights queries read
(:mod:`token_proxy.accounting`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from token_proxy import accounting
from token_proxy.backoff import UpstreamBackoff
from token_proxy.budget import UnprovenBudget
from token_proxy.cache_key import CacheKeys
from token_proxy.deadline import Deadline
from token_proxy.errors import OriginSecretUnavailable, TemporarilyUnavailable, UpstreamUnavailable
from token_proxy.freshness import Freshness, FreshnessPolicy, is_negative_answer, longest_valid
from token_proxy.model import CachedToken, Deletion, HttpResponse, TokenRequest, UpstreamResponse
from token_proxy.replies import relay_reply, token_reply
from token_proxy.settings import Settings
from token_proxy.single_flight import SingleFlight
from token_proxy.telemetry import (
    HIT_DYNAMODB,
    HIT_L1,
    MISS,
    NEGATIVE_HIT,
    REFRESH_AHEAD,
    STALE_SERVED,
    UPSTREAM_BACKED_OFF,
)
from token_proxy.token_cache import Layer, TokenCache
from token_proxy.turn import Lease, Turn

if TYPE_CHECKING:
    from token_proxy.ports import CognitoClient, MetricsSink


logger = logging.getLogger(__name__)

UNAVAILABLE_DESCRIPTION = "the token service is temporarily unavailable"
#: What the Cognito client raises when it has no answer (after its own bounded retries).
COGNITO_FAILURES = (UpstreamUnavailable, OriginSecretUnavailable)
_HIT_METRIC = {Layer.L1: HIT_L1, Layer.DYNAMODB: HIT_DYNAMODB}


class _Ask:
    """A request on its way past the L1: its cache key, its deadline, and whether its key is
    known to be proven (it once produced a token)."""

    __slots__ = ("deadline", "key", "proven", "request")

    def __init__(self, request: TokenRequest, key: str, deadline: Deadline, proven: bool) -> None:
        self.request = request
        self.key = key
        self.deadline = deadline
        self.proven = proven


class TokenService:
    """Answers client_credentials token requests from the cache or from Cognito."""

    def __init__(
        self,
        *,
        settings: Settings,
        policy: FreshnessPolicy,
        keys: CacheKeys,
        cache: TokenCache,
        flight: SingleFlight,
        budget: UnprovenBudget,
        backoff: UpstreamBackoff,
        cognito: CognitoClient,
        metrics: MetricsSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._keys = keys
        self._cache = cache
        self._flight = flight
        self._budget = budget
        self._backoff = backoff
        self._cognito = cognito
        self._metrics = metrics
        self._clock = clock

    def handle(
        self, request: TokenRequest, *, remaining_seconds: float | None = None
    ) -> HttpResponse:
        """A token (cached or fresh) or Cognito's relayed answer, within the time the function
        has left (``remaining_seconds``, from the Lambda context; the function's timeout when
        not given).

        Raises TemporarilyUnavailable when Cognito is unusable (or backed off) and no valid
        token is cached, UnprovenBudgetSpent when unproven credentials may not call it now.
        """
        key = self._keys.key_for(request)
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
        deadline = self._deadline(remaining_seconds)
        found = self._cache.lookup(request, key, local, deadline)
        ask = _Ask(request, key, deadline, proven=found.proven)
        best = found.token
        if best is not None:
            state = self._policy.state(best, now)
            if state is Freshness.FRESH:
                return self._serve(best, _HIT_METRIC[found.layer])
            if state is Freshness.REFRESH:
                return self._refresh_ahead(ask, best, _HIT_METRIC[found.layer])

        self._count(MISS)
        return self._fill(ask, best)

    def fingerprint(self, client_id: str) -> str:
        """The keyed fingerprint logs name an unconfirmed client id by."""
        return self._keys.fingerprint(client_id)

    def invalidate_client(
        self, client_id: str, *, remaining_seconds: float | None = None
    ) -> Deletion:
        """Delete the cached tokens of ``client_id`` from DynamoDB in batches within the
        deadline (raises StoreUnavailable) and empty this container's L1; returns a
        :class:`~token_proxy.model.Deletion`. Other warm containers revalidate their L1
        copies within ``l1_max_age_seconds``."""
        return self._cache.invalidate_client(client_id, self._deadline(remaining_seconds))

    def _deadline(self, remaining_seconds: float | None) -> Deadline:
        """A request's deadline: the function's remaining time less the margin, and never more
        than the function's timeout less the margin."""
        seconds = self._settings.request_seconds
        if remaining_seconds is not None:
            seconds = min(seconds, remaining_seconds - self._settings.deadline_margin_seconds)
        return Deadline.within(seconds, self._clock)

    # ------------------------------------------------------------------ refresh-ahead and miss

    def _refresh_ahead(self, ask: _Ask, cached: CachedToken, hit: str) -> HttpResponse:
        """Serve ``cached``; the one request that wins the lease fetches a new token instead
        (unless Cognito failed moments ago: then everyone keeps the cached token)."""
        if self._backoff.is_open():
            return self._serve(cached, hit)
        with self._flight.refresh(ask.request, ask.key, ask.deadline) as turn:
            if turn.lease is Lease.TAKEN:  # another thread or instance is refreshing it
                return self._serve(cached, hit)
            newer = turn.found
            if isinstance(newer, CachedToken) and (
                self._policy.state(newer, self._clock()) is Freshness.FRESH
            ):
                self._cache.keep_in_memory(ask.key, newer)  # refreshed just before our lease
                return self._serve(newer, HIT_DYNAMODB)
            self._count(REFRESH_AHEAD)
            logger.info("refreshing a token ahead of expiry", extra=self._who(ask, proven=True))
            return self._fetch(ask, turn, cached, reason=accounting.REFRESH_AHEAD)

    def _fill(self, ask: _Ask, fallback: CachedToken | None) -> HttpResponse:
        """A miss: wait for whoever already fetches this key, or fetch it (holding its lease)."""
        if self._backoff.is_open():  # Cognito failed moments ago
            return self._backed_off(ask, fallback, self._backoff.until)
        if not ask.proven:  # a budget this container knows is spent: no lease, no wait
            self._budget.refuse_if_spent(ask.request, ask.key)
        with self._flight.miss(ask.request, ask.key, fallback, ask.deadline) as turn:
            found = turn.found
            if isinstance(found, UpstreamResponse):
                return self._relay_remembered(found) if turn.from_store else relay_reply(found)
            if found is not None:
                if turn.from_store:
                    self._cache.keep_in_memory(ask.key, found)
                return self._serve(found)
            ask.proven = ask.proven or turn.proven
            if turn.backoff_until is not None:  # the key's holder backs off: so does everyone
                return self._backed_off(ask, turn.fallback, turn.backoff_until)
            if turn.lease is Lease.TAKEN:  # the holder is still at it: do not add to its load
                return self._stale_or_unavailable(ask, turn.fallback, self._clock() + 1)
            if not ask.proven:
                self._budget.spend(ask.request, ask.key, ask.deadline)
            return self._fetch(ask, turn, turn.fallback)

    # ------------------------------------------------------------------ Cognito

    def _fetch(
        self,
        ask: _Ask,
        turn: Turn,
        fallback: CachedToken | None,
        *,
        reason: str = accounting.MISS,
    ) -> HttpResponse:
        """Call Cognito and keep its answer, or serve ``fallback`` (stale-if-error)."""
        issued_at = self._clock()  # before the call: the token's life is counted conservatively
        request = ask.request
        try:
            upstream = accounting.call_cognito(
                self._cognito,
                request,
                ask.deadline,
                reason=reason,
                key=ask.key,
                client_fp=self._keys.fingerprint(request.client_id),
                clock=self._clock,
            )
        except COGNITO_FAILURES as exc:
            until = self._backoff.failed(exc)
            if turn.lease is Lease.ACQUIRED and turn.proven:
                turn.keep_until = until  # the whole fleet leaves this key alone until then
            ask.proven = turn.proven  # whether this turn's item confirmed the client id
            log = {**self._who(ask), "error": type(exc).__name__}
            logger.warning("Cognito gave no usable answer", extra=log)
            return self._stale_or_unavailable(ask, fallback, until)
        self._backoff.succeeded()
        return self._answer(ask, upstream, issued_at, turn)

    def _answer(
        self, ask: _Ask, upstream: UpstreamResponse, issued_at: float, turn: Turn
    ) -> HttpResponse:
        """Keep a usable token (in L1 and DynamoDB) or a negative answer (in L1 only); relay
        everything else."""
        token = self._policy.token_from(upstream, issued_at)
        if token is not None:
            turn.stored = self._cache.put_token(ask.request, ask.key, token, ask.deadline)
            return self._serve(token)
        log = {**self._who(ask, proven=turn.proven), "status": upstream.status}
        if is_negative_answer(upstream) and self._settings.negative_cache_seconds > 0:
            logger.info("remembering a negative answer for this exact key", extra=log)
            until = self._clock() + self._settings.negative_cache_seconds
            self._cache.put_negative(ask.key, upstream, until)
        else:
            logger.info("relaying an uncacheable Cognito answer", extra=log)
        return relay_reply(upstream)

    # ------------------------------------------------------------------ stale-if-error

    def _backed_off(self, ask: _Ask, fallback: CachedToken | None, until: float) -> HttpResponse:
        """A miss answered without calling Cognito, because it failed moments ago."""
        self._count(UPSTREAM_BACKED_OFF)
        return self._stale_or_unavailable(ask, fallback, until)

    def _stale_or_unavailable(
        self, ask: _Ask, fallback: CachedToken | None, retry_at: float
    ) -> HttpResponse:
        """A still valid token, or 503 with a Retry-After until ``retry_at``."""
        now = self._clock()
        best = longest_valid((fallback, self._cache.token_in_memory(ask.key)), now)
        if best is not None:
            return self._serve(best, STALE_SERVED)
        retry_after = max(1, math.ceil(retry_at - now))
        logger.warning(
            "no valid token to serve while Cognito cannot be asked",
            extra={**self._who(ask), "retry_after_seconds": retry_after},
        )
        raise TemporarilyUnavailable(UNAVAILABLE_DESCRIPTION, retry_after=retry_after)

    # ------------------------------------------------------------------ answers

    def _who(self, ask: _Ask, *, proven: bool | None = None) -> dict[str, str]:
        """Log fields naming the request's client (its client id only once proven)."""
        confirmed = ask.proven if proven is None else proven
        return self._keys.log_fields(ask.request.client_id, ask.key, proven=confirmed)

    def _serve(self, token: CachedToken, metric: str | None = None) -> HttpResponse:
        if metric is not None:
            self._count(metric)
        return token_reply(token.response, math.floor(token.expires_at - self._clock()))

    def _relay_remembered(self, negative: UpstreamResponse) -> HttpResponse:
        self._count(NEGATIVE_HIT)
        return relay_reply(negative)

    def _count(self, name: str) -> None:
        self._metrics.add_metric(name, "Count", 1)
