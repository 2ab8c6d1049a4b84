"""OAuth 2.0 errors (RFC 6749 section 5.2) and the domain exceptions adapters raise.

This is the one place that turns an error into an HTTP response body.
"""

from __future__ import annotations

import json
from typing import ClassVar

from token_proxy.model import HttpResponse

#: Headers every token endpoint response carries (RFC 6749 section 5.1).
NO_STORE_HEADERS = {
    "Content-Type": "application/json;charset=UTF-8",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


class OAuthError(Exception):
    """An error answered to the client as RFC 6749 JSON."""

    status = 400
    error = "invalid_request"
    #: The service counts these answers itself (Cognito unusable, a budget spent); the
    #: handler counts every other refusal by its error.
    counted_by_service: ClassVar[bool] = False

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.extra_headers = dict(headers or {})

    def to_response(self) -> HttpResponse:
        body = json.dumps({"error": self.error, "error_description": self.description})
        return HttpResponse(self.status, body, {**NO_STORE_HEADERS, **self.extra_headers})


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed; 401 with ``WWW-Authenticate: Basic`` if Basic was tried."""

    status = 401
    error = "invalid_client"

    def __init__(self, description: str, *, basic_attempted: bool = False) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="oauth2/token"'} if basic_attempted else None
        super().__init__(description, headers=headers)


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """A requested scope is malformed (RFC 6749 section 3.3 scope-token characters)."""

    error = "invalid_scope"


class MethodNotAllowed(OAuthError):
    status = 405

    def __init__(self, description: str = "the token endpoint accepts POST only") -> None:
        super().__init__(description, headers={"Allow": "POST"})


class NotFound(OAuthError):
    status = 404

    def __init__(self, description: str = "no such endpoint; use POST /oauth2/token") -> None:
        super().__init__(description)


class PayloadTooLarge(OAuthError):
    status = 413


class UnsupportedMediaType(OAuthError):
    status = 415


class TemporarilyUnavailable(OAuthError):
    """Cognito could not answer (or is being left alone after failing) and no valid cached
    token exists; ``Retry-After`` says when asking again is worth it (RFC 9110 section 10.2.3),
    reflecting Cognito's own ``Retry-After`` when it sent one."""

    status = 503
    error = "temporarily_unavailable"
    counted_by_service = True

    def __init__(self, description: str, *, retry_after: int = 1) -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, retry_after))})


class UnprovenBudgetSpent(OAuthError):
    """Credentials that have never produced a token may not call Cognito now: the budget of
    such calls (per client id, or in total) is spent until the current window ends.

    429 Too Many Requests with ``Retry-After`` (RFC 6585 section 4): the refusal is about the
    callers' own traffic, not a failure of the proxy or of Cognito, so it is not a 5xx (the
    5xx alarm keeps meaning "the service failed") and OAuth client libraries back off on it.
    The error code is RFC 6749's ``temporarily_unavailable`` ("temporary overloading"), the one
    registered code that means "ask again later"; the credentials themselves were not checked,
    so neither ``invalid_client`` nor a 401 would be true.
    """

    status = 429
    error = "temporarily_unavailable"
    counted_by_service = True

    def __init__(self, description: str, *, retry_after: int) -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, retry_after))})


class ServerError(OAuthError):
    """The last resort of the handler: something failed that no input should ever cause."""

    status = 500
    error = "server_error"

    def __init__(self, description: str = "the token proxy failed unexpectedly") -> None:
        super().__init__(description)


# Domain exceptions raised by adapters (never shown to clients as such).


class StoreUnavailable(Exception):
    """The DynamoDB cache could not be read or written (the service fails open)."""


class UpstreamUnavailable(Exception):
    """Cognito did not give a usable answer within the retry bound and the request's deadline
    (429, 5xx, timeouts). ``retry_after`` is the wait Cognito asked for last (seconds), if any;
    ``tried`` is False when the deadline left no time for a single attempt (Cognito itself
    did not fail)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, tried: bool = True
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.tried = tried


class OriginSecretUnavailable(Exception):
    """The origin-verify secret could not be read and no previous value is known."""


class CacheKeyUnavailable(Exception):
    """The cache key secret could not be read (the proxy cannot name a cache item without it)."""


class SealError(Exception):
    """A sealed blob could not be opened (wrong secret, wrong key, or tampered)."""
