"""Token requests and settings as the cache service's tests use them: two clients with
secrets, a request built as request.py builds it, the fleet's cache keys, and the proxy's
settings with overrides."""

from __future__ import annotations

from token_proxy.cache_key import CacheKeys
from token_proxy.model import TokenRequest
from token_proxy.settings import Settings

CLIENT_ID = "3k1d0c7svbq2example0client"
CLIENT_SECRET = "s3cr3t-value-for-client-one-0123456789abcdef"
OTHER_CLIENT_ID = "5h2e1d8twcr3example0second"
OTHER_SECRET = "another-secret-for-client-two-9876543210"
#: The server key every test service instance shares (as a fleet shares the cache key secret).
CACHE_KEY_SECRET = "test-cache-key-secret-0123456789abcdefghijklmnopqrstuv"
KEYS = CacheKeys.from_secret(CACHE_KEY_SECRET)


def cache_key(request: TokenRequest | None = None) -> str:
    """The cache key of ``request`` (the default request when None) under :data:`KEYS`."""
    return KEYS.key_for(request if request is not None else token_request())


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "token_table_name": "token-cache-test",
        "cognito_token_url": "https://auth.example.test/oauth2/token",
        "origin_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:origin",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def token_request(
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    scopes: tuple[str, ...] = ("api/read",),
    extras: tuple[tuple[str, str], ...] = (),
) -> TokenRequest:
    """A request as request.py builds it: scopes normalised (sorted, without duplicates)."""
    return TokenRequest(
        client_id=client_id,
        client_secret=client_secret,
        scopes=tuple(sorted(set(scopes))),
        extras=extras,
    )
