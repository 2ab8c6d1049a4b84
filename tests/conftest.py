"""Shared fixtures: fake AWS credentials, moto's in-process mock, and the token table built
from template.yaml's own definition (so the tests cannot drift from the template)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.moto_fidelity import make_dynamodb_writes_atomic
from local.template import dynamodb_create_table_kwargs, dynamodb_ttl_attribute

REGION = "eu-west-1"
TABLE_NAME = "token-cache-test"


@pytest.fixture(scope="session", autouse=True)
def atomic_dynamodb_writes() -> None:
    """moto's DynamoDB gets the per-item write atomicity real DynamoDB has (see the module)."""
    make_dynamodb_writes_atomic()


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
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(**dynamodb_create_table_kwargs(TABLE_NAME))
    client.update_time_to_live(
        TableName=TABLE_NAME,
        TimeToLiveSpecification={"AttributeName": dynamodb_ttl_attribute(), "Enabled": True},
    )
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE_NAME)
