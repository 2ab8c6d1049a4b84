"""One update of the WAF pattern set: read, decide, write with the read's LockToken.

A step hands over a plan: a function from one read of the set (a
:class:`~rotator.model.PatternSetSnapshot`) to the :class:`Plan` to carry out. The write carries
the LockToken of the read the plan was computed from; when WAF reports a concurrent change
(:class:`~rotator.errors.StaleLockTokenError`), the set - and whatever the plan reads besides,
such as the secret's stages - is read again, the plan recomputed and the write retried after a
jittered backoff, at most ``lock_max_attempts`` writes; then the step fails loudly
(:class:`~rotator.errors.PatternSetConflictError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from function_setup.metrics import MetricsSink
from rotator.errors import PatternSetConflictError, StaleLockTokenError
from rotator.model import (
    ACCEPTED_VALUES,
    LOCK_CONFLICT,
    PATTERN_SET_UPDATED,
    PatternSet,
    PatternSetSnapshot,
    RotationMarker,
    Step,
)

logger = Logger(child=True)

#: Upper bound of one backoff pause between pattern-set write attempts.
MAX_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What a pattern-set update should write (None: leave it as it is) and why."""

    patterns: list[str] | None
    outcome: str
    record_marker: RotationMarker | None = None
    details: dict[str, str] | None = None


class PatternSetUpdate:
    """Carries out plans on the pattern set, retrying on a concurrent change."""

    def __init__(
        self,
        pattern_set: PatternSet,
        *,
        lock_max_attempts: int,
        lock_backoff_seconds: float,
        sleep: Callable[[float], None],
        jitter: Callable[[], float],
        metrics: MetricsSink,
    ) -> None:
        self._pattern_set = pattern_set
        self._lock_max_attempts = lock_max_attempts
        self._lock_backoff_seconds = lock_backoff_seconds
        self._sleep = sleep
        self._jitter = jitter
        self._metrics = metrics

    def apply(self, step: Step, plan: Callable[[PatternSetSnapshot], Plan]) -> tuple[Plan, int]:
        """Read, plan, write with the read's LockToken; on a concurrent change re-read and retry
        with backoff, at most ``lock_max_attempts`` writes. Returns the plan carried out and the
        number of accepted values after it."""
        for attempt in range(1, self._lock_max_attempts + 1):
            snapshot = self._pattern_set.read()
            decided = plan(snapshot)
            if decided.patterns is None:
                self._metrics.add_metric(ACCEPTED_VALUES, MetricUnit.Count, len(snapshot.patterns))
                return decided, len(snapshot.patterns)
            try:
                self._pattern_set.write(decided.patterns, snapshot)
            except StaleLockTokenError:
                self._metrics.add_metric(LOCK_CONFLICT, MetricUnit.Count, 1)
                logger.warning(
                    "pattern set changed concurrently; re-reading",
                    extra={
                        "step": str(step),
                        "attempt": attempt,
                        "max_attempts": self._lock_max_attempts,
                    },
                )
                if attempt < self._lock_max_attempts:
                    self._sleep(self._backoff(attempt))
                continue
            self._metrics.add_metric(PATTERN_SET_UPDATED, MetricUnit.Count, 1)
            self._metrics.add_metric(ACCEPTED_VALUES, MetricUnit.Count, len(decided.patterns))
            return decided, len(decided.patterns)
        raise PatternSetConflictError(
            "the pattern set kept changing concurrently; "
            f"gave up after {self._lock_max_attempts} attempts"
        )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(MAX_BACKOFF_SECONDS, self._lock_backoff_seconds * 2 ** (attempt - 1))
        return float(ceiling * (0.5 + self._jitter() / 2))
