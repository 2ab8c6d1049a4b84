"""OAuth 2.0 errors (RFC 6749 section 5.2) and the domain exceptions adapters raise.

This is the one place that turns an error into an HTTP response body.
"""

from __future__ import annotations

import json

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
    """The token service upstream could not answer and no valid cached token exists."""

    status = 503
    error = "temporarily_unavailable"

    def __init__(self, description: str, *, retry_after: int = 1) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)})


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
    """Cognito did not give a usable answer within the retry bound (429, 5xx, timeouts)."""


class OriginSecretUnavailable(Exception):
    """The origin-verify secret could not be read and no previous value is known."""


class SealError(Exception):
    """A sealed blob could not be opened (wrong secret, wrong key, or tampered)."""
