"""5. Memory: resident set growth while ``keys`` distinct keys go through one service.

Runs in a fresh worker process (so nothing else the benchmark did is in its heap). The service
is wired as in the function, with its L1 bounded by ``l1_max_entries``; the issuer is an
in-process stand-in handing out tokens of a Cognito access token's size, and there is no store
(DynamoDB's memory is not the container's). RSS is read from /proc/self/status.
"""

from __future__ import annotations

import base64
import gc
import json
import resource
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from token_proxy.cache_key import CacheKeys
from token_proxy.deadline import Deadline
from token_proxy.l1 import TokenL1
from token_proxy.model import TokenRequest, UpstreamResponse
from token_proxy.settings import Settings
from token_proxy.wiring import build_token_service

STATUS = Path("/proc/self/status")


def rss_kib() -> int:
    """This process's resident set size in KiB (VmRSS; elsewhere than Linux, the peak RSS)."""
    if not STATUS.exists():
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # macOS counts bytes
    for line in STATUS.read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


class TokenMint:
    """Hands out a new token the size of a Cognito RS256 access token per call; keeps nothing."""

    def __init__(self, lifetime: int = 3600) -> None:
        self._lifetime = lifetime
        self.calls = 0

    def fetch(self, request: TokenRequest, deadline: Deadline | None = None) -> UpstreamResponse:
        self.calls += 1
        claims = {
            "sub": request.client_id,
            "token_use": "access",
            "scope": request.scope,
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_BenchPool",
            "version": 2,
            "jti": secrets.token_hex(16),
            "client_id": request.client_id,
        }
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        signature = base64.urlsafe_b64encode(secrets.token_bytes(256)).rstrip(b"=").decode()
        token = f"eyJraWQiOiJiZW5jaCIsImFsZyI6IlJTMjU2In0.{payload}.{signature}"
        body = {"access_token": token, "expires_in": self._lifetime, "token_type": "Bearer"}
        return UpstreamResponse(200, json.dumps(body).encode(), "application/json")


def _request(index: int) -> TokenRequest:
    return TokenRequest(
        client_id=f"bench-memory-{index:06d}",
        client_secret=f"bench-memory-secret-{index:06d}-0123456789abcdef",
        scopes=("bench-api/read",),
    )


def measure(settings: Settings, keys: int, checkpoints: int = 10) -> dict[str, Any]:
    """Send ``keys`` distinct keys through a service; RSS and L1 size along the way."""
    l1 = TokenL1(settings.l1_max_entries, max_age_seconds=settings.l1_max_age_seconds)
    mint = TokenMint()
    # Every key here is new: the budget of unproven credentials (which would refuse most of
    # them within a minute) is lifted, as it has nothing to do with memory.
    unlimited = replace(
        settings, unproven_calls_per_minute=10**9, unproven_calls_per_client_per_minute=10**9
    )
    service = build_token_service(
        unlimited, store=None, cognito=mint, l1=l1, keys=CacheKeys.ephemeral()
    )
    # One warm-up request, so imports and first-use allocations are in the baseline.
    service.handle(_request(keys))
    gc.collect()
    baseline = rss_kib()
    step = max(1, keys // checkpoints)
    samples: list[dict[str, int]] = []
    for index in range(keys):
        service.handle(_request(index))
        if (index + 1) % step == 0 or index + 1 == keys:
            samples.append(
                {"keys": index + 1, "rss_growth_kib": rss_kib() - baseline, "l1_entries": len(l1)}
            )
    gc.collect()
    final = rss_kib()
    full = next((s for s in samples if s["l1_entries"] >= settings.l1_max_entries), samples[-1])
    return {
        "keys": keys,
        "l1_max_entries": settings.l1_max_entries,
        "l1_entries_at_end": len(l1),
        "upstream_calls": mint.calls,
        "rss_baseline_kib": baseline,
        "rss_growth_kib": final - baseline,
        "rss_growth_after_l1_full_kib": final - baseline - full["rss_growth_kib"],
        "rss_growth_per_l1_entry_bytes": round(
            full["rss_growth_kib"] * 1024 / max(1, full["l1_entries"])
        ),
        "samples": samples,
    }
