"""Backing off a failing Cognito: how long, after a failure, nobody here asks it again.

When Cognito gives no usable answer (429, 5xx or timeouts after the client's bounded retries),
this container calls it for no key until the back-off window ends: a per-container breaker,
for misses and stale tokens alike. The window is Cognito's ``Retry-After`` (at least 1 s, at
most ``max_backoff_seconds``), or ``lease_seconds`` when Cognito did not say. The service also
keeps the failed key's lease for the same window (:mod:`token_proxy.single_flight`), so the
whole fleet leaves that key alone as long, and clients are told a ``Retry-After`` that
reflects it.

A request that ran out of time before any attempt, or had no origin value to send, is not
Cognito failing: nothing opens, and the client may retry in a second.
"""

from __future__ import annotations

from collections.abc import Callable

from token_proxy.errors import UpstreamUnavailable


class UpstreamBackoff:
    """This container's breaker for Cognito calls."""

    __slots__ = ("_clock", "_lease_seconds", "_max_seconds", "until")

    def __init__(
        self, *, lease_seconds: float, max_backoff_seconds: float, clock: Callable[[], float]
    ) -> None:
        self._lease_seconds = lease_seconds
        self._max_seconds = max_backoff_seconds
        self._clock = clock
        #: Until then (on the clock) this container calls Cognito for no key.
        self.until = 0.0

    def is_open(self) -> bool:
        """Whether Cognito failed moments ago (no call is made until :attr:`until`)."""
        return self._clock() < self.until

    def failed(self, exc: Exception) -> float:
        """Open the breaker after Cognito gave no usable answer (``exc``); returns until when
        asking again is worth it, for this key and, when Cognito itself failed, any key."""
        now = self._clock()
        if not isinstance(exc, UpstreamUnavailable) or not exc.tried:
            return now + 1
        if exc.retry_after is None:
            window = self._lease_seconds
        else:
            window = min(max(exc.retry_after, 1.0), self._max_seconds)
        until = now + window
        self.until = max(self.until, until)
        return until

    def succeeded(self) -> None:
        """Cognito answered: close the breaker."""
        self.until = 0.0
