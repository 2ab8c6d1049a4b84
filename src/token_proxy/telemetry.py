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
