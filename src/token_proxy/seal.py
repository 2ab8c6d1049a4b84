"""Sealing cached token responses under a key only the client's own secret can derive.

A sealed blob is ``0x01 | salt (16) | nonce (12) | AES-256-GCM ciphertext + tag``. The AES key
is HKDF-SHA256 over the client secret with the blob's random salt, and the cache key is the
additional authenticated data, so a blob copied to another item does not open. A dump of the
table is therefore useless without the clients' own secrets.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from token_proxy.errors import SealError

SEAL_VERSION = 0x01
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16
HKDF_INFO = b"cognito-token-proxy/seal/v1"
_HEADER_BYTES = 1 + SALT_BYTES + NONCE_BYTES


def _derive_key(client_secret: str, salt: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=HKDF_INFO)
    return hkdf.derive(client_secret.encode("utf-8", "surrogatepass"))


def seal(client_secret: str, cache_key: str, plaintext: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` for the item addressed by ``cache_key``."""
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    aead = AESGCM(_derive_key(client_secret, salt))
    ciphertext = aead.encrypt(nonce, plaintext, cache_key.encode("utf-8"))
    return bytes([SEAL_VERSION]) + salt + nonce + ciphertext


def unseal(client_secret: str, cache_key: str, blob: bytes) -> bytes:
    """The plaintext of a sealed blob; :class:`SealError` if anything at all is wrong."""
    if len(blob) < _HEADER_BYTES + TAG_BYTES:
        raise SealError("sealed blob is truncated")
    if blob[0] != SEAL_VERSION:
        raise SealError("sealed blob has an unknown version")
    salt = blob[1 : 1 + SALT_BYTES]
    nonce = blob[1 + SALT_BYTES : _HEADER_BYTES]
    aead = AESGCM(_derive_key(client_secret, salt))
    try:
        return aead.decrypt(nonce, blob[_HEADER_BYTES:], cache_key.encode("utf-8"))
    except InvalidTag as exc:
        raise SealError("sealed blob does not open with this secret and key") from exc
