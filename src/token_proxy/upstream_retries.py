"""When the Cognito client tries again, how long it waits first, and when it gives up.

An attempt that failed with 429, a 5xx, a connection error or a timeout is retried after a
capped exponential backoff with full jitter, and never sooner than Cognito's ``Retry-After``
(delay-seconds or an HTTP date: :func:`parse_retry_after`). The client gives up, raising
:class:`~token_proxy.errors.UpstreamUnavailable` with Cognito's last ``Retry-After``, when
Cognito asks for longer than ``max_retry_after``, or when the pause would leave the request's
deadline no time for another attempt (:data:`MIN_ATTEMPT_SECONDS`).

Logs carry attempt numbers, failures (a status or an exception's type) and delays only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, NamedTuple

from aws_lambda_powertools.metrics import MetricUnit

from token_proxy.deadline import Deadline
from token_proxy.errors import UpstreamUnavailable
from token_proxy.telemetry import UPSTREAM_RETRY

if TYPE_CHECKING:
    from token_proxy.ports import MetricsSink


logger = logging.getLogger(__name__)

#: An attempt with less time than this left is not started (it could not get an answer).
MIN_ATTEMPT_SECONDS = 0.2


class Failure(NamedTuple):
    """The last attempt's failure: what it was, Cognito's Retry-After with it (seconds), and the
    exception behind it."""

    failure: str
    retry_after: float | None = None
    cause: Exception | None = None


NO_ATTEMPT = Failure("no attempt")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value (delay-seconds or an HTTP date).

    ``now`` is the current wall-clock time (epoch seconds). Returns ``None`` when the header is
    absent or unparseable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP date means UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def out_of_time(attempts: int, last: Failure) -> UpstreamUnavailable:
    """The error of a request whose deadline leaves no time for another attempt."""
    logger.error(
        "the request's deadline leaves no time for another upstream attempt",
        extra={"attempts": attempts, "last_failure": last.failure},
    )
    error = UpstreamUnavailable(
        f"no time left for a Cognito attempt after {attempts} (last: {last.failure})",
        retry_after=last.retry_after,
        tried=attempts > 0,
    )
    error.__cause__ = last.cause
    return error


class RetryPauses:
    """The pause before each retry: capped exponential backoff with full jitter, at least
    Cognito's Retry-After, within ``max_retry_after`` and the request's deadline."""

    def __init__(
        self,
        *,
        sleep: Callable[[float], None],
        rand: Callable[[], float],
        metrics: MetricsSink,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
    ) -> None:
        self._sleep = sleep
        self._rand = rand
        self._metrics = metrics
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after

    def pause(self, attempt: int, retries: int, last: Failure, deadline: Deadline | None) -> None:
        """Sleep the backoff (at least Cognito's Retry-After) before the next attempt, or give
        up (UpstreamUnavailable) when Cognito asks for longer than ``max_retry_after`` or the
        pause would leave no time for another attempt."""
        retry_after = last.retry_after
        if retry_after is not None and retry_after > self.max_retry_after:
            logger.error(
                "upstream asked to retry later than allowed; giving up",
                extra={
                    "attempts": attempt,
                    "last_failure": last.failure,
                    "retry_after_seconds": retry_after,
                    "max_retry_after_seconds": self.max_retry_after,
                },
            )
            raise UpstreamUnavailable(
                f"Cognito asked to retry after {retry_after:.0f} s, more than the "
                f"{self.max_retry_after:g} s allowed (last: {last.failure})",
                retry_after=retry_after,
            ) from last.cause
        delay = self._rand() * min(self._backoff_cap, self._backoff_base * 2**retries)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if deadline is not None and not deadline.allows(delay + MIN_ATTEMPT_SECONDS):
            raise out_of_time(attempt, last)
        self._metrics.add_metric(UPSTREAM_RETRY, MetricUnit.Count, 1)
        logger.warning(
            "upstream attempt failed; retrying",
            extra={"attempt": attempt, "failure": last.failure, "delay_seconds": round(delay, 3)},
        )
        self._sleep(delay)
