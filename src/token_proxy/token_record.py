"""The sealed record: how a token is kept in its DynamoDB item, and read back.

One record per token item (the item's ``blob``), sealed with :mod:`token_proxy.seal` under a
key derived from the client's own secret, with the cache key as associated data: the token
response together with everything the proxy trusts about it - its kind, client id, and its
issued, refresh and expiry times. The item's plain attributes are for operators and DynamoDB
TTL only, so a table writer can neither stretch a token's life nor turn anything into a token.

A record that opens but is not a well-formed token record of this client (another version,
another kind, times out of order) holds no token; the seal already binds it to its key, and
the checks keep a bug from serving one.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

from token_proxy.model import CachedToken, TokenRequest
from token_proxy.seal import seal, unseal

#: The sealed record's format (inside the blob; the item's ``schema_version`` is the store's).
RECORD_VERSION = 2
_TOKEN_KIND = "token"  # noqa: S105 (a record kind)
#: What opening a blob raises when it is not a record at all (another secret, tampered,
#: not JSON, not an object).
UNREADABLE = (ValueError, TypeError, KeyError)


def sealed_token(request: TokenRequest, key: str, token: CachedToken) -> bytes:
    """A token's sealed record, as the item under ``key`` holds it: the response with its
    kind, client id and times, sealed under the client's secret with the key as associated
    data."""
    record = {
        "v": RECORD_VERSION,
        "kind": _TOKEN_KIND,
        "client_id": request.client_id,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "refresh_at": token.refresh_at,
        "response": token.response,
    }
    plaintext = json.dumps(record, separators=(",", ":")).encode("utf-8")
    return seal(request.client_secret, key, plaintext)


def opened_token(request: TokenRequest, key: str, blob: bytes) -> CachedToken | None:
    """The token in the sealed record ``blob`` of ``key``, or None when the record holds no
    token of this client. Raises SealError when it does not open, or one of
    :data:`UNREADABLE` when its plaintext is not a record."""
    record = json.loads(unseal(request.client_secret, key, blob))
    return _token_from_record(record, request.client_id)


def _token_from_record(record: Any, client_id: str) -> CachedToken | None:
    """The token of a record, or None when it is not a well-formed token record of this
    client."""
    if not isinstance(record, dict) or record.get("v") != RECORD_VERSION:
        return None
    if record.get("kind") != _TOKEN_KIND or record.get("client_id") != client_id:
        return None
    response = record.get("response")
    times = [record.get(name) for name in ("issued_at", "expires_at", "refresh_at")]
    if not isinstance(response, dict) or not all(_is_time(t) for t in times):
        return None
    issued_at, expires_at, refresh_at = (float(cast(float, t)) for t in times)
    if not issued_at <= refresh_at <= expires_at:
        return None
    return CachedToken(
        response=response, issued_at=issued_at, expires_at=expires_at, refresh_at=refresh_at
    )


def _is_time(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
