"""Lambda entry point of the rotator: wiring and dispatch only.

Two kinds of invocation reach this function:

* Secrets Manager's rotation steps: ``{"Step": "createSecret" | "setSecret" | "testSecret" |
  "finishSecret", "SecretId": ..., "ClientRequestToken": ..., "RotationToken"?: ...}``;
* the schedule's prune event: ``{"action": "prune"}``.

Clients and adapters are built once per container, on first use (cached factories), never
at import time. Each invocation emits one ``RotationStepSucceeded`` or ``RotationStepFailed``
metric with the dimension ``Step``. Neither the event nor a value is ever logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import boto3
import requests
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from function_setup.powertools import function_logger, function_metrics
from rotator.canary import TokenEndpointCanary
from rotator.errors import RotationError, UnsupportedEventError, WrongSecretError
from rotator.model import STEP_FAILED, STEP_SUCCEEDED, Step
from rotator.pattern_set import WafRegexPatternSet
from rotator.secret_store import SecretsManagerStore, read_client_credentials
from rotator.settings import RotatorSettings
from rotator.steps import OriginSecretRotation

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_wafv2.client import WAFV2Client
    from mypy_boto3_wafv2.literals import ScopeType

logger = function_logger("rotator")
metrics = function_metrics()

ROTATION_STEPS = {step.value: step for step in (Step.CREATE, Step.SET, Step.TEST, Step.FINISH)}

_BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10
)


def utc_now() -> datetime:
    return datetime.now(UTC)


#: The clock the steps receive; tests replace it to control time.
clock: Callable[[], datetime] = utc_now


@lru_cache(maxsize=1)
def get_settings() -> RotatorSettings:
    return RotatorSettings.from_env(os.environ)


@lru_cache(maxsize=1)
def get_secretsmanager_client() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=_BOTO_CONFIG)


@lru_cache(maxsize=1)
def get_wafv2_client() -> WAFV2Client:
    return boto3.client("wafv2", config=_BOTO_CONFIG)


@lru_cache(maxsize=1)
def get_rotation() -> OriginSecretRotation:
    config = get_settings()
    canary = None
    if config.canary_enabled:
        sm = get_secretsmanager_client()
        canary_arn = config.canary_secret_arn
        canary = TokenEndpointCanary(
            requests.Session(),
            config.cognito_token_url,
            lambda: read_client_credentials(sm, canary_arn),
            max_attempts=config.canary_max_attempts,
            retry_seconds=config.canary_retry_seconds,
            timeout_seconds=config.canary_timeout_seconds,
            user_agent=config.user_agent,
            metrics=metrics,
        )
    return OriginSecretRotation(
        SecretsManagerStore(get_secretsmanager_client(), config.origin_secret_arn),
        WafRegexPatternSet(
            get_wafv2_client(),
            config.pattern_set_name,
            config.pattern_set_id,
            cast("ScopeType", config.pattern_set_scope),
        ),
        grace=timedelta(seconds=config.prune_grace_seconds),
        value_length=config.value_length,
        lock_max_attempts=config.lock_max_attempts,
        lock_backoff_seconds=config.lock_backoff_seconds,
        canary=canary,
        propagation_seconds=config.waf_propagation_seconds,
        metrics=metrics,
    )


_FACTORIES = (get_settings, get_secretsmanager_client, get_wafv2_client, get_rotation)


def reset() -> None:
    """Forget the cached settings, clients and rotation (a new container, for tests)."""
    for factory in _FACTORIES:
        factory.cache_clear()


def _step_of(event: Mapping[str, Any]) -> Step:
    if "Step" in event:
        step = ROTATION_STEPS.get(str(event["Step"]))
        if step is None:
            raise UnsupportedEventError("unknown rotation step")
        return step
    if event.get("action") == "prune":
        return Step.PRUNE
    raise UnsupportedEventError('expected a Secrets Manager rotation step or {"action": "prune"}')


def _run(step: Step, event: Mapping[str, Any]) -> dict[str, object]:
    if step is Step.PRUNE:
        return get_rotation().prune(clock()).as_dict()
    secret_id, token = event.get("SecretId"), event.get("ClientRequestToken")
    if not isinstance(secret_id, str) or not isinstance(token, str) or not token:
        raise UnsupportedEventError("a rotation step needs SecretId and ClientRequestToken")
    if secret_id != get_settings().origin_secret_arn:
        # This function moves one pattern set for one secret; another secret's values must
        # never reach it (the IAM policy would refuse the reads anyway).
        raise WrongSecretError("the event names a secret this function does not rotate")
    logger.append_keys(version_id=token)
    return get_rotation().run(step, token, clock()).as_dict()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, object]:
    step_name = "unknown"
    try:
        step = _step_of(event if isinstance(event, Mapping) else {})
        step_name = step.value
        logger.append_keys(step=step_name)
        result = _run(step, event)
    except Exception as exc:
        metrics.add_dimension(name="Step", value=step_name)
        metrics.add_metric(name=STEP_FAILED, unit=MetricUnit.Count, value=1)
        # Our exceptions' messages name versions and resources only; others may not, so
        # only their type is logged.
        reason = str(exc) if isinstance(exc, RotationError) else type(exc).__name__
        logger.error("step failed", extra={"error": type(exc).__name__, "reason": reason})
        raise
    metrics.add_dimension(name="Step", value=step_name)
    metrics.add_metric(name=STEP_SUCCEEDED, unit=MetricUnit.Count, value=1)
    logger.info("step completed", extra={"outcome": result["outcome"]})
    return result
