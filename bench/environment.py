"""The benchmark's world: moto's server, the template's resources in it, the local issuer, and
token services built by the function's own wiring (``token_proxy.wiring``), one per simulated
instance.

Composed here rather than taken from the local stack runner, so the benchmark controls every
piece: the clock each service reads, its L1 size and the metrics it records.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import boto3
import requests
from botocore.config import Config

from bench import REPO_ROOT
from function_setup.metrics import MetricsSink
from local.cloudformation_resources import LocalAwsResources, bootstrap
from local.cognito_token_endpoint import (
    ClientRegistration,
    LocalIssuer,
    RunningIssuer,
    WebAclSource,
    serve_in_thread,
)
from local.moto_server import FAKE_CREDENTIALS, RunningMotoServer, aws_client, start_moto_server
from token_proxy.app import logger as app_logger
from token_proxy.cache_key import CacheKeys
from token_proxy.cognito_client import ORIGIN_VERIFY_HEADER
from token_proxy.l1 import TokenL1
from token_proxy.secrets_manager import SecretReader
from token_proxy.service import TokenService
from token_proxy.settings import Settings
from token_proxy.store import DynamoTokenStore
from token_proxy.wiring import (
    DYNAMODB_CONFIG,
    build_cognito_token_client,
    build_token_service,
    read_cache_keys,
)

#: Nothing listens here: bootstrap needs a URL before the issuer is up.
PLACEHOLDER_ISSUER_URL = "http://127.0.0.1:9/oauth2/token"
BASIC_EVENT = REPO_ROOT / "events" / "token_basic.json"
STACK_NAME = "token-proxy-bench"
#: The origin-verify value the bootstrap stores in the secret and the web ACL accepts.
ORIGIN_VALUE = "BenchOriginVerifyValue0123456789abcdef"
TOKEN_LIFETIME = 3600
SCOPE = "bench-api/read"
HTTP_TIMEOUT = 30.0
#: The function's DynamoDB client settings with longer timeouts. moto's server runs in this
#: process, under one GIL with up to 200 request threads; during a burst it takes seconds to
#: accept a connection or answer (DynamoDB takes milliseconds). With the function's 1 s
#: timeouts botocore would time out and retry there, measuring moto rather than the proxy
#: (and a retried conditional write that had succeeded reads as a lost lease: bench/README.md).
BENCH_DYNAMODB_CONFIG = DYNAMODB_CONFIG.merge(Config(connect_timeout=15, read_timeout=15))
USER_AGENT = "token-proxy-bench/1.0"


def function_log_handler() -> logging.StreamHandler[Any]:
    """The Powertools handler every ``token_proxy`` logger writes through."""
    handler = app_logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError("the function's log handler is expected to be a StreamHandler")
    return handler


@contextmanager
def quiet_function_logs() -> Iterator[None]:
    """Send the function's log lines to /dev/null: they are still formatted, as in Lambda,
    but not printed."""
    handler = function_log_handler()
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        previous = handler.setStream(devnull)
        try:
            yield
        finally:
            handler.setStream(previous)


def bench_client(name: str, lifetime: int = TOKEN_LIFETIME) -> ClientRegistration:
    """An app client registered with the local issuer (made-up, deterministic credentials)."""
    return ClientRegistration(
        client_id=f"bench-{name}",
        client_secret=f"bench-secret-{name}-not-for-production-0123456789",
        scopes=(SCOPE, "bench-api/write"),
        token_lifetime=lifetime,
    )


def basic_authorization(client: ClientRegistration) -> str:
    """The ``Authorization`` header a client sends with HTTP Basic (RFC 6749 section 2.3.1)."""
    raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


@dataclass
class BenchEnvironment:
    """Everything a measurement needs; built by :func:`local_environment`."""

    moto: RunningMotoServer
    resources: LocalAwsResources
    issuer: RunningIssuer
    clients: dict[str, ClientRegistration]
    base_settings: Settings
    #: The fleet's cache keys, from the template's cache key secret in moto.
    keys: CacheKeys

    @property
    def token_url(self) -> str:
        return self.issuer.token_url

    def settings(self, **overrides: Any) -> Settings:
        return replace(self.base_settings, **overrides)

    def issued(self) -> int:
        """Tokens the local issuer has handed out since it started (its ``/stats``)."""
        response = requests.get(f"{self.issuer.url}/stats", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return int(response.json()["issued"])

    def table(self) -> Any:
        """A new DynamoDB Table resource on moto, configured as the function's (one per
        simulated container: each has its own connection pool)."""
        resource = boto3.resource(
            "dynamodb",
            endpoint_url=self.moto.endpoint_url,
            region_name=self.resources.region,
            config=BENCH_DYNAMODB_CONFIG,
            **FAKE_CREDENTIALS,
        )
        return resource.Table(self.resources.table_name)

    def store(self) -> DynamoTokenStore:
        return DynamoTokenStore(self.table())

    def service(
        self,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        l1_clock: Callable[[], float] = time.monotonic,
        metrics: MetricsSink | None = None,
    ) -> TokenService:
        """One simulated proxy instance, built by the function's own wiring: its own L1,
        Cognito client (against the local issuer, reading the origin secret from moto's Secrets
        Manager) and DynamoDB client, the shared table."""
        chosen = settings if settings is not None else self.base_settings
        secrets = SecretReader(
            aws_client("secretsmanager", self.moto.endpoint_url, self.resources.region)
        )
        return build_token_service(
            chosen,
            store=self.store(),
            keys=self.keys,
            cognito=build_cognito_token_client(chosen, metrics=metrics, secrets=secrets),
            l1=TokenL1(
                chosen.l1_max_entries, max_age_seconds=chosen.l1_max_age_seconds, clock=l1_clock
            ),
            clock=clock,
            metrics=metrics,
        )

    def direct_session(self) -> requests.Session:
        """A keep-alive session for calls straight to the issuer, as a client without the proxy
        would make them (the origin header only gets it past the local web ACL, which stands
        in for the proxy's WAF rule and would not exist without the proxy)."""
        session = requests.Session()
        session.headers.update(
            {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/x-www-form-urlencoded",
                ORIGIN_VERIFY_HEADER: ORIGIN_VALUE,
            }
        )
        return session

    def direct_call(
        self, session: requests.Session, client: ClientRegistration, scope: str = SCOPE
    ) -> tuple[int, bytes]:
        """One token request straight to the issuer: (status, body)."""
        response = session.post(
            self.token_url,
            data={"grant_type": "client_credentials", "scope": scope},
            headers={"Authorization": basic_authorization(client)},
            timeout=HTTP_TIMEOUT,
        )
        return response.status_code, response.content


@contextmanager
def local_environment(clients: list[ClientRegistration]) -> Iterator[BenchEnvironment]:
    """Start moto's server, create the template's resources in it, and serve the issuer."""
    moto = start_moto_server()
    try:
        # moto keeps its state per process, across servers: start from an empty account.
        requests.post(
            f"{moto.endpoint_url}/moto-api/reset", timeout=HTTP_TIMEOUT
        ).raise_for_status()
        resources = bootstrap(
            moto.endpoint_url,
            cognito_token_url=PLACEHOLDER_ISSUER_URL,  # the issuer's own URL is set below
            stack_name=STACK_NAME,
            origin_secret_value=ORIGIN_VALUE,
        )
        web_acl = WebAclSource(
            moto.endpoint_url,
            resources.region,
            web_acl_name=resources.web_acl_name,
            web_acl_id=resources.web_acl_id,
            max_age_seconds=60.0,  # no rotation runs during the benchmark
        )
        issuer = serve_in_thread(LocalIssuer(clients, web_acl=web_acl))
        try:
            environment = dict(resources.proxy_environment)
            environment["COGNITO_TOKEN_URL"] = issuer.token_url
            settings = Settings.from_env(environment)
            secrets = SecretReader(
                aws_client("secretsmanager", moto.endpoint_url, resources.region)
            )
            yield BenchEnvironment(
                moto=moto,
                resources=resources,
                issuer=issuer,
                clients={c.client_id: c for c in clients},
                base_settings=settings,
                keys=read_cache_keys(settings, secrets),
            )
        finally:
            issuer.stop()
    finally:
        moto.stop()


def http_api_event(
    client: ClientRegistration, scope: str = SCOPE, extra_form: str = ""
) -> dict[str, Any]:
    """A real HTTP API (payload 2.0) event for a Basic-authenticated token request, built from
    the repository's own ``events/token_basic.json``."""
    event: dict[str, Any] = json.loads(BASIC_EVENT.read_text(encoding="utf-8"))
    body = f"grant_type=client_credentials&scope={quote(scope, safe='')}" + extra_form
    event["headers"] = {
        **event["headers"],
        "authorization": basic_authorization(client),
        "content-length": str(len(body)),
    }
    event["body"] = body
    return event
