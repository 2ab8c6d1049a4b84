"""The local stack for the end-to-end tests: moto, the local issuer and the token proxy behind
the HTTP API adapter, started in this process on ephemeral loopback ports (so a `make run` in
progress is not disturbed) and stopped when the test module is done."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from local.stack import LocalStack, StackConfig
from tests.e2e.harness import E2E_CLIENTS, E2E_LEASE_SECONDS, ORIGIN_SECRET_MAX_AGE_SECONDS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    directory = tmp_path_factory.mktemp("e2e-stack")
    clients_file = directory / "clients.json"
    clients_file.write_text(json.dumps(E2E_CLIENTS), encoding="utf-8")
    config = StackConfig(
        moto_port=0,
        issuer_port=0,
        proxy_port=0,
        stack_name="e2e",
        clients_file=clients_file,
        proxy_overrides={
            "ORIGIN_SECRET_MAX_AGE_SECONDS": str(ORIGIN_SECRET_MAX_AGE_SECONDS),
            # A container that saw the issuer fail leaves it alone this long (Retry-After).
            "LEASE_SECONDS": str(E2E_LEASE_SECONDS),
            # The client loops below make a new key every other request (a new resource
            # value): far more than a real client's budget of calls for unproven keys.
            "UNPROVEN_CALLS_PER_CLIENT_PER_MINUTE": "100000",
        },
        containers=4,
        prewarm=4,
        waf_max_age_seconds=0,
        state_file=None,
        function_log=directory / "functions.log",
    )
    with LocalStack(config) as running:
        yield running
