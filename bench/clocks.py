"""Clocks the benchmark controls: a simulated one (time moves only when told) and the real one
shifted by an offset (so a burst can happen "at the refresh point" without waiting 45 minutes)."""

from __future__ import annotations

import threading
import time

#: An arbitrary epoch second to start simulated days at (2023-11-14T22:13:20Z).
SIM_EPOCH = 1_700_000_000.0


class SimClock:
    """Epoch seconds that move only through :meth:`advance`, :meth:`set` and :meth:`sleep`."""

    def __init__(self, start: float = SIM_EPOCH) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        """Move to ``when``; never backwards."""
        with self._lock:
            self._now = max(self._now, when)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class OffsetClock:
    """The wall clock plus an offset that only grows; sleeping is real."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
