"""The keyed cache key: HMAC-SHA256 under the deployment's server-side key, versioned, over
everything that shapes a token; client fingerprints and budget buckets under the same key."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.fakes.token_requests import CLIENT_ID, CLIENT_SECRET, KEYS, token_request
from token_proxy.cache_key import CACHE_KEY_VERSION, FINGERPRINT_CHARS, CacheKeys
from token_proxy.model import TokenRequest


def test_the_key_is_an_hmac_no_dump_can_recompute_without_the_server_key() -> None:
    # GIVEN a request and the deployment's key
    request = token_request()
    key = KEYS.key_for(request)

    # THEN it is 256 bits of hex, unlike any unkeyed hash of the same credentials, and another
    # deployment (another key) gets another cache key for the same request
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    unkeyed = hashlib.sha256(f"{CACHE_KEY_VERSION}{CLIENT_ID}{CLIENT_SECRET}".encode()).hexdigest()
    assert key != unkeyed
    assert (
        CacheKeys.from_secret("another-deployment-secret-0123456789abcdef").key_for(request) != key
    )
    assert KEYS.key_for(token_request()) == key  # and it is stable within a deployment


@pytest.mark.parametrize(
    "other",
    [
        token_request(client_secret=CLIENT_SECRET + "x"),
        token_request(client_id=CLIENT_ID + "x"),
        token_request(scopes=("api/write",)),
        token_request(scopes=()),
        token_request(extras=(("resource", "https://a.example"),)),
        # length-prefixed: moving a character from the id to the secret is another key
        TokenRequest(CLIENT_ID[:-1], CLIENT_ID[-1] + CLIENT_SECRET, scopes=("api/read",)),
        TokenRequest(CLIENT_ID, CLIENT_SECRET, scopes=("api/read api/write",)),
    ],
)
def test_everything_that_shapes_the_token_is_part_of_the_key(other: TokenRequest) -> None:
    assert KEYS.key_for(other) != KEYS.key_for(token_request())


def test_fingerprints_are_short_keyed_and_tell_clients_apart() -> None:
    fingerprints = {KEYS.fingerprint(f"client-{n}") for n in range(1000)}
    assert len(fingerprints) == 1000
    for fingerprint in fingerprints:
        assert re.fullmatch(rf"[0-9a-f]{{{FINGERPRINT_CHARS}}}", fingerprint)
    assert KEYS.fingerprint(CLIENT_ID) != CacheKeys.ephemeral().fingerprint(CLIENT_ID)
    assert KEYS.fingerprint(CLIENT_ID) not in KEYS.key_for(token_request())


def test_buckets_spread_client_ids_over_a_fixed_number_of_counters() -> None:
    buckets = [KEYS.bucket(f"made-up-{n}", 256) for n in range(5000)]
    assert set(buckets) <= set(range(256))
    assert len(set(buckets)) > 240  # a keyed hash spreads them


def test_a_short_server_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CacheKeys(b"short")
    assert "test-cache-key" not in repr(KEYS)
