"""The origin-verify secret: read from Secrets Manager, kept in memory for a short max age.

The proxy sends this value as ``x-origin-verify`` on every call to Cognito; the web ACL on the
user pool blocks client_credentials requests without an accepted value. The value is re-read
when older than ``max_age_seconds`` and on demand after a 403 (:meth:`OriginVerifySecret.refresh`).
When Secrets Manager cannot be read, the last known value keeps being used (the rotator keeps
the previous value accepted for a grace period longer than the max age). A read
(:mod:`token_proxy.secrets_manager`) is made only while the request's deadline still allows its
worst case (``READ_BOUND_SECONDS``, the client's timeouts and attempts); otherwise the last
known value is used as it is.

The value is never logged, put in an exception message or stored anywhere but in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from function_setup.metrics import NullMetrics
from token_proxy.deadline import Deadline
from token_proxy.errors import OriginSecretUnavailable
from token_proxy.secrets_manager import READ_BOUND_SECONDS, SecretReader

if TYPE_CHECKING:
    from token_proxy.ports import MetricsSink


logger = logging.getLogger(__name__)

#: Metric emitted when a read of the secret fails (the last known value may still be served).
ORIGIN_SECRET_ERROR = "OriginSecretError"  # noqa: S105 (a metric name, not a secret)

_NULL_METRICS = NullMetrics()

#: Seconds to wait after a failed re-read before :meth:`OriginVerifySecret.get` tries again.
DEFAULT_FAILURE_BACKOFF_SECONDS = 5.0
#: refresh() re-reads at most this often (a fresh value cannot be fresher).
MIN_REFRESH_INTERVAL_SECONDS = 1.0


class OriginVerifySecret:
    """The origin-verify value, cached in memory for ``max_age_seconds`` (monotonic clock).

    Safe to share between threads. This object owns the max age, on its injectable clock; every
    read asks Secrets Manager (through ``reader``).
    """

    def __init__(
        self,
        secret_arn: str,
        *,
        max_age_seconds: float,
        reader: SecretReader | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: MetricsSink = _NULL_METRICS,
        failure_backoff_seconds: float = DEFAULT_FAILURE_BACKOFF_SECONDS,
    ) -> None:
        if max_age_seconds < 0:
            raise ValueError("max_age_seconds must be >= 0")
        if failure_backoff_seconds < 0:
            raise ValueError("failure_backoff_seconds must be >= 0")
        self._secret_arn = secret_arn
        self._max_age = float(max_age_seconds)
        self._reader = reader if reader is not None else SecretReader()
        self._clock = clock
        self._metrics = metrics
        self._failure_backoff = float(failure_backoff_seconds)
        self._lock = threading.Lock()
        self._value: str | None = None
        self._read_at = 0.0  # clock time of the last successful read
        self._retry_at = 0.0  # after a failed re-read: no new attempt from get() before this
        self._refreshed_at = -MIN_REFRESH_INTERVAL_SECONDS  # clock time of the last refresh()

    def __repr__(self) -> str:
        return (
            f"OriginVerifySecret(secret_arn={self._secret_arn!r}, max_age_seconds={self._max_age})"
        )

    def get(self, deadline: Deadline | None = None) -> str:
        """The value, re-read when older than the max age (and the deadline allows a read).

        Raises :class:`OriginSecretUnavailable` only when no value has ever been read.
        """
        with self._lock:
            now = self._clock()
            if self._value is not None and (
                now - self._read_at < self._max_age
                or now < self._retry_at
                or not _time_for_a_read(deadline)
            ):
                return self._value
            if not _time_for_a_read(deadline):
                raise OriginSecretUnavailable("no time left to read the origin-verify secret")
            return self._read(now, reason="max_age")

    def refresh(self, deadline: Deadline | None = None) -> str:
        """Re-read the value now (after Cognito/WAF answered 403), ignoring the max age.

        Forced re-reads happen at most once per ``MIN_REFRESH_INTERVAL_SECONDS``: a caller
        within that interval of the previous one gets the value that re-read fetched, so a web
        ACL that keeps answering 403 does not turn every token request into a Secrets Manager
        call. On failure the last known value is returned; with none, raises
        :class:`OriginSecretUnavailable`.
        """
        with self._lock:
            now = self._clock()
            if self._value is not None and (
                now - self._refreshed_at < MIN_REFRESH_INTERVAL_SECONDS
                or not _time_for_a_read(deadline)
            ):
                return self._value
            if not _time_for_a_read(deadline):
                raise OriginSecretUnavailable("no time left to read the origin-verify secret")
            self._refreshed_at = now
            return self._read(now, reason="refresh")

    def _read(self, now: float, *, reason: str) -> str:
        try:
            value = self._fetch()
        except Exception as exc:  # any failure of the provider or the SDK
            self._metrics.add_metric(ORIGIN_SECRET_ERROR, MetricUnit.Count, 1)
            if self._value is None:
                logger.error(
                    "origin secret unavailable",
                    extra={"reason": reason, "error_type": type(exc).__name__},
                )
                raise OriginSecretUnavailable(
                    f"origin-verify secret could not be read ({type(exc).__name__})"
                ) from exc
            self._retry_at = now + self._failure_backoff
            logger.warning(
                "origin secret re-read failed; keeping the last known value",
                extra={
                    "reason": reason,
                    "error_type": type(exc).__name__,
                    "value_age_seconds": round(now - self._read_at, 3),
                    "retry_in_seconds": self._failure_backoff,
                },
            )
            return self._value
        changed = self._value is not None and value != self._value
        self._value = value
        self._read_at = now
        self._retry_at = 0.0
        logger.debug("origin secret read", extra={"reason": reason, "changed": changed})
        return value

    def _fetch(self) -> str:
        value = self._reader.current(self._secret_arn)
        if not value:  # an empty string is not a usable header value
            raise TypeError("origin-verify secret is not a non-empty SecretString")
        return value


def _time_for_a_read(deadline: Deadline | None) -> bool:
    return deadline is None or deadline.allows(READ_BOUND_SECONDS)
