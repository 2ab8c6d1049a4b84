"""Token endpoint responses: a served token and a relayed Cognito answer.

Errors raised by the proxy itself become responses in :mod:`token_proxy.errors`.
"""

from __future__ import annotations

import json
from typing import Any

from token_proxy.errors import NO_STORE_HEADERS
from token_proxy.model import HttpResponse, UpstreamResponse


def token_reply(response: dict[str, Any], expires_in: int | None) -> HttpResponse:
    """A token response; ``expires_in`` (when known) is the token's real remaining lifetime."""
    body = dict(response)
    if expires_in is not None:
        body["expires_in"] = max(0, int(expires_in))
    return HttpResponse(200, json.dumps(body, separators=(",", ":")), dict(NO_STORE_HEADERS))


def relay_reply(upstream: UpstreamResponse) -> HttpResponse:
    """Cognito's own answer (an error or an uncacheable success), relayed as Cognito sent it."""
    headers = {**NO_STORE_HEADERS, "Content-Type": upstream.content_type or "application/json"}
    return HttpResponse(upstream.status, upstream.body.decode("utf-8", "replace"), headers)
