"""Sealing: only the client's own secret, for the very same cache key, opens a blob."""

from __future__ import annotations

import pytest

from token_proxy.errors import SealError
from token_proxy.seal import NONCE_BYTES, SALT_BYTES, SEAL_VERSION, seal, unseal

SECRET = "client-secret-0123456789"
KEY = "a" * 64
PLAINTEXT = b'{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","expires_in":3600}'


def test_round_trip_and_format() -> None:
    # GIVEN a sealed token response
    blob = seal(SECRET, KEY, PLAINTEXT)

    # WHEN it is opened with the same secret and key
    opened = unseal(SECRET, KEY, blob)

    # THEN the plaintext comes back, and the blob is version | salt | nonce | ciphertext+tag
    assert opened == PLAINTEXT
    assert blob[0] == SEAL_VERSION == 0x01
    assert len(blob) == 1 + SALT_BYTES + NONCE_BYTES + len(PLAINTEXT) + 16
    assert PLAINTEXT not in blob
    assert b"eyJ" not in blob


def test_each_seal_uses_fresh_salt_and_nonce() -> None:
    # GIVEN the same plaintext sealed twice
    first, second = seal(SECRET, KEY, PLAINTEXT), seal(SECRET, KEY, PLAINTEXT)

    # THEN the blobs differ in salt, nonce and ciphertext, and both open
    assert first[1:17] != second[1:17]
    assert first[17:29] != second[17:29]
    assert first[29:] != second[29:]
    assert unseal(SECRET, KEY, first) == unseal(SECRET, KEY, second) == PLAINTEXT


def test_empty_plaintext_round_trips() -> None:
    assert unseal(SECRET, KEY, seal(SECRET, KEY, b"")) == b""


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


BLOB = seal(SECRET, KEY, PLAINTEXT)


@pytest.mark.parametrize(
    ("secret", "key", "blob"),
    [
        pytest.param("client-secret-0123456788", KEY, BLOB, id="wrong secret"),
        pytest.param("", KEY, BLOB, id="empty secret"),
        pytest.param(SECRET, "b" + KEY[1:], BLOB, id="wrong cache key"),
        pytest.param(SECRET, KEY, _flip(BLOB, 5), id="tampered salt"),
        pytest.param(SECRET, KEY, _flip(BLOB, 20), id="tampered nonce"),
        pytest.param(SECRET, KEY, _flip(BLOB, 40), id="tampered ciphertext"),
        pytest.param(SECRET, KEY, _flip(BLOB, len(BLOB) - 1), id="tampered tag"),
        pytest.param(SECRET, KEY, BLOB[:-1], id="truncated by one byte"),
        pytest.param(SECRET, KEY, BLOB[:29], id="header only"),
        pytest.param(SECRET, KEY, b"", id="empty blob"),
        pytest.param(SECRET, KEY, b"\x02" + BLOB[1:], id="unknown version"),
        pytest.param(SECRET, KEY, b"\x00" + BLOB[1:], id="version zero"),
        pytest.param(SECRET, KEY, BLOB + b"\x00", id="trailing byte"),
    ],
)
def test_anything_wrong_raises_seal_error(secret: str, key: str, blob: bytes) -> None:
    # GIVEN a blob sealed for SECRET and KEY, then altered (or opened with other inputs)
    # WHEN it is opened
    # THEN SealError is raised, never some other exception or a wrong plaintext
    with pytest.raises(SealError):
        unseal(secret, key, blob)


def test_error_message_carries_no_secret() -> None:
    # GIVEN a blob opened with a wrong secret
    with pytest.raises(SealError) as caught:
        unseal("wrong-secret-value", KEY, BLOB)

    # THEN neither secret nor plaintext appears in the error
    text = str(caught.value) + repr(caught.value)
    assert SECRET not in text
    assert "wrong-secret-value" not in text
    assert "eyJ" not in text
