"""One deadline per request: the time a request may spend before the proxy must answer.

The handler takes it from the Lambda context's remaining time less a margin
(``DEADLINE_MARGIN_SECONDS``, for writing the answer and flushing metrics), so the answer is
always the proxy's own - a still valid token, or 503 ``temporarily_unavailable`` with
``Retry-After`` - and never Lambda's timeout or API Gateway's 5xx. Every wait, retry, backoff
sleep, per-attempt timeout and AWS call of the request spends it:

- a Cognito attempt's connect and read timeouts are cut to what is left, and a retry whose
  backoff would end too late is not made;
- a DynamoDB or Secrets Manager call is made only while its worst case (botocore's timeouts
  times its attempts, :func:`sdk_call_bound`) still fits; otherwise it is skipped as if the
  service were unavailable (the cache fails open, a write is dropped);
- coalescing waits end with it.

It runs on the service's clock (epoch seconds), so tests and the benchmark move it with their
fake clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.config import Config

#: botocore's "standard" retry mode pauses ``random() * 2 ** (n - 1)`` seconds (at most 20) before
#: the n-th retry (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
_SDK_BACKOFF_BASE = 2.0
_SDK_BACKOFF_CAP_SECONDS = 20.0
#: Standard mode's attempts when a config names none.
_SDK_DEFAULT_ATTEMPTS = 3


def sdk_call_bound(config: Config) -> float:
    """The longest one AWS SDK call configured by ``config`` can take: every attempt's connect
    and read timeouts, plus the longest pauses between attempts (botocore's ``retries``:
    ``total_max_attempts``, or ``max_attempts`` retries after the first)."""
    retries: dict[str, Any] = getattr(config, "retries", None) or {}
    if "total_max_attempts" in retries:
        attempts = int(retries["total_max_attempts"])
    elif "max_attempts" in retries:
        attempts = int(retries["max_attempts"]) + 1
    else:
        attempts = _SDK_DEFAULT_ATTEMPTS
    per_attempt = float(getattr(config, "connect_timeout", 60)) + float(
        getattr(config, "read_timeout", 60)
    )
    pauses = sum(
        min(_SDK_BACKOFF_BASE ** (n - 1), _SDK_BACKOFF_CAP_SECONDS) for n in range(1, attempts)
    )
    return attempts * per_attempt + pauses


class Deadline:
    """The moment (on ``clock``) by which a request must be answered."""

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Callable[[], float]) -> None:
        self.at = at
        self._clock = clock

    @classmethod
    def within(cls, seconds: float, clock: Callable[[], float]) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self._clock()

    def allows(self, seconds: float) -> bool:
        """Whether something that may take ``seconds`` still ends in time."""
        return self.remaining() >= seconds

    def bound(self, seconds: float) -> float:
        """``seconds``, cut to what is left (never negative)."""
        return max(0.0, min(seconds, self.remaining()))

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f})"
