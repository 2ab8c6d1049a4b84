"""The freshness policy: how long a cached token is served, and when it is renewed.

Pure functions of a token's times and the clock, no I/O. All margins are proportional to the
token's own lifetime (Cognito lets every app client choose 5 minutes to 24 hours):

- ``FRESH`` before ``refresh_at`` (``refresh_ratio`` of the lifetime, 75% by default, as AWS
  advises): served.
- ``REFRESH`` after that while more than ``min_remaining_ratio`` of the lifetime is left:
  served, and the one request that wins the key's lease fetches a new token.
- ``LATE`` with less left: too little life to hand out normally; a miss, but still worth
  serving if Cognito cannot be reached (stale-if-error).
- ``EXPIRED`` with less than one whole second left: never served.

A token's times come from Cognito's answer (:meth:`FreshnessPolicy.token_from`), counted from
the moment before the call and from the whole second, as Cognito truncates ``iat``, so the
``expires_in`` the proxy reports never claims more life than the token's ``exp`` allows. The
only other answers worth remembering are Cognito's refusals of the exact credentials and
parameters (``invalid_client``, ``invalid_scope``, ``unauthorized_client`` ...:
:func:`is_negative_answer`), for a short time under their exact key; everything else is relayed
and forgotten.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from token_proxy.model import CachedToken, UpstreamResponse

#: Below this many seconds of life left a token is expired (``expires_in`` would be 0).
MIN_SERVABLE_SECONDS = 1.0
#: Cognito's statuses for an answer about the credentials themselves (RFC 6749 section 5.2).
_NEGATIVE_STATUSES = (400, 401)


class Freshness(enum.Enum):
    FRESH = "fresh"  # before refresh_at: serve
    REFRESH = "refresh"  # serve; one request (the lease winner) refreshes
    LATE = "late"  # too little life left to hand out normally: a miss, kept for stale-if-error
    EXPIRED = "expired"  # less than one whole second left: never served


def is_expired(token: CachedToken, now: float) -> bool:
    """Whether ``token`` has less than one whole second left (whatever the ratios)."""
    return token.expires_at - now < MIN_SERVABLE_SECONDS


def longest_valid(tokens: Iterable[CachedToken | None], now: float) -> CachedToken | None:
    """The longest-lived of ``tokens`` that is not expired: what stale-if-error may serve."""
    valid = [t for t in tokens if t is not None and not is_expired(t, now)]
    return max(valid, key=lambda t: t.expires_at) if valid else None


class FreshnessPolicy(NamedTuple):
    """The two ratios of the lifetime that decide what a cached token is good for."""

    refresh_ratio: float = 0.75
    min_remaining_ratio: float = 0.10

    def state(self, token: CachedToken, now: float) -> Freshness:
        if is_expired(token, now):
            return Freshness.EXPIRED
        if now < token.refresh_at:
            return Freshness.FRESH
        if token.expires_at - now > self.min_remaining_ratio * token.lifetime:
            return Freshness.REFRESH
        return Freshness.LATE

    def usable(self, token: CachedToken, now: float) -> bool:
        """Whether ``token`` may be served as an answer (fresh, or due for a refresh)."""
        return self.state(token, now) in (Freshness.FRESH, Freshness.REFRESH)

    def token_from(self, upstream: UpstreamResponse, issued_at: float) -> CachedToken | None:
        """The cacheable token in Cognito's answer, asked for at ``issued_at``: a 200 JSON
        object with an ``access_token`` and a positive integer ``expires_in``; else None."""
        body = json_object(upstream) if upstream.status == 200 else None
        if body is None:
            return None
        access_token = body.get("access_token")
        expires_in = body.get("expires_in")
        if not isinstance(access_token, str) or not access_token:
            return None
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            return None
        return CachedToken(
            response=body,
            issued_at=issued_at,
            # Cognito truncates iat to whole seconds: so does the lifetime counted here, so
            # that expires_in never claims more than the token's exp allows.
            expires_at=math.floor(issued_at) + expires_in,
            refresh_at=math.floor(issued_at) + self.refresh_ratio * expires_in,
        )


def json_object(upstream: UpstreamResponse) -> dict[str, Any] | None:
    """Cognito's answer as a JSON object, or None when it is not one."""
    try:
        body = upstream.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def is_negative_answer(upstream: UpstreamResponse) -> bool:
    """Whether Cognito refused this exact request (RFC 6749 section 5.2: a 400 or 401 with an
    ``error`` code, such as ``invalid_client``, ``invalid_scope`` or ``unauthorized_client``):
    the same request would get the same answer for a while, so it is worth remembering, for a
    short time, under its key. Throttling (429), WAF's 403 and 5xx are not answers about the
    request."""
    if upstream.status not in _NEGATIVE_STATUSES:
        return False
    body = json_object(upstream)
    return body is not None and isinstance(body.get("error"), str)
