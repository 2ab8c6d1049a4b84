"""Per-key locks inside one container, so its threads coalesce on a key without DynamoDB.

The first thread to ask for a key's lock goes on; the others wait for it (up to a timeout) and
then look at what it left in the L1 (:mod:`token_proxy.single_flight`). Entries are
reference-counted and dropped when nobody uses them, so the map holds only the keys being
worked on, however many keys pass through the container.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyLocks:
    """A lock per key being worked on in this container."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[tuple[bool, bool]]:
        """Yield ``(acquired, contended)``; ``timeout`` 0 means do not wait at all."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            acquired = lock.acquire(blocking=False)
            contended = not acquired
            if contended and timeout > 0:
                acquired = lock.acquire(timeout=timeout)
            try:
                yield acquired, contended
            finally:
                if acquired:
                    lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
