"""The token proxy's configuration, parsed once from the environment into one typed object.

Domain code never reads ``os.environ``: ``app.py`` calls :meth:`Settings.from_env` once per
container and hands the object to the pieces it wires together. How variables are read and
refused is shared with the rotator (:mod:`function_setup.environment`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from function_setup.environment import check_settings, settings_from_environment


@dataclass(frozen=True, slots=True)
class Settings:
    token_table_name: str
    cognito_token_url: str
    origin_secret_arn: str
    refresh_ratio: float = 0.75
    min_remaining_ratio: float = 0.10
    l1_max_entries: int = 1024
    l1_max_age_seconds: float = 30.0
    origin_secret_max_age_seconds: int = 60
    lease_seconds: float = 10.0
    coalesce_wait_seconds: float = 3.0
    negative_cache_seconds: float = 30.0
    upstream_timeout_seconds: float = 3.0
    upstream_max_attempts: int = 3
    max_body_bytes: int = 8192
    user_agent: str = "cognito-token-proxy/0.1"

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.refresh_ratio < 1.0, "REFRESH_RATIO must be between 0 and 1"),
            (
                0.0 <= self.min_remaining_ratio < 1.0 - self.refresh_ratio + 1e-9,
                "MIN_REMAINING_RATIO must be at least 0 and at most 1 - REFRESH_RATIO",
            ),
            (self.l1_max_entries >= 0, "L1_MAX_ENTRIES must be >= 0"),
            (self.l1_max_age_seconds > 0, "L1_MAX_AGE_SECONDS must be > 0"),
            (self.origin_secret_max_age_seconds >= 0, "ORIGIN_SECRET_MAX_AGE_SECONDS must be >= 0"),
            (self.lease_seconds > 0, "LEASE_SECONDS must be > 0"),
            (self.coalesce_wait_seconds >= 0, "COALESCE_WAIT_SECONDS must be >= 0"),
            (self.negative_cache_seconds >= 0, "NEGATIVE_CACHE_SECONDS must be >= 0"),
            (self.upstream_timeout_seconds > 0, "UPSTREAM_TIMEOUT_SECONDS must be > 0"),
            (self.upstream_max_attempts >= 1, "UPSTREAM_MAX_ATTEMPTS must be >= 1"),
            (self.max_body_bytes > 0, "MAX_BODY_BYTES must be > 0"),
        ]
        check_settings(checks)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from environment variables named like the fields, upper-cased."""
        return settings_from_environment(cls, environ)
