"""The budget of Cognito calls for unproven credentials, across the fleet.

A key (client id, secret, scopes, parameters) that has never produced a token is *unproven*:
a random secret, a random client id, a random ``resource`` value, or a legitimate client's
first request. Cognito's client-credentials quota is per account and Region and shared with
``GetClientToken`` (150 requests per second in the published quota table,
https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html#category_operations):
when anyone can spend it with made-up credentials, every cold client of every service is
refused. So calls for unproven keys are counted per time window (:data:`WINDOW_SECONDS`),

- per client id: at most ``per_client`` calls in a window, counted in one of
  :data:`CLIENT_BUCKETS` counters chosen by a keyed hash of the client id (a bounded number of
  counters, whatever client ids callers make up; clients sharing a bucket share its limit, and
  nobody without the server key can choose a bucket);
- in total: at most ``total`` calls in a window.

The per-client counter is spent first, so one client id flooding with random secrets spends
its own budget, not everyone's. The counters are DynamoDB items updated with conditional atomic
``ADD`` (:mod:`token_proxy.store.counters`), exact across the fleet; a
container that saw a counter run out remembers it until the window ends and refuses without
asking DynamoDB again. When DynamoDB cannot be asked (unavailable, or no time left), the
container counts on its own with the same limits (:class:`_LocalCounters`).

Proven keys, and refreshes of cached tokens, never consult the budget. A refusal is 429
``temporarily_unavailable`` with a ``Retry-After`` until the window renews
(:class:`~token_proxy.errors.UnprovenBudgetSpent`), counted (``UnprovenCallRefused``) and
logged with the client id's keyed fingerprint only: an unproven client id may be a secret sent
in the wrong field.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from token_proxy.cache_key import CacheKeys
from token_proxy.deadline import Deadline
from token_proxy.errors import StoreUnavailable, UnprovenBudgetSpent
from token_proxy.model import TokenRequest
from token_proxy.telemetry import STORE_ERROR, UNPROVEN_ADMITTED, UNPROVEN_REFUSED

if TYPE_CHECKING:
    from token_proxy.ports import CounterStore, MetricsSink


logger = logging.getLogger(__name__)

#: The budget's time window (fixed windows of the epoch clock).
WINDOW_SECONDS = 60
#: Per-client counters: a client id counts against one of these, by a keyed hash.
CLIENT_BUCKETS = 256
TOTAL_COUNTER = "budget#total"
CLIENT_COUNTER_PREFIX = "budget#client#"
BUDGET_DESCRIPTION = (
    "too many token requests with credentials that have not obtained a token yet; retry later"
)


class Admission(NamedTuple):
    """Whether an unproven key may call Cognito now; if not, which limit ran out and how many
    seconds until the window (and the budget) renews."""

    admitted: bool
    limit: str = ""  # "client" or "total" when refused
    retry_after: int = 0


class UnprovenBudget:
    """Admits or refuses Cognito calls for unproven keys (``total`` 0 refuses them all)."""

    def __init__(
        self,
        store: CounterStore | None,
        keys: CacheKeys,
        *,
        per_client: int,
        total: int,
        metrics: MetricsSink,
        clock: Callable[[], float],
        store_call_seconds: float = 0.0,
    ) -> None:
        self._store = store
        self._keys = keys
        self._per_client = per_client
        self._total = total
        self._metrics = metrics
        self._clock = clock
        self._store_call_seconds = store_call_seconds
        self._lock = threading.Lock()
        #: counter -> window in which this container saw it run out
        self._spent: dict[str, int] = {}
        self._local = _LocalCounters()

    def spend(self, request: TokenRequest, key: str, deadline: Deadline) -> None:
        """Count a Cognito call for the unproven key ``key`` of ``request``, or refuse it
        (raises UnprovenBudgetSpent)."""
        admission = self.admit(request.client_id, deadline)
        if not admission.admitted:
            self._refuse(request, key, admission)
        self._metrics.add_metric(UNPROVEN_ADMITTED, "Count", 1)

    def refuse_if_spent(self, request: TokenRequest, key: str) -> None:
        """Refuse at once (raises UnprovenBudgetSpent) when this container already knows that a
        budget of ``request``'s client id is spent in this window: no lease, no wait."""
        spent = self.known_spent(request.client_id)
        if spent is not None:
            self._refuse(request, key, spent)

    def _refuse(self, request: TokenRequest, key: str, admission: Admission) -> NoReturn:
        self._metrics.add_metric(UNPROVEN_REFUSED, "Count", 1)
        logger.info(
            "the budget of Cognito calls for unproven credentials is spent",
            extra={
                **self._keys.log_fields(request.client_id, key, proven=False),
                "limit": admission.limit,
                "retry_after_seconds": admission.retry_after,
            },
        )
        raise UnprovenBudgetSpent(BUDGET_DESCRIPTION, retry_after=admission.retry_after)

    def admit(self, client_id: str, deadline: Deadline) -> Admission:
        """Count one Cognito call for an unproven key of ``client_id``, or refuse it."""
        window, retry_after = self._window()
        for counter, limit, name in self._counters(client_id):
            if not self._count(counter, window, limit, deadline):
                return Admission(False, name, retry_after)
        return Admission(True)

    def known_spent(self, client_id: str) -> Admission | None:
        """The refusal this container already knows of (a counter of ``client_id`` ran out in
        this window), without counting or asking DynamoDB; None when a call may be tried."""
        window, retry_after = self._window()
        with self._lock:
            for counter, limit, name in self._counters(client_id):
                if limit <= 0 or self._spent.get(counter) == window:
                    return Admission(False, name, retry_after)
        return None

    def _window(self) -> tuple[int, int]:
        """The current window, and the seconds until the next one starts."""
        now = self._clock()
        window = math.floor(now / WINDOW_SECONDS)
        return window, max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))

    def _counters(self, client_id: str) -> tuple[tuple[str, int, str], ...]:
        bucket = f"{CLIENT_COUNTER_PREFIX}{self._keys.bucket(client_id, CLIENT_BUCKETS)}"
        return ((bucket, self._per_client, "client"), (TOTAL_COUNTER, self._total, "total"))

    def _count(self, counter: str, window: int, limit: int, deadline: Deadline) -> bool:
        with self._lock:
            if self._spent.get(counter) == window:
                return False
        if limit <= 0:
            return False
        expires_at = (window + 1) * WINDOW_SECONDS
        counted: bool | None = None
        if self._store is not None and deadline.allows(self._store_call_seconds):
            try:
                counted = self._store.count_call(
                    counter, window=window, limit=limit, expires_at=expires_at
                )
            except StoreUnavailable:
                self._metrics.add_metric(STORE_ERROR, "Count", 1)
        if counted is None:  # DynamoDB could not be asked: this container counts alone
            counted = self._local.count(counter, window, limit)
        if not counted:
            with self._lock:
                self._spent = {c: w for c, w in self._spent.items() if w == window}
                self._spent[counter] = window
        return counted


class _LocalCounters:
    """Calls counted in this container alone, for when DynamoDB cannot be asked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._calls: dict[str, int] = {}

    def count(self, counter: str, window: int, limit: int) -> bool:
        with self._lock:
            if window != self._window:
                self._window, self._calls = window, {}
            calls = self._calls.get(counter, 0)
            if calls >= limit:
                return False
            self._calls[counter] = calls + 1
            return True
