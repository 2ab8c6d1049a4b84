"""Helpers of the end-to-end tests: the test clients and requests to the local stack over
HTTP (the stack itself is the ``stack`` fixture in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from local.moto_server import aws_client
from local.stack import LocalStack, StackConfig

#: Test clients (fake values): each test uses its own, so their cache keys never meet.
E2E_CLIENTS = [
    {"client_id": "e2e-methods", "client_secret": "e2e-methods-0001", "scopes": ["e2e/read"]},
    {"client_id": "e2e-waf", "client_secret": "e2e-waf-0002", "scopes": ["e2e/read"]},
    {"client_id": "e2e-window", "client_secret": "e2e-window-0003", "token_lifetime": 8},
    {"client_id": "e2e-burst", "client_secret": "e2e-burst-0004", "scopes": ["e2e/read"]},
    {"client_id": "e2e-rotation", "client_secret": "e2e-rotation-0005"},
    {"client_id": "e2e-outage", "client_secret": "e2e-outage-0006"},
]
#: The proxy's secret max age in the tests (the template's minimum is 5 s; the settings allow less).
ORIGIN_SECRET_MAX_AGE_SECONDS = 2
#: The proxies' LEASE_SECONDS in the end-to-end stack (and so their back-off without Retry-After).
E2E_LEASE_SECONDS = 2
HTTP_TIMEOUT = 30


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    token_lifetime: int


def client(client_id: str) -> Client:
    raw = next(c for c in E2E_CLIENTS if c["client_id"] == client_id)
    return Client(
        str(raw["client_id"]), str(raw["client_secret"]), int(raw.get("token_lifetime", 3600))
    )


def token_request(
    stack: LocalStack,
    who: Client,
    *,
    method: str = "body",
    scope: str | None = None,
    resource: str | None = None,
    session: requests.Session | None = None,
) -> requests.Response:
    """A client_credentials request through the proxy, authenticated with ``method``."""
    form: dict[str, str] = {"grant_type": "client_credentials"}
    params: dict[str, str] = {}
    auth: tuple[str, str] | None = None
    if method == "basic":
        auth = (who.client_id, who.client_secret)
    elif method == "body":
        form.update(client_id=who.client_id, client_secret=who.client_secret)
    elif method == "query":
        params.update(client_id=who.client_id, client_secret=who.client_secret)
    else:
        raise ValueError(method)
    if scope is not None:
        form["scope"] = scope
    if resource is not None:
        form["resource"] = resource
    poster = session or requests
    return poster.post(
        stack.proxy_token_url, data=form, params=params, auth=auth, timeout=HTTP_TIMEOUT
    )


def issued(stack: LocalStack) -> int:
    """The issuer's count of successful token responses (over HTTP, as a user would read it)."""
    response = requests.get(f"{stack.issuer_url}/stats", timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return int(response.json()["issued"])


def origin_value(stack: LocalStack, stage: str = "AWSCURRENT") -> str:
    """The origin-verify value with ``stage``, read from the local Secrets Manager."""
    assert stack.aws is not None
    sm = aws_client("secretsmanager", stack.aws.endpoint_url, stack.aws.region)
    response = sm.get_secret_value(SecretId=stack.aws.secret_arn, VersionStage=stage)
    return str(response["SecretString"])


def accepted_patterns(stack: LocalStack) -> list[str]:
    assert stack.aws is not None
    waf = aws_client("wafv2", stack.aws.endpoint_url, stack.aws.region)
    aws = stack.aws
    response = waf.get_regex_pattern_set(
        Name=aws.pattern_set_name, Scope=aws.pattern_set_scope, Id=aws.pattern_set_id
    )
    return [entry["RegexString"] for entry in response["RegexPatternSet"]["RegularExpressionList"]]


def json_body(response: requests.Response) -> Any:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def start_local_stack(
    stack_name: str, directory: Path | None = None, **parameters: str
) -> LocalStack:
    """A local stack with the shipped demo clients, one proxy container, on ephemeral ports,
    its template parameters set; its state file (``make verify LOCAL=1`` reads it) in
    ``directory`` when given."""
    config = StackConfig(
        moto_port=0,
        issuer_port=0,
        proxy_port=0,
        stack_name=stack_name,
        containers=1,
        prewarm=1,
        waf_max_age_seconds=0,
        parameters=dict(parameters),
        state_file=directory / "stack.json" if directory else None,
        function_log=directory / "functions.log" if directory else None,
    )
    return LocalStack(config).start()
