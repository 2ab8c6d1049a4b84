"""The one place that assembles the token service from its parts.

:func:`build_token_service` puts the flow together around a token store and a Cognito client:
``app.py`` hands it the real adapters (:func:`build_dynamodb_token_store`,
:func:`build_cognito_token_client`), the benchmark the same Cognito client against the local
issuer and a store on moto, and the tests their fakes. Nothing is built at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from function_setup.metrics import NullMetrics
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.freshness import FreshnessPolicy
from token_proxy.l1 import TokenL1
from token_proxy.origin_verify import OriginVerifySecret
from token_proxy.ports import CognitoClient, MetricsSink, TokenStore
from token_proxy.service import TokenService
from token_proxy.settings import Settings
from token_proxy.single_flight import SingleFlight
from token_proxy.store import DynamoTokenStore
from token_proxy.token_cache import TokenCache

#: DynamoDB calls fail fast: the service fails open to Cognito when the cache is slow.
DYNAMODB_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "total_max_attempts": 2},  # the first try and one retry
)


def build_token_service(
    settings: Settings,
    *,
    store: TokenStore | None,
    cognito: CognitoClient,
    metrics: MetricsSink | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    l1: TokenL1 | None = None,
    owner_id: str | None = None,
) -> TokenService:
    """One container's token service: its own L1 (``settings``' bound and max age unless
    given), the shared ``store`` (None: L1 alone), ``cognito``, and the clock and sleep that
    every freshness decision, lease and wait goes by. ``owner_id`` names its leases."""
    sink: MetricsSink = metrics if metrics is not None else NullMetrics()
    policy = FreshnessPolicy(settings.refresh_ratio, settings.min_remaining_ratio)
    if l1 is None:
        l1 = TokenL1(settings.l1_max_entries, max_age_seconds=settings.l1_max_age_seconds)
    cache = TokenCache(l1, store, clock=clock, metrics=sink)
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
    return TokenService(
        settings=settings,
        policy=policy,
        cache=cache,
        flight=flight,
        cognito=cognito,
        metrics=sink,
        clock=clock,
    )


def build_dynamodb_token_store(settings: Settings) -> DynamoTokenStore:
    """The settings' token table, through a DynamoDB client configured to fail fast."""
    dynamodb = boto3.resource("dynamodb", config=DYNAMODB_CONFIG)
    return DynamoTokenStore(dynamodb.Table(settings.token_table_name))


def build_cognito_token_client(
    settings: Settings,
    *,
    metrics: MetricsSink | None = None,
    secrets_provider: SecretsProvider | None = None,
) -> CognitoTokenClient:
    """The client of the settings' Cognito token endpoint, sending the origin-verify value
    read from Secrets Manager (through ``secrets_provider`` when given; built on first use
    otherwise)."""
    sink: MetricsSink = metrics if metrics is not None else NullMetrics()
    origin = OriginVerifySecret(
        settings.origin_secret_arn,
        max_age_seconds=settings.origin_secret_max_age_seconds,
        provider=secrets_provider,
        metrics=sink,
    )
    return CognitoTokenClient(
        token_url=settings.cognito_token_url,
        origin=origin,
        timeout_seconds=settings.upstream_timeout_seconds,
        max_attempts=settings.upstream_max_attempts,
        user_agent=settings.user_agent,
        metrics=sink,
    )
