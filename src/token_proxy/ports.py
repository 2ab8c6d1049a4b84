"""The token proxy's ports: what the cache flow needs from the outside world, as protocols.

Only the type checker reads them: every module imports this one under ``TYPE_CHECKING``, so the
protocols cost a cold start nothing (``tests/unit/test_module_graph.py`` checks that importing
the handler does not load it).

The adapters implement them - :class:`~token_proxy.store.DynamoTokenStore` (DynamoDB: its
token items, leases and counters, each a port of its own so that each part of the flow
names only what it uses),
:class:`~token_proxy.cognito_client.CognitoTokenClient` (Cognito's token endpoint),
:class:`~token_proxy.origin_verify.OriginVerifySecret` (Secrets Manager), Powertools
``Metrics`` - and the tests pass the fakes in ``tests/fakes/``. Each adapter turns its own
failures into one of the exceptions in :mod:`token_proxy.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from function_setup.metrics import MetricsSink
from token_proxy.deadline import Deadline
from token_proxy.model import (
    Deletion,
    HttpResponse,
    LeaseAttempt,
    StoredItem,
    TokenRequest,
    UpstreamResponse,
)

__all__ = [
    "CacheAdmin",
    "CognitoClient",
    "CounterStore",
    "LeaseStore",
    "MetricsSink",
    "OriginSecretSource",
    "TokenHandler",
    "TokenItemStore",
    "TokenStore",
    "UpstreamTrace",
]


class TokenItemStore(Protocol):
    """The shared cache table's token items: every failure is StoreUnavailable."""

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None: ...

    def put_token(
        self,
        key: str,
        *,
        blob: bytes,
        client_id: str,
        scope: str,
        issued_at: float,
        expires_at: float,
        keep_until: float,
        now: float,
    ) -> None: ...

    def delete_client_items(
        self, client_id: str, *, should_stop: Callable[[], bool]
    ) -> Deletion: ...


class LeaseStore(Protocol):
    """Each key's lease in the shared cache table: every failure is StoreUnavailable, except
    in :meth:`release_lease`, which never fails (a lease left behind expires)."""

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> LeaseAttempt: ...

    def release_lease(self, key: str, *, owner: str, delete_item: bool) -> None: ...

    def back_off(self, key: str, *, owner: str, until: float) -> bool: ...


class CounterStore(Protocol):
    """The budget's counters in the shared cache table: every failure is StoreUnavailable."""

    def count_call(self, counter: str, *, window: int, limit: int, expires_at: float) -> bool: ...


class TokenStore(TokenItemStore, LeaseStore, CounterStore, Protocol):
    """The shared cache table, one item per cache key (and per budget counter): all three."""


class CognitoClient(Protocol):
    """Cognito's token endpoint. Its answer is final (a token, or an error to relay): it
    retries on its own, within a bound and the request's deadline, and raises
    UpstreamUnavailable past it, or OriginSecretUnavailable when it has no origin-verify value
    to send."""

    def fetch(self, request: TokenRequest, deadline: Deadline) -> UpstreamResponse: ...


class OriginSecretSource(Protocol):
    """Where the Cognito client gets the ``x-origin-verify`` value. A read of Secrets Manager
    is made only while ``deadline`` (when given) still allows one."""

    def get(self, deadline: Deadline | None = None) -> str: ...

    def refresh(self, deadline: Deadline | None = None) -> str: ...


class UpstreamTrace(Protocol):
    """Records each HTTP attempt of the Cognito client (X-Ray subsegments when SDK tracing is
    on: :class:`~token_proxy.upstream_trace.XRayAttempts`); what ``attempt`` yields takes the
    answer's status."""

    def attempt(self, method: str, url: str) -> AbstractContextManager[Callable[[int], None]]: ...


class TokenHandler(Protocol):
    """What the handler needs of the token service (:mod:`token_proxy.app`)."""

    def handle(
        self, request: TokenRequest, *, remaining_seconds: float | None = None
    ) -> HttpResponse: ...

    def fingerprint(self, client_id: str) -> str: ...


class CacheAdmin(Protocol):
    """What an operator's invalidation needs of the token service (:mod:`token_proxy.admin`)."""

    def invalidate_client(
        self, client_id: str, *, remaining_seconds: float | None = None
    ) -> Deletion: ...

    def fingerprint(self, client_id: str) -> str: ...
