"""Keyed names for what the proxy keeps: cache keys, client fingerprints, budget buckets.

All three are HMAC-SHA256 under one server-side key, the cache key secret: a random value the
template generates in Secrets Manager (``CacheKeySecret``) that only the proxy's role may read,
read once per container. Because the hash is keyed,

- a dump, backup or export of the table cannot be used to test a guessed client secret offline
  (an unkeyed hash of the client id and secret can be, at hundreds of thousands of guesses a
  second), and two deployments never share keys;
- a client id that Cognito has not confirmed (it may be a secret sent in the wrong field) is
  logged and counted only as a short fingerprint that nobody without the key can invert or
  test guesses against;
- a caller cannot choose client ids that land in someone else's budget bucket.

Each use has its own domain label, and every input is length-prefixed, so no two inputs of
different shapes hash alike. :data:`CACHE_KEY_VERSION` is part of the cache key: bumping it
orphans every cached item at once (they expire through DynamoDB TTL).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from token_proxy.model import TokenRequest

#: Version of the cache-key derivation (``tp1`` was an unkeyed SHA-256).
CACHE_KEY_VERSION = "tp2"
_FINGERPRINT_LABEL = "client-fingerprint/1"
_BUCKET_LABEL = "budget-bucket/1"
#: Hex characters of a client fingerprint (48 bits: enough to tell a fleet's clients apart).
FINGERPRINT_CHARS = 12
#: A server key shorter than this is refused (the template generates 64 characters).
MIN_KEY_BYTES = 32


def _length_prefixed(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        out += len(raw).to_bytes(4, "big")
        out += raw
    return bytes(out)


class CacheKeys:
    """Cache keys, fingerprints and buckets under one server-side key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the cache key secret must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)

    @classmethod
    def from_secret(cls, value: str) -> CacheKeys:
        """From the cache key secret's SecretString."""
        return cls(value.encode("utf-8"))

    @classmethod
    def ephemeral(cls) -> CacheKeys:
        """A random key (tests, a single process): its keys match no other instance's."""
        return cls(os.urandom(MIN_KEY_BYTES))

    def __repr__(self) -> str:
        return "CacheKeys(<key hidden>)"

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._key, _length_prefixed(*parts), hashlib.sha256).digest()

    def key_for(self, request: TokenRequest) -> str:
        """The cache key: everything that shapes the token, the client secret included, so a
        wrong secret can never address another client's cached token."""
        parts = [CACHE_KEY_VERSION, request.client_id, request.client_secret]
        parts.append(str(len(request.scopes)))
        parts.extend(request.scopes)
        parts.append(str(len(request.extras)))
        for name, value in request.extras:
            parts.extend((name, value))
        return self._mac(*parts).hex()

    def fingerprint(self, client_id: str) -> str:
        """A short keyed fingerprint of a client id, for logs (never the id itself until
        Cognito confirmed it)."""
        return self._mac(_FINGERPRINT_LABEL, client_id).hex()[:FINGERPRINT_CHARS]

    def log_fields(self, client_id: str, key: str, *, proven: bool) -> dict[str, str]:
        """Log fields naming a request's client: its keyed fingerprint and the first eight hex
        characters of its cache key always, the client id only once its key produced a token
        (``proven``: Cognito confirmed it)."""
        who = {"client_fp": self.fingerprint(client_id), "key": key[:8]}
        if proven:
            who["client_id"] = client_id
        return who

    def bucket(self, client_id: str, buckets: int) -> int:
        """Which of ``buckets`` per-client budget counters ``client_id`` counts against."""
        return int.from_bytes(self._mac(_BUCKET_LABEL, client_id)[:8], "big") % buckets
