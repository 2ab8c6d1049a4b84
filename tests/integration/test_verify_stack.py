"""`make verify` finds a deployed stack through CloudFormation's own API (here moto's, reached
with ``AWS_ENDPOINT_URL`` as the SDK would reach AWS): its status, parameters, outputs and
resources, and the pool's token URL from the CognitoDomain parameter."""

from __future__ import annotations

import json

import pytest

from local.moto_server import FAKE_CREDENTIALS, RunningMotoServer, aws_client
from verify.stack import StackNotFoundError, from_cloudformation

REGION = "eu-west-1"
TEMPLATE = {
    "Parameters": {
        "CognitoDomain": {"Type": "String"},
        "OriginRuleAction": {"Type": "String", "Default": "Count"},
    },
    "Resources": {
        # (moto's CloudFormation has no alarms; a topic stands in for any resource)
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "deployed-alarms"}}
    },
    "Outputs": {"TokenEndpoint": {"Value": "https://api.example/oauth2/token"}},
}


@pytest.fixture
def aws_endpoint(moto: RunningMotoServer, monkeypatch: pytest.MonkeyPatch) -> RunningMotoServer:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto


def test_a_deployed_stack_is_read_from_cloudformation(aws_endpoint: RunningMotoServer) -> None:
    # GIVEN a deployed stack (moto's CloudFormation)
    aws_client("cloudformation", aws_endpoint.endpoint_url, REGION).create_stack(
        StackName="deployed",
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "CognitoDomain", "ParameterValue": "auth.example.com"}],
    )

    # WHEN make verify finds it by name
    deployment = from_cloudformation("deployed", REGION)

    # THEN it has the stack's status, parameters, outputs, resources and the pool's token URL
    assert deployment.status == "CREATE_COMPLETE"
    assert deployment.parameter("OriginRuleAction") == "Count"
    assert deployment.output("TokenEndpoint") == "https://api.example/oauth2/token"
    assert deployment.physical_ids("AWS::SNS::Topic") == {
        "AlarmTopic": f"arn:aws:sns:{REGION}:123456789012:deployed-alarms"
    }
    assert deployment.pool_token_url == "https://auth.example.com/oauth2/token"
    assert deployment.web_acl_mode == "Create"  # a stack without the parameter: the default
    assert not deployment.is_local


def test_a_stack_that_does_not_exist_is_named(aws_endpoint: RunningMotoServer) -> None:
    with pytest.raises(StackNotFoundError, match="could not describe stack nowhere in eu-west-1"):
        from_cloudformation("nowhere", REGION)
