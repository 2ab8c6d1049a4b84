"""Domain types shared by the token proxy's modules.

Nothing here imports boto3, requests or Powertools: these are plain values that every layer
(request parsing, the cache service, the DynamoDB store, the Cognito client) passes around.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

AuthMethod = Literal["basic", "body", "query"]

#: Version of the cache-key derivation. Bump it to orphan every cached item at once.
CACHE_KEY_VERSION = "tp1"


def _length_prefixed(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        out += len(raw).to_bytes(4, "big")
        out += raw
    return bytes(out)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A validated client_credentials token request.

    ``scopes`` is the normalised scope set (sorted, without duplicates; empty when the client
    sent none). ``extras`` holds the other parameters Cognito accepts for this grant and that
    shape the token (``resource``, ``aws_client_metadata``), sorted by name.
    ``basic_authorization`` keeps the client's own ``Authorization`` header value when it
    authenticated with HTTP Basic, so the proxy can forward it unchanged.
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

    def cache_key(self) -> str:
        """A versioned, length-prefixed SHA-256 over everything that shapes the token.

        The client secret is part of the key, so a wrong secret can never address another
        client's cached token, however the credentials were presented.
        """
        parts = [CACHE_KEY_VERSION, self.client_id, self.client_secret, str(len(self.scopes))]
        parts.extend(self.scopes)
        parts.append(str(len(self.extras)))
        for name, value in self.extras:
            parts.extend((name, value))
        return hashlib.sha256(_length_prefixed(*parts)).hexdigest()

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


StoredKind = Literal["token", "negative"]


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One DynamoDB cache item as the store reads it (times are epoch seconds).

    ``blob`` is the sealed token response (or sealed negative answer); it is ``None`` for an
    item that so far holds only a lease. ``expires_at`` of a negative item is its ``until``.
    """

    kind: StoredKind
    blob: bytes | None = field(repr=False)
    issued_at: float
    expires_at: float
    refresh_at: float
    lease_owner: str | None
    lease_until: float | None


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
