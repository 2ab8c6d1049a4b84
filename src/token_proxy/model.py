"""Domain types shared by the token proxy's modules.

Nothing here imports boto3, requests or Powertools: these are plain values that every layer
(request parsing, the cache service, the DynamoDB store, the Cognito client) passes around.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

AuthMethod = Literal["basic", "body", "query"]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A validated client_credentials token request.

    ``scopes`` is the normalised scope set (sorted, without duplicates; empty when the client
    sent none). ``extras`` holds the other parameters Cognito accepts for this grant and that
    shape the token (``resource``, ``aws_client_metadata``), sorted by name.
    ``basic_authorization`` keeps the client's own ``Authorization`` header value when it
    authenticated with HTTP Basic, so the proxy forwards exactly the credentials its cache key
    is built from (:mod:`token_proxy.cache_key`).
    """

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    extras: tuple[tuple[str, str], ...] = ()
    auth_method: AuthMethod = "body"
    basic_authorization: str | None = field(default=None, repr=False)

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


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """What Cognito answered: the final answer after retries (2xx or a non-retryable 4xx)."""

    status: int
    body: bytes = field(repr=False)
    content_type: str = "application/json"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token response with the times that drive freshness (epoch seconds, floats)."""

    response: dict[str, Any] = field(repr=False)
    issued_at: float
    expires_at: float
    refresh_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    def remaining(self, now: float) -> float:
        return self.expires_at - now


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One DynamoDB cache item as the store reads it: only what the store itself acts on.

    ``blob`` is the sealed record (a token with its times and client id; ``None`` for an item
    that so far holds only a lease). The lease fields and ``backoff_until`` (epoch seconds) are
    ``None`` when absent or malformed. Nothing else in an item is trusted: the plain attributes
    (``client_id``, ``scope``, ``expires_at``, ``ttl``) are for operators and DynamoDB TTL.
    """

    blob: bytes | None = field(repr=False)
    lease_owner: str | None = None
    lease_until: float | None = None
    backoff_until: float | None = None


@dataclass(frozen=True, slots=True)
class LeaseAttempt:
    """A conditional lease write's outcome and the item as it was just before (``None`` when
    there was none): the winner's double check, or what the holder left (a back-off)."""

    won: bool
    item: StoredItem | None


@dataclass(frozen=True, slots=True)
class Deletion:
    """What an invalidation deleted, and whether it got through every item."""

    deleted: int
    complete: bool


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response as the handler returns it, before it becomes an API Gateway result."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_api_gateway(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": dict(self.headers),
            "body": self.body,
            "isBase64Encoded": False,
        }
