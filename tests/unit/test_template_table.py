"""The test table comes from template.yaml itself."""

from __future__ import annotations

from typing import Any

import boto3

from local.cloudformation_template import (
    dynamodb_create_table_kwargs,
    dynamodb_ttl_attribute,
    resource,
)
from tests.conftest import REGION, TABLE_NAME


def test_token_table_is_built_from_the_template(token_table: Any) -> None:
    # GIVEN the table the fixtures created from template.yaml
    client = boto3.client("dynamodb", region_name=REGION)
    described = client.describe_table(TableName=TABLE_NAME)["Table"]
    props = resource("TokenTable")["Properties"]

    # THEN its key schema, billing mode and TTL attribute are the template's
    assert described["KeySchema"] == props["KeySchema"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client.describe_time_to_live(TableName=TABLE_NAME)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == dynamodb_ttl_attribute() == "ttl"
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert dynamodb_create_table_kwargs("x")["TableName"] == "x"
