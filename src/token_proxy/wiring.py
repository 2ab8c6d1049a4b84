"""The one place that assembles the token service from its parts.

:func:`build_token_service` puts the flow together around a token store, a Cognito client and
the cache keys: ``app.py`` hands it the real adapters (:func:`build_dynamodb_token_store`,
:func:`build_cognito_token_client`, :func:`read_cache_keys`), the benchmark the same Cognito
client against the local issuer and a store on moto, and the tests their fakes. Nothing is
built at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from function_setup.environment import ConfigurationError
from function_setup.metrics import NullMetrics
from token_proxy.backoff import UpstreamBackoff
from token_proxy.budget import UnprovenBudget
from token_proxy.cache_key import CacheKeys
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.deadline import sdk_call_bound
from token_proxy.errors import CacheKeyUnavailable
from token_proxy.freshness import FreshnessPolicy
from token_proxy.l1 import TokenL1
from token_proxy.origin_verify import OriginVerifySecret
from token_proxy.secrets_manager import SecretReader
from token_proxy.service import TokenService
from token_proxy.settings import Settings
from token_proxy.single_flight import SingleFlight
from token_proxy.store import DynamoTokenStore
from token_proxy.token_cache import TokenCache

if TYPE_CHECKING:
    from token_proxy.ports import CognitoClient, MetricsSink, TokenStore, UpstreamTrace


#: DynamoDB calls fail fast: the service fails open to Cognito when the cache is slow.
DYNAMODB_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "total_max_attempts": 2},  # the first try and one retry
)
#: The longest one DynamoDB call can take: it is made only while a request's deadline allows it.
DYNAMODB_CALL_BOUND_SECONDS = sdk_call_bound(DYNAMODB_CONFIG)


def build_token_service(
    settings: Settings,
    *,
    store: TokenStore | None,
    cognito: CognitoClient,
    keys: CacheKeys,
    metrics: MetricsSink | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    l1: TokenL1 | None = None,
    owner_id: str | None = None,
    store_call_seconds: float = DYNAMODB_CALL_BOUND_SECONDS,
) -> TokenService:
    """One container's token service: its own L1 (``settings``' bound and max age unless
    given), the shared ``store`` (None: L1 alone), ``cognito``, the fleet's cache ``keys``, and
    the clock and sleep that every freshness decision, lease, budget window, back-off, wait and
    deadline goes by. ``owner_id`` names its leases; ``store_call_seconds`` is the longest one
    call to ``store`` can take (a call is made only while a request's deadline allows it)."""
    sink: MetricsSink = metrics if metrics is not None else NullMetrics()
    policy = FreshnessPolicy(settings.refresh_ratio, settings.min_remaining_ratio)
    if l1 is None:
        l1 = TokenL1(settings.l1_max_entries, max_age_seconds=settings.l1_max_age_seconds)
    cache = TokenCache(
        l1,
        store,
        clock=clock,
        metrics=sink,
        proof_seconds=settings.proof_seconds,
        store_call_seconds=store_call_seconds,
    )
    flight = SingleFlight(
        cache,
        store,
        policy,
        lease_seconds=settings.lease_seconds,
        coalesce_wait_seconds=settings.coalesce_wait_seconds,
        clock=clock,
        sleep=sleep,
        metrics=sink,
        owner_id=owner_id,
    )
    budget = UnprovenBudget(
        store,
        keys,
        per_client=settings.unproven_calls_per_client_per_minute,
        total=settings.unproven_calls_per_minute,
        metrics=sink,
        clock=clock,
        store_call_seconds=store_call_seconds,
    )
    backoff = UpstreamBackoff(
        lease_seconds=settings.lease_seconds,
        max_backoff_seconds=settings.max_backoff_seconds,
        clock=clock,
    )
    return TokenService(
        settings=settings,
        policy=policy,
        keys=keys,
        cache=cache,
        flight=flight,
        budget=budget,
        backoff=backoff,
        cognito=cognito,
        metrics=sink,
        clock=clock,
    )


def build_dynamodb_token_store(settings: Settings) -> DynamoTokenStore:
    """The settings' token table, through a DynamoDB client configured to fail fast."""
    dynamodb = boto3.resource("dynamodb", config=DYNAMODB_CONFIG)
    return DynamoTokenStore(dynamodb.Table(settings.token_table_name))


def read_cache_keys(settings: Settings, reader: SecretReader | None = None) -> CacheKeys:
    """The fleet's cache keys, from the cache key secret (read once per container).

    Raises ConfigurationError when ``CACHE_KEY_SECRET_ARN`` is not set, CacheKeyUnavailable
    when the secret cannot be read (the next request tries again).
    """
    if not settings.cache_key_secret_arn:
        raise ConfigurationError("environment variable CACHE_KEY_SECRET_ARN is required")
    source = reader if reader is not None else SecretReader()
    try:
        return CacheKeys.from_secret(source.current(settings.cache_key_secret_arn))
    except Exception as exc:  # the SDK's failures, a binary or malformed value
        raise CacheKeyUnavailable(
            f"the cache key secret could not be read ({type(exc).__name__})"
        ) from exc


def build_cognito_token_client(
    settings: Settings,
    *,
    metrics: MetricsSink | None = None,
    secrets: SecretReader | None = None,
    trace: UpstreamTrace | None = None,
) -> CognitoTokenClient:
    """The client of the settings' Cognito token endpoint, sending the origin-verify value
    read from Secrets Manager (through ``secrets`` when given; a client built on first use
    otherwise), its attempts recorded by ``trace`` when given (X-Ray, with SDK tracing on)."""
    sink: MetricsSink = metrics if metrics is not None else NullMetrics()
    origin = OriginVerifySecret(
        settings.origin_secret_arn,
        max_age_seconds=settings.origin_secret_max_age_seconds,
        reader=secrets,
        metrics=sink,
    )
    return CognitoTokenClient(
        token_url=settings.cognito_token_url,
        origin=origin,
        timeout_seconds=settings.upstream_timeout_seconds,
        max_attempts=settings.upstream_max_attempts,
        user_agent=settings.user_agent,
        metrics=sink,
        trace=trace,
    )
