"""HTTP adapter for the optional canary: a real client_credentials token request through the
user pool's WAF, carrying a candidate x-origin-verify value.

WAF changes take a little while to reach every edge, so a 403 (and 429/5xx/network errors)
is retried a bounded number of times; any other answer fails at once (e.g. a wrong canary
secret gives 400 invalid_client, which waiting would not fix). The token in a successful
answer is checked for presence and dropped: never logged, never kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from function_setup.metrics import MetricsSink, NullMetrics
from rotator.errors import CanaryFailedError
from rotator.model import CANARY_ATTEMPT

logger = Logger(child=True)

#: Answers that may turn into a 200 once WAF has propagated or Cognito recovers.
RETRYABLE_STATUSES = frozenset({403, 429, 500, 502, 503, 504})


class TokenEndpointCanary:
    """:class:`rotator.model.Canary` against a Cognito-compatible ``/oauth2/token`` URL."""

    def __init__(
        self,
        session: requests.Session,
        token_url: str,
        credentials: Callable[[], tuple[str, str]],
        *,
        max_attempts: int = 6,
        retry_seconds: float = 5.0,
        timeout_seconds: float = 5.0,
        user_agent: str = "cognito-token-proxy-rotator/0.1",
        sleep: Callable[[float], None] = time.sleep,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._session = session
        self._token_url = token_url
        self._credentials = credentials
        self._max_attempts = max_attempts
        self._retry_seconds = retry_seconds
        self._timeout = timeout_seconds
        self._user_agent = user_agent
        self._sleep = sleep
        self._metrics = metrics or NullMetrics()

    def check(self, origin_value: str) -> None:
        client_id, client_secret = self._credentials()
        last_status = "none"
        for attempt in range(1, self._max_attempts + 1):
            self._metrics.add_metric(CANARY_ATTEMPT, MetricUnit.Count, 1)
            status = self._attempt(client_id, client_secret, origin_value)
            if status == 200:
                logger.info("canary token request succeeded", extra={"attempt": attempt})
                return
            last_status = "network error" if status is None else str(status)
            if status is not None and status not in RETRYABLE_STATUSES:
                raise CanaryFailedError(f"the canary token request was answered {status}")
            logger.warning(
                "canary token request not yet accepted",
                extra={
                    "attempt": attempt,
                    "max_attempts": self._max_attempts,
                    "status": last_status,
                },
            )
            if attempt < self._max_attempts:
                self._sleep(self._retry_seconds)
        raise CanaryFailedError(
            f"the canary token request did not succeed in {self._max_attempts} attempts "
            f"(last answer: {last_status})"
        )

    def _attempt(self, client_id: str, client_secret: str, origin_value: str) -> int | None:
        """The HTTP status of one token request (None on a network error); 200 only when the
        answer carries an access token."""
        try:
            response = self._session.post(
                self._token_url,
                data={"grant_type": "client_credentials"},
                auth=(client_id, client_secret),
                headers={"x-origin-verify": origin_value, "User-Agent": self._user_agent},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            logger.warning("canary token request failed", extra={"error": type(exc).__name__})
            return None
        try:
            if response.status_code != 200:
                return response.status_code
            try:
                body = response.json()
            except ValueError:
                return 502
            return 200 if isinstance(body, dict) and body.get("access_token") else 502
        finally:
            response.close()
