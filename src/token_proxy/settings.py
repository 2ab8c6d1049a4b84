"""The token proxy's configuration, parsed once from the environment into one typed object.

Domain code never reads ``os.environ``: ``app.py`` calls :meth:`Settings.from_env` once per
container and hands the object to the pieces it wires together. How variables are read and
refused is shared with the rotator (:mod:`function_setup.environment`).

Settings that cannot work together are refused at cold start with a message naming them, in
particular timings that cannot fit in one request's time: the function's timeout
(``FUNCTION_TIMEOUT_SECONDS``, which template.yaml sets from the same parameter as the
function's ``Timeout``, since Lambda does not tell a function its timeout before an invocation)
less ``DEADLINE_MARGIN_SECONDS`` must leave room for a coalescing wait followed by one whole
Cognito attempt, and the function must answer before the HTTP API gives up on it (30 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from function_setup.environment import check_settings, settings_from_environment

#: The longest an HTTP API waits for its integration: 30 s, not adjustable
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html). The
#: function must answer before that, with a second to spare for API Gateway and Lambda.
HTTP_API_INTEGRATION_TIMEOUT_SECONDS = 30
MAX_FUNCTION_TIMEOUT_SECONDS = HTTP_API_INTEGRATION_TIMEOUT_SECONDS - 1
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Settings:
    token_table_name: str
    cognito_token_url: str
    origin_secret_arn: str
    cache_key_secret_arn: str = ""
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
    function_timeout_seconds: float = 20.0
    deadline_margin_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    unproven_calls_per_minute: int = 600
    unproven_calls_per_client_per_minute: int = 30
    proof_days: float = 30.0

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
            (
                0 < self.function_timeout_seconds <= MAX_FUNCTION_TIMEOUT_SECONDS,
                f"FUNCTION_TIMEOUT_SECONDS must be between 1 and {MAX_FUNCTION_TIMEOUT_SECONDS}:"
                f" the HTTP API waits at most {HTTP_API_INTEGRATION_TIMEOUT_SECONDS} s for the"
                " function, which must answer first",
            ),
            (
                0 < self.deadline_margin_seconds < self.function_timeout_seconds,
                "DEADLINE_MARGIN_SECONDS must be > 0 and less than FUNCTION_TIMEOUT_SECONDS",
            ),
            (
                self.request_seconds >= self.coalesce_wait_seconds + self.attempt_seconds,
                f"COALESCE_WAIT_SECONDS ({self.coalesce_wait_seconds:g}) plus one Cognito attempt"
                f" (connect and read: 2 x UPSTREAM_TIMEOUT_SECONDS = {self.attempt_seconds:g} s)"
                f" do not fit in the {self.request_seconds:g} s a request has"
                f" (FUNCTION_TIMEOUT_SECONDS {self.function_timeout_seconds:g} -"
                f" DEADLINE_MARGIN_SECONDS {self.deadline_margin_seconds:g}): lower them, or raise"
                " the function's timeout",
            ),
            (self.max_backoff_seconds >= 1, "MAX_BACKOFF_SECONDS must be >= 1"),
            (self.unproven_calls_per_minute >= 0, "UNPROVEN_CALLS_PER_MINUTE must be >= 0"),
            (
                self.unproven_calls_per_client_per_minute >= 0,
                "UNPROVEN_CALLS_PER_CLIENT_PER_MINUTE must be >= 0",
            ),
            (self.proof_days >= 0, "PROOF_DAYS must be >= 0"),
        ]
        check_settings(checks)

    @property
    def request_seconds(self) -> float:
        """The time one request may spend at most (its deadline when Lambda does not say)."""
        return self.function_timeout_seconds - self.deadline_margin_seconds

    @property
    def attempt_seconds(self) -> float:
        """The longest one Cognito attempt may take: its connect and read timeouts."""
        return 2 * self.upstream_timeout_seconds

    @property
    def proof_seconds(self) -> float:
        return self.proof_days * SECONDS_PER_DAY

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from environment variables named like the fields, upper-cased."""
        return settings_from_environment(cls, environ)
