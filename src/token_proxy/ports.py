"""The token proxy's ports: what the cache flow needs from the outside world, as protocols.

The adapters implement them - :class:`~token_proxy.store.DynamoTokenStore` (DynamoDB),
:class:`~token_proxy.cognito_client.CognitoTokenClient` (Cognito's token endpoint),
:class:`~token_proxy.origin_verify.OriginVerifySecret` (Secrets Manager), Powertools
``Metrics`` - and the tests pass the fakes in ``tests/fakes/``. Each adapter turns its own
failures into one of the exceptions in :mod:`token_proxy.errors`.
"""

from __future__ import annotations

from typing import Protocol

from function_setup.metrics import MetricsSink
from token_proxy.model import StoredItem, TokenRequest, UpstreamResponse

__all__ = ["CognitoClient", "MetricsSink", "OriginSecretSource", "TokenStore"]


class TokenStore(Protocol):
    """The shared cache table, one item per cache key; every failure is StoreUnavailable
    (except :meth:`release_lease`, which never fails: a lease left behind expires)."""

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
        refresh_at: float,
    ) -> None: ...

    def put_negative(self, key: str, *, blob: bytes, client_id: str, until: float) -> None: ...

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> bool: ...

    def release_lease(self, key: str, *, owner: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def delete_client_items(self, client_id: str) -> int: ...


class CognitoClient(Protocol):
    """Cognito's token endpoint. Its answer is final (a token, or an error to relay): it
    retries on its own, within a bound, and raises UpstreamUnavailable past it, or
    OriginSecretUnavailable when it has no origin-verify value to send."""

    def fetch(self, request: TokenRequest) -> UpstreamResponse: ...


class OriginSecretSource(Protocol):
    """Where the Cognito client gets the ``x-origin-verify`` value."""

    def get(self) -> str: ...

    def refresh(self) -> str: ...
