"""Reading what a token response says about itself, without verifying anything."""

from __future__ import annotations

import base64
import json
from typing import Any


def response_fields(body: bytes | str) -> tuple[str, int]:
    """(access_token, expires_in) of a successful token response body."""
    parsed = json.loads(body)
    if not isinstance(parsed, dict):
        raise ValueError("a token response must be a JSON object")
    token, expires_in = parsed.get("access_token"), parsed.get("expires_in")
    if not isinstance(token, str) or not isinstance(expires_in, int):
        raise ValueError("a token response needs access_token and expires_in")
    return token, expires_in


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (no signature check: the benchmark only reads ``exp``)."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims = json.loads(base64.urlsafe_b64decode(padded))
    if not isinstance(claims, dict):
        raise ValueError("a JWT payload must be a JSON object")
    return claims


def jwt_expiry(token: str) -> float:
    return float(jwt_claims(token)["exp"])
