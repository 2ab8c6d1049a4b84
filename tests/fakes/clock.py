"""The one fake clock: time that moves only when a test moves it.

The token proxy's pieces take epoch seconds (``clock()``) and a ``sleep``; the rotator's steps
take an aware datetime. One :class:`FakeClock` serves both: call it for epoch seconds, pass
``clock.utc`` where a datetime clock is expected, and ``sleep`` advances it.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: 2023-11-14T22:13:20Z, where the token proxy's tests start.
T0 = 1_700_000_000.0
#: 2030-01-01T12:00:00Z, where the rotator's tests start.
ROTATION_T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """Epoch seconds that move only when told to (sleep advances it and is recorded)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def utc(self) -> datetime:
        """The same moment as an aware UTC datetime (the rotator's clock)."""
        return datetime.fromtimestamp(self.now, UTC)

    def set_utc(self, moment: datetime) -> None:
        self.now = moment.timestamp()
