"""The local stack's AWS side, created in a moto server from template.yaml's own definitions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_resources import LocalAwsResources, bootstrap, cfn_to_api_shape
from local.cloudformation_template import default_template, resource
from local.moto_server import RunningMotoServer, aws_client
from token_proxy.settings import Settings

ISSUER_TOKEN_URL = "http://127.0.0.1:9/oauth2/token"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def stack(moto: RunningMotoServer) -> LocalAwsResources:
    return bootstrap(moto.endpoint_url, cognito_token_url=ISSUER_TOKEN_URL, stack_name="boot")


def client(moto: RunningMotoServer, service: str) -> Any:
    return aws_client(service, moto.endpoint_url, REGION)


def without_nones(node: Any) -> Any:
    """moto's GetWebACL adds null optional fields; the template omits them."""
    if isinstance(node, dict):
        return {k: without_nones(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [without_nones(item) for item in node]
    return node


def test_the_table_has_the_templates_key_schema_billing_ttl_and_encryption(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the bootstrapped stack / WHEN its table is described
    dynamodb = client(moto, "dynamodb")
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    props = resource("TokenTable")["Properties"]

    # THEN it is the template's table, encrypted with the stack's KMS key
    assert stack.table_name == "boot-TokenTable"
    assert table["TableArn"] == stack.table_arn
    assert table["KeySchema"] == props["KeySchema"]
    assert table["AttributeDefinitions"] == props["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}
    assert table["SSEDescription"]["SSEType"] == "KMS"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert stack.kms_key_id in table["SSEDescription"]["KMSMasterKeyArn"]


def test_the_kms_key_has_the_templates_description_rotation_and_policy(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the bootstrapped key / WHEN described
    kms = client(moto, "kms")
    metadata = kms.describe_key(KeyId=stack.kms_key_id)["KeyMetadata"]
    policy = json.loads(kms.get_key_policy(KeyId=stack.kms_key_id, PolicyName="default")["Policy"])
    props = resource("TokenTableKey")["Properties"]

    # THEN description and rotation are the template's, and the policy names the proxy role
    assert metadata["Arn"] == stack.kms_key_arn
    assert metadata["Description"] == props["Description"]
    assert kms.get_key_rotation_status(KeyId=stack.kms_key_id)["KeyRotationEnabled"] is True
    assert [s["Sid"] for s in policy["Statement"]] == [
        s["Sid"] for s in props["KeyPolicy"]["Statement"]
    ]
    assert policy["Statement"][2]["Principal"] == {
        "AWS": "arn:aws:iam::123456789012:role/boot-TokenProxyRole"
    }
    assert policy["Statement"][2]["Condition"]["StringEquals"] == {
        "kms:ViaService": "dynamodb.eu-west-1.amazonaws.com",
        "kms:CallerAccount": "123456789012",
    }


def test_the_secret_is_generated_as_the_template_asks_with_rotation_enabled(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the bootstrapped secret / WHEN read
    secrets = client(moto, "secretsmanager")
    described = secrets.describe_secret(SecretId=stack.secret_arn)
    value = secrets.get_secret_value(SecretId=stack.secret_arn)["SecretString"]

    # THEN it has the template's length, alphabet and description, one version, and rotation
    generate = resource("OriginSecret")["Properties"]["GenerateSecretString"]
    assert len(value) == generate["PasswordLength"] == 64
    assert value.isalnum()
    assert described["Name"] == stack.secret_name == "boot-OriginSecret"
    assert described["Description"] == resource("OriginSecret")["Properties"]["Description"]
    assert list(described["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    assert described["RotationEnabled"] is True
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 30}


def test_the_pattern_set_accepts_exactly_the_current_secret(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the bootstrapped pattern set / WHEN read
    secret = client(moto, "secretsmanager").get_secret_value(SecretId=stack.secret_arn)
    pattern_set = client(moto, "wafv2").get_regex_pattern_set(
        Name=stack.pattern_set_name, Scope="REGIONAL", Id=stack.pattern_set_id
    )["RegexPatternSet"]

    # THEN it holds ^<current value>$ under the template's name and description
    assert pattern_set["Name"] == stack.pattern_set_name == "boot"
    assert pattern_set["ARN"] == stack.pattern_set_arn
    assert pattern_set["Description"] == resource("OriginPatternSet")["Properties"]["Description"]
    assert pattern_set["RegularExpressionList"] == [{"RegexString": f"^{secret['SecretString']}$"}]
    assert stack.pattern_set_scope == "REGIONAL"


def template_resolver(stack: LocalAwsResources, **parameters: str) -> IntrinsicResolver:
    """The template's intrinsics resolved independently of bootstrap, the way it deploys."""
    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name=stack.stack_name, region=REGION),
        # the local stack enforces the rule (OriginRuleAction Block), as its bootstrap does
        parameters={
            "CognitoDomain": "localhost",
            "UserPoolId": stack.user_pool_id,
            "OriginRuleAction": "Block",
            **parameters,
        },
    )
    resolver.register("OriginPatternSet", "x", Arn=stack.pattern_set_arn)
    resolver.register("OriginRuleGroup", "x", Arn=stack.rule_group_arn)
    return resolver


def test_the_rule_group_is_the_templates_with_the_pattern_set_arn_resolved(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the template's rule group resolved independently of bootstrap
    props = template_resolver(stack).resolve(resource("OriginRuleGroup")["Properties"])
    expected = cfn_to_api_shape(props)

    # WHEN the created rule group is read back through the WAFv2 API
    assert stack.rule_group_arn is not None
    group = client(moto, "wafv2").get_rule_group(ARN=stack.rule_group_arn)["RuleGroup"]

    # THEN its rules, responses and actions are the template's (SearchString comes back as bytes)
    rule = without_nones(group["Rules"])[0]
    statements = rule["Statement"]["AndStatement"]["Statements"]
    assert statements[0]["ByteMatchStatement"]["SearchString"] == b"/oauth2/token"
    assert statements[2]["NotStatement"]["Statement"]["RegexPatternSetReferenceStatement"][
        "ARN"
    ] == (stack.pattern_set_arn)
    assert (
        json.loads(json.dumps(without_nones(group["Rules"]), default=bytes.decode))
        == expected["Rules"]
    )
    assert group["Name"] == "boot"
    assert group["Capacity"] == props["Capacity"] == 176
    assert group["CustomResponseBodies"] == expected["CustomResponseBodies"]
    assert group["VisibilityConfig"] == expected["VisibilityConfig"]


def test_the_web_acl_runs_the_rule_group_and_is_associated_with_a_user_pool(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the template's web ACL resolved independently of bootstrap (WebAcl Create)
    expected = cfn_to_api_shape(
        template_resolver(stack).resolve(resource("OriginWebAcl")["Properties"])
    )
    waf = client(moto, "wafv2")

    # WHEN the web ACL associated with the stack's user pool is read back
    acl = waf.get_web_acl_for_resource(ResourceArn=stack.user_pool_arn)["WebACL"]
    pool = client(moto, "cognito-idp").describe_user_pool(UserPoolId=stack.user_pool_id)

    # THEN it is the template's web ACL: its one rule references the rule group; and the pool
    # is a real (moto) user pool whose ID is the stack's UserPoolId
    assert acl["ARN"] == stack.web_acl_arn
    assert acl["Name"] == stack.web_acl_name == "boot"
    assert without_nones(acl["Rules"]) == expected["Rules"]
    assert acl["Rules"][0]["Statement"]["RuleGroupReferenceStatement"]["ARN"] == (
        stack.rule_group_arn
    )
    assert acl["DefaultAction"] == {"Allow": {}}
    assert acl["VisibilityConfig"] == expected["VisibilityConfig"]
    assert pool["UserPool"]["Arn"] == stack.user_pool_arn
    assert stack.parameters["UserPoolId"] == stack.user_pool_id


def test_the_alarms_are_the_templates_and_the_rotation_names_its_function(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the template's alarms
    alarms = {
        logical_id: spec
        for logical_id, spec in default_template()["Resources"].items()
        if spec["Type"] == "AWS::CloudWatch::Alarm"
    }

    # WHEN CloudWatch and Secrets Manager are asked
    described = client(moto, "cloudwatch").describe_alarms(AlarmNames=list(stack.alarm_names))
    secret = client(moto, "secretsmanager").describe_secret(SecretId=stack.secret_arn)

    # THEN every alarm exists under the name the template gives it, with its metrics
    by_name = {alarm["AlarmName"]: alarm for alarm in described["MetricAlarms"]}
    assert len(by_name) == len(alarms) == len(stack.alarm_names) == 6
    rate = by_name["boot-upstream-error-rate"]
    assert rate["Threshold"] == 10.0
    assert [query["Id"] for query in rate["Metrics"]] == ["rate", "calls", "errors"]
    # AND the rotation is enabled with the rotator function, as the RotationSchedule sets it
    assert secret["RotationEnabled"] is True
    assert secret["RotationLambdaARN"].endswith(":function:boot-RotatorFunction")
    # AND the stack is described as CloudFormation describes it
    kinds = {r["LogicalResourceId"]: r["ResourceType"] for r in stack.stack_resources}
    assert {k for k, kind in kinds.items() if kind == "AWS::CloudWatch::Alarm"} == set(alarms)
    assert kinds["OriginRuleGroup"] == "AWS::WAFv2::RuleGroup"
    assert stack.outputs["UserPoolArn"] == stack.user_pool_arn
    assert stack.outputs["OriginRuleGroupArn"] == stack.rule_group_arn
    assert stack.outputs["WebAclArn"] == stack.web_acl_arn
    assert stack.outputs["RotatorFunctionName"] == "boot-RotatorFunction"


def test_web_acl_external_creates_the_rule_group_only_and_the_pool_keeps_its_own_acl(
    moto: RunningMotoServer,
) -> None:
    # WHEN a stack is bootstrapped with WebAcl External
    external = bootstrap(
        moto.endpoint_url,
        cognito_token_url=ISSUER_TOKEN_URL,
        stack_name="outside",
        parameters={"WebAcl": "External"},
    )
    waf = client(moto, "wafv2")

    # THEN the stack created no web ACL of its own (no WebAclArn output, no such resources)
    kinds = {r["LogicalResourceId"] for r in external.stack_resources}
    assert {"OriginWebAcl", "OriginWebAclAssociation"}.isdisjoint(kinds)
    assert "WebAclArn" not in external.outputs
    assert "outside" not in {acl["Name"] for acl in waf.list_web_acls(Scope="REGIONAL")["WebACLs"]}
    # AND the pool's own web ACL keeps its rule and runs the rule group first
    acl = waf.get_web_acl_for_resource(ResourceArn=external.user_pool_arn)["WebACL"]
    rules = sorted(without_nones(acl["Rules"]), key=lambda rule: rule["Priority"])
    assert acl["Name"] == external.web_acl_name == "outside-existing"
    assert [rule["Name"] for rule in rules] == ["origin-verify", "block-bad-bots"]
    assert rules[0]["Statement"] == {
        "RuleGroupReferenceStatement": {"ARN": external.outputs["OriginRuleGroupArn"]}
    }
    assert rules[0]["OverrideAction"] == {"None": {}}


def test_the_handler_environments_come_from_the_template(stack: LocalAwsResources) -> None:
    # GIVEN the environments bootstrap derived from the two functions' definitions
    proxy, rotator = stack.proxy_environment, stack.rotator_environment
    aws = {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }

    # WHEN the proxy's settings are parsed from its environment
    settings = Settings.from_env(proxy)

    # THEN they name the created resources and the local issuer, with the template's defaults
    assert settings.token_table_name == stack.table_name
    assert settings.origin_secret_arn == stack.secret_arn
    assert settings.cognito_token_url == ISSUER_TOKEN_URL
    assert settings.origin_secret_max_age_seconds == 60
    assert proxy["POWERTOOLS_SERVICE_NAME"] == "token-proxy"
    assert {k: proxy[k] for k in aws} == aws
    assert rotator == {
        **aws,
        "POWERTOOLS_METRICS_NAMESPACE": "CognitoTokenProxy",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "origin-secret-rotator",
        "ORIGIN_SECRET_ARN": stack.secret_arn,
        "PATTERN_SET_NAME": stack.pattern_set_name,
        "PATTERN_SET_ID": stack.pattern_set_id,
        "PATTERN_SET_SCOPE": "REGIONAL",
        "PRUNE_GRACE_SECONDS": "900",
        "COGNITO_TOKEN_URL": ISSUER_TOKEN_URL,
        "CANARY_SECRET_ARN": "",
        "WAF_PROPAGATION_SECONDS": "0",  # the local issuer reads the web ACL on every request
    }


def test_a_given_secret_value_and_parameter_overrides(moto: RunningMotoServer) -> None:
    # GIVEN a second stack in the same endpoint with a chosen value and tunables
    value = "GivenValue0123456789"

    # WHEN it is bootstrapped
    other = bootstrap(
        moto.endpoint_url,
        cognito_token_url=ISSUER_TOKEN_URL,
        stack_name="other",
        parameters={"PruneGraceSeconds": 0, "OriginSecretMaxAgeSeconds": 5, "LogLevel": "DEBUG"},
        origin_secret_value=value,
    )

    # THEN the pattern set holds that value and the environments carry the overrides
    pattern_set = client(moto, "wafv2").get_regex_pattern_set(
        Name=other.pattern_set_name, Scope="REGIONAL", Id=other.pattern_set_id
    )["RegexPatternSet"]
    assert pattern_set["RegularExpressionList"] == [{"RegexString": f"^{value}$"}]
    assert other.rotator_environment["PRUNE_GRACE_SECONDS"] == "0"
    assert other.proxy_environment["ORIGIN_SECRET_MAX_AGE_SECONDS"] == "5"
    assert other.proxy_environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert other.table_name == "other-TokenTable"


def test_a_stack_with_the_longest_name_gets_waf_names_within_wafs_limits(
    moto: RunningMotoServer,
) -> None:
    # GIVEN CloudFormation's longest stack name (128 characters)
    stack_name = "L" + "-b2" * 42 + "c"
    assert len(stack_name) == 128

    # WHEN the stack is bootstrapped from the template
    longest = bootstrap(
        moto.endpoint_url, cognito_token_url=ISSUER_TOKEN_URL, stack_name=stack_name
    )

    # THEN WAF took its pattern set and web ACL under names of at most 128 characters, the
    # rotator knows the pattern set by its name, and the metric names fit too
    waf = client(moto, "wafv2")
    pattern_set = waf.get_regex_pattern_set(
        Name=longest.pattern_set_name, Scope="REGIONAL", Id=longest.pattern_set_id
    )["RegexPatternSet"]
    acl = waf.get_web_acl(Name=longest.web_acl_name, Scope="REGIONAL", Id=longest.web_acl_id)[
        "WebACL"
    ]
    assert pattern_set["Name"] == acl["Name"] == stack_name
    assert longest.rotator_environment["PATTERN_SET_NAME"] == stack_name
    metrics = [acl["VisibilityConfig"]["MetricName"]] + [
        rule["VisibilityConfig"]["MetricName"] for rule in acl["Rules"]
    ]
    assert all(1 <= len(name) <= 128 for name in metrics)
