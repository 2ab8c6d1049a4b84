"""Domain types shared by the token proxy's modules.

Nothing here imports boto3, urllib3 or Powertools: these are plain values that every layer
(request parsing, the cache service, the DynamoDB store, the Cognito client) passes around.

They are immutable named tuples rather than frozen dataclasses: a dataclass writes and
compiles its methods each time its module is imported (bytecode does not keep them), about a
millisecond per class, which every cold start pays; a named tuple costs a tenth of that and is
as immutable, compares and hashes by value. A field that may hold a secret or a token is left
out of the ``repr``, as the dataclasses' ``field(repr=False)`` did.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

AuthMethod = Literal["basic", "body", "query"]


class TokenRequest(NamedTuple):
    """A validated client_credentials token request.

    ``scopes`` is the normalised scope set (sorted, without duplicates; empty when the client
    sent none). ``extras`` holds the other parameters Cognito accepts for this grant and that
    shape the token (``resource``, ``aws_client_metadata``), sorted by name.
    ``basic_authorization`` keeps the client's own ``Authorization`` header value when it
    authenticated with HTTP Basic, so the proxy forwards exactly the credentials its cache key
    is built from (:mod:`token_proxy.cache_key`).
    """

    client_id: str
    client_secret: str  # not in the repr
    scopes: tuple[str, ...] = ()
    extras: tuple[tuple[str, str], ...] = ()
    auth_method: AuthMethod = "body"
    basic_authorization: str | None = None  # not in the repr

    def __repr__(self) -> str:
        return (
            f"TokenRequest(client_id={self.client_id!r}, scopes={self.scopes!r}, "
            f"extras={self.extras!r}, auth_method={self.auth_method!r})"
        )

    @property
    def scope(self) -> str:
        """The normalised scope string ("" when no scope was requested)."""
        return " ".join(self.scopes)

    def upstream_form(self) -> dict[str, str]:
        """The form fields sent to Cognito (credentials go in the body unless Basic was used)."""
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.auth_method != "basic":
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        if self.scopes:
            form["scope"] = self.scope
        form.update(dict(self.extras))
        return form

    def upstream_headers(self) -> dict[str, str]:
        """Headers carrying the client's credentials upstream (only for Basic)."""
        if self.auth_method == "basic" and self.basic_authorization is not None:
            return {"Authorization": self.basic_authorization}
        return {}


class UpstreamResponse(NamedTuple):
    """What Cognito answered: the final answer after retries (2xx or a non-retryable 4xx)."""

    status: int
    body: bytes  # not in the repr: it may hold a token
    content_type: str = "application/json"

    def __repr__(self) -> str:
        return f"UpstreamResponse(status={self.status!r}, content_type={self.content_type!r})"

    def json(self) -> Any:
        return json.loads(self.body)


class CachedToken(NamedTuple):
    """A token response with the times that drive freshness (epoch seconds, floats)."""

    response: dict[str, Any]  # not in the repr: it holds the token
    issued_at: float
    expires_at: float
    refresh_at: float

    def __repr__(self) -> str:
        return (
            f"CachedToken(issued_at={self.issued_at!r}, expires_at={self.expires_at!r}, "
            f"refresh_at={self.refresh_at!r})"
        )

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    def remaining(self, now: float) -> float:
        return self.expires_at - now


class StoredItem(NamedTuple):
    """One DynamoDB cache item as the store reads it: only what the store itself acts on.

    ``blob`` is the sealed record (a token with its times and client id; ``None`` for an item
    that so far holds only a lease). The lease fields and ``backoff_until`` (epoch seconds) are
    ``None`` when absent or malformed. Nothing else in an item is trusted: the plain attributes
    (``client_id``, ``scope``, ``expires_at``, ``ttl``) are for operators and DynamoDB TTL.
    """

    blob: bytes | None  # not in the repr: a sealed token
    lease_owner: str | None = None
    lease_until: float | None = None
    backoff_until: float | None = None

    def __repr__(self) -> str:
        return (
            f"StoredItem(blob={'<sealed>' if self.blob is not None else None}, "
            f"lease_owner={self.lease_owner!r}, lease_until={self.lease_until!r}, "
            f"backoff_until={self.backoff_until!r})"
        )


class LeaseAttempt(NamedTuple):
    """A conditional lease write's outcome and the item as it was just before (``None`` when
    there was none): the winner's double check, or what the holder left (a back-off)."""

    won: bool
    item: StoredItem | None


class Deletion(NamedTuple):
    """What an invalidation deleted, and whether it got through every item."""

    deleted: int
    complete: bool


class HttpResponse(NamedTuple):
    """A response as the handler returns it, before it becomes an API Gateway result."""

    status: int
    body: str  # not in the repr: it may hold a token
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status!r}, headers={self.headers!r})"

    def to_api_gateway(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": dict(self.headers),
            "body": self.body,
            "isBase64Encoded": False,
        }
