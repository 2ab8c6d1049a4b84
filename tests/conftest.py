"""Shared fixtures: fake AWS credentials, moto's in-process mock and its server on loopback,
and the token table built from template.yaml's own definition (so the tests cannot drift from
the template).

Also: the suite-wide log guard (:mod:`tests.log_guard`, loaded as a plugin) and the hypothesis
profiles, chosen with ``HYPOTHESIS_PROFILE``: ``default`` (quick local runs) and ``ci`` (what
``make test`` runs: many more examples, reproducible: derandomized, no example database).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import settings
from moto import mock_aws

from local.cloudformation_template import create_token_table
from local.moto_fidelity import make_moto_behave_like_aws
from local.moto_server import RunningMotoServer, start_moto_server

pytest_plugins = ["tests.log_guard"]

REGION = "eu-west-1"
TABLE_NAME = "token-cache-test"

#: Examples per property under each profile (tests that set their own count keep it).
FUZZ_EXAMPLES = {"default": 200, "ci": 5000}
settings.register_profile("default", max_examples=FUZZ_EXAMPLES["default"], deadline=None)
settings.register_profile(
    "ci", max_examples=FUZZ_EXAMPLES["ci"], deadline=None, derandomize=True, database=None
)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(HYPOTHESIS_PROFILE)


@pytest.fixture(scope="session", autouse=True)
def moto_behaves_like_aws() -> None:
    """moto's DynamoDB writes are atomic per item and a secret read without a stage answers
    AWSCURRENT, as on AWS (see local/moto_fidelity.py)."""
    make_moto_behave_like_aws()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region for every test; never a real AWS endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CognitoTokenProxy")


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's in-process mock of every AWS service."""
    with mock_aws():
        yield


@pytest.fixture
def token_table(aws: None) -> Any:
    """The token cache table, created from template.yaml's TokenTable definition."""
    create_token_table(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME)


@pytest.fixture(scope="module")
def moto() -> Iterator[RunningMotoServer]:
    """moto's server on loopback, one per test module (its resources stay the module's own)."""
    server = start_moto_server()
    yield server
    server.stop()
