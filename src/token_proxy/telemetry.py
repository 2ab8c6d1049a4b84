"""The token proxy's metric names (EMF, in the stack's namespace; the dashboard and alarms in
template.yaml refer to them). The sink they are written to is :mod:`function_setup.metrics`.
"""

from __future__ import annotations

HIT_L1 = "CacheHitL1"
HIT_DYNAMODB = "CacheHitDynamoDB"
MISS = "CacheMiss"
REFRESH_AHEAD = "RefreshAhead"
COALESCED_WAIT = "CoalescedWait"
UPSTREAM_CALL = "UpstreamCall"
UPSTREAM_ERROR = "UpstreamError"
UPSTREAM_LATENCY = "UpstreamLatency"
UPSTREAM_RETRY = "UpstreamRetry"
STALE_SERVED = "StaleServed"
NEGATIVE_HIT = "NegativeCacheHit"
STORE_ERROR = "StoreError"
ORIGIN_REFRESH = "OriginSecretRefresh"
INVALIDATED_ITEMS = "InvalidatedItems"  # items an operator's invalidation deleted
#: Cognito calls for keys that never produced a token: admitted by the budget, or refused (429).
UNPROVEN_ADMITTED = "UnprovenCallAdmitted"
UNPROVEN_REFUSED = "UnprovenCallRefused"
#: Misses answered without calling Cognito because it failed moments ago (this container's
#: breaker is open, or the key's lease holder backs off): a stale token or a 503.
UPSTREAM_BACKED_OFF = "UpstreamBackedOff"
#: Token requests the proxy refused itself (4xx, before any cache or Cognito work), by the
#: RFC 6749 error: broken clients, wrong credential shapes, misrouted human flows.
REFUSED_INVALID_REQUEST = "RefusedInvalidRequest"
REFUSED_INVALID_CLIENT = "RefusedInvalidClient"
REFUSED_UNSUPPORTED_GRANT_TYPE = "RefusedUnsupportedGrantType"
REFUSED_INVALID_SCOPE = "RefusedInvalidScope"
_REFUSED_BY_ERROR = {
    "invalid_request": REFUSED_INVALID_REQUEST,
    "invalid_client": REFUSED_INVALID_CLIENT,
    "unsupported_grant_type": REFUSED_UNSUPPORTED_GRANT_TYPE,
    "invalid_scope": REFUSED_INVALID_SCOPE,
}


def refused_metric(error: str) -> str:
    """The metric counting the proxy's own refusals with the RFC 6749 ``error`` (every error
    the proxy refuses with has its own; the names stay a fixed, small set)."""
    return _REFUSED_BY_ERROR.get(error, REFUSED_INVALID_REQUEST)
