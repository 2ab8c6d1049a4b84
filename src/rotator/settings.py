"""The rotator's configuration, parsed once per container from the environment.

Only ``app.py`` reads ``os.environ``; everything else receives a :class:`RotatorSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from function_setup.environment import check_settings, settings_from_environment

#: WAF limits a regex in a pattern set to 200 characters; ``^`` and ``$`` take two.
MAX_VALUE_LENGTH = 198
#: The issue asks for at least 48 random alphanumeric characters.
MIN_VALUE_LENGTH = 48


def _secure_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


#: testSecret's wait must fit in the rotator's timeout with room for the other calls.
MAX_WAF_PROPAGATION_SECONDS = 90


@dataclass(frozen=True, slots=True)
class RotatorSettings:
    origin_secret_arn: str
    pattern_set_name: str
    pattern_set_id: str
    pattern_set_scope: str = "REGIONAL"
    prune_grace_seconds: int = 900
    cognito_token_url: str = ""
    canary_secret_arn: str = ""
    value_length: int = 64
    lock_max_attempts: int = 5
    lock_backoff_seconds: float = 0.2
    canary_max_attempts: int = 6
    canary_retry_seconds: float = 5.0
    canary_timeout_seconds: float = 5.0
    waf_propagation_seconds: float = 60.0
    user_agent: str = "cognito-token-proxy-rotator/0.1"

    def __post_init__(self) -> None:
        checks = [
            (
                self.pattern_set_scope in ("REGIONAL", "CLOUDFRONT"),
                "PATTERN_SET_SCOPE must be REGIONAL or CLOUDFRONT",
            ),
            (self.prune_grace_seconds >= 0, "PRUNE_GRACE_SECONDS must be >= 0"),
            (
                MIN_VALUE_LENGTH <= self.value_length <= MAX_VALUE_LENGTH,
                f"VALUE_LENGTH must be between {MIN_VALUE_LENGTH} and {MAX_VALUE_LENGTH}",
            ),
            (self.lock_max_attempts >= 1, "LOCK_MAX_ATTEMPTS must be >= 1"),
            (self.lock_backoff_seconds >= 0, "LOCK_BACKOFF_SECONDS must be >= 0"),
            (self.canary_max_attempts >= 1, "CANARY_MAX_ATTEMPTS must be >= 1"),
            (self.canary_retry_seconds >= 0, "CANARY_RETRY_SECONDS must be >= 0"),
            (self.canary_timeout_seconds > 0, "CANARY_TIMEOUT_SECONDS must be > 0"),
            (
                0 <= self.waf_propagation_seconds <= MAX_WAF_PROPAGATION_SECONDS,
                f"WAF_PROPAGATION_SECONDS must be between 0 and {MAX_WAF_PROPAGATION_SECONDS}",
            ),
            (
                not self.cognito_token_url or _secure_or_loopback(self.cognito_token_url),
                "COGNITO_TOKEN_URL must be an https:// URL (http:// only on loopback)",
            ),
        ]
        check_settings(checks)

    @property
    def canary_enabled(self) -> bool:
        """The canary runs only when both its client secret and the token URL are configured."""
        return bool(self.canary_secret_arn and self.cognito_token_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RotatorSettings:
        """Build settings from environment variables named like the fields, upper-cased."""
        return settings_from_environment(cls, environ)
