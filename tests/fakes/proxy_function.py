"""The token proxy function as the handler tests run it: its environment as template.yaml
passes it (resolved by the local stack's own resolver), the origin secret in moto, a fresh
"container" per test, the events/ files, and what its Powertools handler writes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_resources import function_environment as bootstrap_function_environment
from local.cloudformation_template import default_template
from tests.conftest import REGION, TABLE_NAME
from tests.fakes.cognito_endpoint import COGNITO_DOMAIN, ORIGIN_VALUE, cognito_token_url
from token_proxy import app

ROOT = Path(__file__).resolve().parents[2]
#: The cache key secret's value in the handler tests (the server key of cache keys).
CACHE_KEY_SECRET_VALUE = "CacheKeySecretForTheHandlerTests0123456789abcdefghijklmnop"
EVENTS_DIR = ROOT / "events"


def function_environment(
    table_name: str, secret_arn: str, cache_key_secret_arn: str = ""
) -> dict[str, str]:
    """TokenProxyFunction's environment variables from template.yaml, resolved by the local
    stack's own intrinsic resolver with the parameters at their defaults and the resources'
    references replaced by the test's own, and Cognito's token endpoint the loopback one of
    :mod:`tests.fakes.cognito_endpoint`."""
    template = default_template()
    resolver = IntrinsicResolver(
        template,
        StackContext(stack_name="token-proxy-test", region=REGION),
        parameters={"CognitoDomain": COGNITO_DOMAIN},
    )
    resolver.register("TokenTable", table_name)
    resolver.register("OriginSecret", secret_arn)
    resolver.register("CacheKeySecret", cache_key_secret_arn or f"{secret_arn}-cache-key")
    return bootstrap_function_environment(
        resolver, template, "TokenProxyFunction", cognito_token_url()
    )


def load_event(name: str) -> dict[str, Any]:
    data = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@contextmanager
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Inside moto, with the token table created: the origin secret, the function's environment,
    and a fresh "container" (the handler's cached factories reset before and after)."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="origin-verify", SecretString=ORIGIN_VALUE)["ARN"]
    key_arn = secrets.create_secret(Name="cache-key", SecretString=CACHE_KEY_SECRET_VALUE)["ARN"]
    env = function_environment(TABLE_NAME, arn, key_arn)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app.reset()
    try:
        yield env
    finally:
        app.reset()


@contextmanager
def function_log() -> Iterator[io.StringIO]:
    """Everything the function's Powertools handler writes while inside (the app's and the
    token_proxy.* modules' JSON lines), as Lambda would send it to the log group."""
    handler = app.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        if previous is not None:
            handler.setStream(previous)


def log_records(output: str) -> list[dict[str, Any]]:
    """The log records among the lines written (Powertools' JSON lines, not EMF documents)."""
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [r for r in records if "_aws" not in r]
