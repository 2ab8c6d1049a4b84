"""What the single flight tells a request: its turn at a key (:mod:`token_proxy.single_flight`).

A :class:`Turn` says whether the request holds the key's lease (:class:`Lease`), what another
request already produced for the key, what stale-if-error may still serve, and whether the key
is proven; while the request holds the lease, the service writes on it what becomes of the
lease (stored, or kept as a back-off), and the single flight carries that out when the turn
ends.
"""

from __future__ import annotations

import enum

from token_proxy.model import CachedToken
from token_proxy.token_cache import Cached


class Lease(enum.Enum):
    """The answer to "may I call Cognito for this key?"."""

    ACQUIRED = "acquired"  # this request holds the key's lease until it is done
    TAKEN = "taken"  # another request (a thread here, or another container) holds it
    UNAVAILABLE = "unavailable"  # no table, no time, or DynamoDB failed: go on without one


class Turn:
    """What a request does next, and, when it holds the lease, what becomes of it.

    Read by the service: serve ``found`` (a token or negative answer another request produced;
    ``from_store`` when read from DynamoDB rather than this container's L1); else answer
    without Cognito when ``backoff_until`` is set (the key's holder backs off) or the lease is
    ``TAKEN`` (the wait ran out); else call Cognito, with ``fallback`` as the longest-lived token
    seen that stale-if-error may still serve and ``proven`` when the key once produced a token.

    Set by the service while it holds the lease: ``stored`` (its token was stored, which
    dropped the lease) or ``keep_until`` (Cognito failed: keep the lease as a back-off).
    """

    __slots__ = (
        "backoff_until",
        "fallback",
        "found",
        "from_store",
        "held_record",
        "keep_until",
        "lease",
        "proven",
        "stored",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable: compared by value, never hashed

    def __init__(
        self,
        lease: Lease,
        *,
        found: Cached | None = None,
        from_store: bool = False,
        fallback: CachedToken | None = None,
        proven: bool = False,
        backoff_until: float | None = None,
        held_record: bool = False,
    ) -> None:
        self.lease = lease
        self.found = found
        self.from_store = from_store
        self.fallback = fallback
        self.proven = proven
        self.backoff_until = backoff_until
        self.stored = False
        self.keep_until: float | None = None
        #: The item held a sealed record when the lease was taken (release keeps the item).
        self.held_record = held_record

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is Turn and self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Turn({fields})"
