"""template.yaml read as CloudFormation reads it on a first deployment: the creation order of
the rotation schedule, names within WAF's limits for the longest stack name, the user pool in
the stack's own Region, the Rules section, the rotation schedule for every allowed
RotationDays, the parameters' patterns, the KMS key policy, statement by statement, and what
an upgrade from the inline WAF rules replaces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_resources import _rotation_rules
from local.cloudformation_template import default_template, resource

REGION = "eu-west-1"
ACCOUNT = "123456789012"
#: CloudFormation's longest stack name: a letter, then up to 127 letters, digits or hyphens.
LONGEST_STACK_NAME = "s" + "-a1" * 42 + "b"
#: AWS::WAFv2 names (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-wafv2-webacl.html)
WAF_NAME = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
#: VisibilityConfig metric names: 1 to 128 of A-Z a-z 0-9 - _, not WAF's reserved ones.
WAF_METRIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CANARY = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:canary-client-AbCdEf"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def resolver(stack_name: str = "cognito-token-proxy", **parameters: Any) -> IntrinsicResolver:
    """The template's intrinsics as CloudFormation resolves them, WAF resources registered the
    way CloudFormation returns them (Ref "name|id|scope")."""
    resolving = IntrinsicResolver(
        default_template(),
        StackContext(stack_name=stack_name, region=REGION, account_id=ACCOUNT),
        parameters={
            "CognitoDomain": "auth.example.com",
            "UserPoolId": f"{REGION}_Ab1",
            **parameters,
        },
        dynamic_references=lambda _service, _reference: "CurrentOriginValue0123456789",
    )
    props = default_template()["Resources"]
    waf_resources = ("OriginPatternSet", "OriginRuleGroup", "OriginWebAcl")
    for logical_id in waf_resources:
        name = resolving.resolve(props[logical_id]["Properties"]["Name"])
        resolving.register(
            logical_id,
            f"{name}|0123abcd-0000-4000-8000-000000000000|REGIONAL",
            Arn=f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/x/{name}/0123abcd",
            Id="0123abcd-0000-4000-8000-000000000000",
        )
    for logical_id in props.keys() - set(waf_resources):
        resolving.register(logical_id, f"{stack_name}-{logical_id}", Arn=f"arn:{logical_id}")
    return resolving


# ---------------------------------------------------------------------- creation order
def _references(node: Any) -> Iterator[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else str(value).split(".")[0]
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    yield name.split(".")[0]
                if not isinstance(value, str):
                    yield from _references(value[1])
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def dependency_graph() -> dict[str, set[str]]:
    """Resource -> the resources CloudFormation creates before it (direct dependencies)."""
    resources = default_template()["Resources"]
    graph: dict[str, set[str]] = {}
    for logical_id, spec in resources.items():
        depends_on = spec.get("DependsOn") or []
        explicit = {depends_on} if isinstance(depends_on, str) else set(depends_on)
        implicit = set(_references(spec.get("Properties") or {}))
        graph[logical_id] = (explicit | implicit) & set(resources)
    return graph


def created_before(graph: dict[str, set[str]], logical_id: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[logical_id])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph[current])
    return seen


def test_the_rotation_schedule_is_created_after_everything_its_test_invocation_touches() -> None:
    # GIVEN the template's dependency graph (DependsOn, Ref, Fn::GetAtt, Fn::Sub)
    graph = dependency_graph()

    # WHEN the rotation schedule is created, Secrets Manager at once invokes testSecret
    before = created_before(graph, "OriginSecretRotation")

    # THEN the function's log group and invoke permission already exist (else Lambda creates
    # the group for that invocation and RotatorLogs fails with "already exists"), and so do
    # the function, the secret and the pattern set it reads
    assert {
        "RotatorLogs",
        "RotatorInvokePermission",
        "RotatorFunction",
        "OriginSecret",
        "OriginPatternSet",
    } <= before
    # AND nothing waits for the schedule: it is among the last resources created
    assert not any("OriginSecretRotation" in deps for deps in graph.values())
    assert "OriginSecretRotation" not in created_before(graph, "RotatorLogs")


# ---------------------------------------------------------------------- names and Region
def test_waf_names_fit_wafs_limits_for_the_longest_stack_name() -> None:
    # GIVEN a stack with CloudFormation's longest name
    assert len(LONGEST_STACK_NAME) == 128
    assert re.fullmatch(r"[A-Za-z][-A-Za-z0-9]{0,127}", LONGEST_STACK_NAME)
    resolving = resolver(LONGEST_STACK_NAME)
    props = default_template()["Resources"]

    # WHEN the WAF resources' names and metric names are resolved
    pattern_set = resolving.resolve(props["OriginPatternSet"]["Properties"])
    group = resolving.resolve(props["OriginRuleGroup"]["Properties"])
    acl = resolving.resolve(props["OriginWebAcl"]["Properties"])
    rules = [*group["Rules"], *acl["Rules"]]
    metric_names = [group["VisibilityConfig"]["MetricName"]] + [
        rule["VisibilityConfig"]["MetricName"] for rule in group["Rules"]
    ]
    acl_metric_names = [acl["VisibilityConfig"]["MetricName"]] + [
        rule["VisibilityConfig"]["MetricName"] for rule in acl["Rules"]
    ]

    # THEN every one fits WAF's patterns and 128-character limits
    for name in (pattern_set["Name"], group["Name"], acl["Name"], *(r["Name"] for r in rules)):
        assert WAF_NAME.fullmatch(name), name
    for metrics in (metric_names, acl_metric_names):
        for metric in metrics:
            assert WAF_METRIC_NAME.fullmatch(metric), metric
            assert metric not in ("All", "Default_Action")
        assert len(set(metrics)) == len(metrics)

    # AND the rotator is told the pattern set's real name
    rotator = resolving.resolve(props["RotatorFunction"]["Properties"]["Environment"])
    assert rotator["Variables"]["PATTERN_SET_NAME"] == pattern_set["Name"]
    # AND the dashboard's WAF widget reads the rule group's and its rules' metrics by those names
    body = json.loads(resolving.resolve(props["Dashboard"]["Properties"]["DashboardBody"]))
    waf_rows = [
        row
        for widget in body["widgets"]
        for row in widget["properties"].get("metrics", [])
        if row[0] == "AWS/WAFV2"
    ]
    assert waf_rows
    for row in waf_rows:
        dims = dict(zip(row[2:-1:2], row[3:-1:2], strict=True))
        assert dims["RuleGroup"] == group["VisibilityConfig"]["MetricName"]
        assert dims["Rule"] in metric_names[1:]
        assert dims["Region"] == REGION


def test_the_user_pool_is_named_by_its_id_and_its_arn_is_the_stacks_region_and_account() -> None:
    # GIVEN the UserPoolId parameter
    spec = default_template()["Parameters"]["UserPoolId"]
    pattern = re.compile(spec["AllowedPattern"])

    # THEN pool IDs are accepted, ARNs and other shapes refused with a clear constraint
    for good in ("eu-west-1_AbCdEf123", "us-gov-west-1_abc", "ap-southeast-2_X9"):
        assert pattern.fullmatch(good), good
    for bad in (
        "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbC",
        "AbCdEf123",
        "eu-west-1_",
        "eu-west-1_Ab-Cd",
        "",
    ):
        assert not pattern.fullmatch(bad), bad
    assert "not its ARN" in spec["ConstraintDescription"]

    # AND the association and the output name the pool in the stack's own partition, Region
    # and account
    resolving = resolver(UserPoolId="us-east-1_Zz9")
    association = resolving.resolve(resource("OriginWebAclAssociation")["Properties"])
    output = resolving.resolve(default_template()["Outputs"]["UserPoolArn"]["Value"])
    expected = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/us-east-1_Zz9"
    assert association["ResourceArn"] == output == expected


def _rule_holds(rule: Mapping[str, Any], **parameters: str) -> bool:
    """A Rules entry as CloudFormation evaluates it before creating anything."""
    resolving = resolver(**parameters)
    if "RuleCondition" in rule and not resolving.resolve(rule["RuleCondition"]):
        return True
    return all(resolving.resolve(assertion["Assert"]) for assertion in rule["Assertions"])


def test_the_canary_key_rule_refuses_a_key_without_a_canary_secret() -> None:
    # GIVEN the Rules section (functions nest only Ref and rule functions, as AWS allows)
    rules = default_template()["Rules"]
    rule = rules["CanaryKeyNeedsCanarySecret"]
    allowed = {"Fn::Not", "Fn::Equals", "Ref", "Fn::And", "Fn::Or", "Fn::Contains"}

    def functions(node: Any) -> Iterator[str]:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key.startswith("Fn::") or key == "Ref":
                    yield key
                yield from functions(value)
        elif isinstance(node, list):
            for item in node:
                yield from functions(item)

    assert set(functions(rules)) <= allowed
    assert "CanaryClientSecretArn" in rule["Assertions"][0]["AssertDescription"]

    # WHEN / THEN only a key without a canary secret is refused
    assert _rule_holds(rule)
    assert _rule_holds(rule, CanaryClientSecretArn=CANARY)
    assert _rule_holds(rule, CanaryClientSecretArn=CANARY, CanaryClientSecretKmsKeyArn=KEY)
    assert not _rule_holds(rule, CanaryClientSecretKmsKeyArn=KEY)


# ---------------------------------------------------------------------- the rotation schedule
RATE = re.compile(r"^rate\((?:(1) day|([1-9][0-9]*) days)\)$")


def test_every_allowed_rotation_days_value_renders_a_valid_schedule() -> None:
    # GIVEN every value RotationDays allows
    spec = default_template()["Parameters"]["RotationDays"]
    schedule = resource("OriginSecretRotation")["Properties"]["RotationRules"]
    days = range(int(spec["MinValue"]), int(spec["MaxValue"]) + 1)
    assert days[0] == 1

    for value in days:
        # WHEN CloudFormation resolves the schedule
        expression = resolver(RotationDays=str(value)).resolve(schedule)["ScheduleExpression"]

        # THEN it is Secrets Manager's rate: singular for one day, plural for more
        match = RATE.fullmatch(expression)
        assert match, expression
        assert int(match.group(1) or match.group(2)) == value
        assert (value == 1) == (match.group(1) is not None), expression
        # AND the local stack reads the same interval from it
        assert _rotation_rules(resolver(RotationDays=str(value)), default_template()) == {
            "AutomaticallyAfterDays": value
        }


# ---------------------------------------------------------------------- parameter patterns
@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        (
            "CanaryClientSecretArn",
            [
                "",
                CANARY,
                "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:a/b-c_d-Zz9Yy8",
            ],
            [
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders/canary",
                "canary-client",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/canary",
                f" {CANARY}",
            ],
        ),
        (
            "CanaryClientSecretKmsKeyArn",
            [
                "",
                KEY,
                "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            ],
            [
                "arn:aws:kms:eu-west-1:123456789012:alias/canary",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                "alias/canary",
            ],
        ),
    ],
)
def test_canary_parameters_take_only_complete_arns(
    parameter: str, good: list[str], bad: list[str]
) -> None:
    spec = default_template()["Parameters"][parameter]
    pattern = re.compile(spec["AllowedPattern"])
    assert spec["Default"] == ""
    assert spec["ConstraintDescription"].startswith("empty, or")
    for value in good:
        assert pattern.fullmatch(value), value
    for value in bad:
        assert not pattern.fullmatch(value), value


def test_the_rule_counts_by_default_and_covers_client_credentials_requests_by_default() -> None:
    parameters = default_template()["Parameters"]
    assert parameters["OriginRuleAction"]["Default"] == "Count"
    assert set(parameters["OriginRuleAction"]["AllowedValues"]) == {"Count", "Block"}
    assert parameters["OriginRuleCoverage"]["Default"] == "ClientCredentials"
    assert set(parameters["OriginRuleCoverage"]["AllowedValues"]) == {
        "ClientCredentials",
        "AllTokenRequests",
    }


# ---------------------------------------------------------------------- the KMS key policy
def key_policy() -> dict[str, dict[str, Any]]:
    statements = resolver().resolve(resource("TokenTableKey")["Properties"]["KeyPolicy"])
    return {statement["Sid"]: statement for statement in statements["Statement"]}


def _actions(statement: Mapping[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _grants(statement: Mapping[str, Any], action: str) -> bool:
    return any(re.fullmatch(a.replace("*", ".*"), action) for a in _actions(statement))


def test_only_the_proxy_role_may_use_the_key_and_only_through_dynamodb() -> None:
    # GIVEN the key policy, resolved
    policy = key_policy()
    root = f"arn:aws:iam::{ACCOUNT}:root"
    via_dynamodb = {
        "kms:ViaService": f"dynamodb.{REGION}.amazonaws.com",
        "kms:CallerAccount": ACCOUNT,
    }

    # THEN every statement allows, and the statements are exactly these four
    assert set(policy) == {
        "KeyAdministrationWithoutDataAccess",
        "LetDynamoDBCreateTheTableGrant",
        "TokenProxyUsesTheKeyThroughDynamoDB",
        "DynamoDBDescribesTheKey",
    }
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in policy.values())

    # AND the cryptographic operations are granted to the proxy's role alone, through DynamoDB
    crypto = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom")
    for sid, statement in policy.items():
        for action in crypto:
            if _grants(statement, action):
                assert sid == "TokenProxyUsesTheKeyThroughDynamoDB", (sid, action)
    proxy = policy["TokenProxyUsesTheKeyThroughDynamoDB"]
    assert proxy["Principal"] == {"AWS": "arn:TokenProxyRole"}
    assert proxy["Condition"] == {"StringEquals": via_dynamodb}

    # AND grants are created only through DynamoDB, for an AWS resource (the table), or by
    # the proxy's role through DynamoDB; nobody may create one directly
    for sid, statement in policy.items():
        if _grants(statement, "kms:CreateGrant"):
            assert sid in ("LetDynamoDBCreateTheTableGrant", "TokenProxyUsesTheKeyThroughDynamoDB")
    table_grant = policy["LetDynamoDBCreateTheTableGrant"]
    assert table_grant["Principal"] == {"AWS": root}
    assert _actions(table_grant) == {"kms:DescribeKey", "kms:CreateGrant"}
    assert table_grant["Condition"] == {
        "StringEquals": via_dynamodb,
        "Bool": {"kms:GrantIsForAWSResource": True},
    }


def test_administrators_can_manage_the_key_and_its_policy_but_nothing_else() -> None:
    # GIVEN the account's administration statement
    admin = key_policy()["KeyAdministrationWithoutDataAccess"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert "Condition" not in admin

    # THEN it keeps kms:PutKeyPolicy (KMS's lockout safety check requires that the creating
    # principal can update the policy) and what CloudFormation needs to update and delete the
    # key, but no cryptographic operation and no grant
    for needed in (
        "kms:PutKeyPolicy",
        "kms:GetKeyPolicy",
        "kms:DescribeKey",
        "kms:EnableKeyRotation",
        "kms:UpdateKeyDescription",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:ScheduleKeyDeletion",
        "kms:RevokeGrant",
    ):
        assert _grants(admin, needed), needed
    for refused in (
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptFrom",
        "kms:CreateGrant",
        "kms:CreateKey",
        "kms:ImportKeyMaterial",
        "kms:ReplicateKey",
    ):
        assert not _grants(admin, refused), refused
    assert "kms:Create*" not in _actions(admin)
    assert "kms:Put*" not in _actions(admin)


def test_dynamodb_may_describe_the_key_as_in_awss_own_dynamodb_key_policy() -> None:
    statement = key_policy()["DynamoDBDescribesTheKey"]
    assert statement["Principal"] == {"Service": "dynamodb.amazonaws.com"}
    assert _actions(statement) == {"kms:Describe*", "kms:Get*", "kms:List*"}
    assert not _grants(statement, "kms:Decrypt")
    assert not _grants(statement, "kms:CreateGrant")


# ---------------------------------------------------------------------- upgrading
#: What the template deployed before the rule group had for the resources an upgrade must keep:
#: the web ACL's create-only properties, the association and the pattern set (whose list the
#: rotator owns: any change to its definition would make CloudFormation write it back).
BEFORE_RULE_GROUP = {
    "OriginWebAcl": {"Name": {"Ref": "AWS::StackName"}, "Scope": "REGIONAL"},
    "OriginWebAclAssociation": {
        "ResourceArn": {
            "Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}"
            ":userpool/${UserPoolId}"
        },
        "WebACLArn": {"Fn::GetAtt": ["OriginWebAcl", "Arn"]},
    },
    "OriginPatternSet": {
        "Name": {"Ref": "AWS::StackName"},
        "Description": "Accepted x-origin-verify values, managed by the rotator after creation",
        "Scope": "REGIONAL",
        "RegularExpressionList": [
            {"Fn::Sub": "^{{resolve:secretsmanager:${OriginSecret}:SecretString}}$"}
        ],
    },
}
SCHEMAS = Path(__file__).resolve().parents[2] / ".venv-tools"


def create_only_properties(resource_type: str) -> set[str]:
    """The properties whose change replaces a resource, from the type's schema in the
    CloudFormation registry (cfn-lint ships the schemas)."""
    schemas = sorted(SCHEMAS.glob("lib/python*/site-packages/cfnlint/data/schemas/resources"))
    if not schemas:
        pytest.fail("cfn-lint is missing: run `make install` (make test does it)")
    for path in schemas[0].glob("*.json"):
        text = path.read_text(encoding="utf-8")
        if f'"typeName": "{resource_type}"' in text:
            return {
                p.removeprefix("/properties/") for p in json.loads(text)["createOnlyProperties"]
            }
    raise AssertionError(f"no schema for {resource_type}")


def test_an_upgrade_from_the_inline_rules_replaces_nothing_the_pool_depends_on() -> None:
    # GIVEN the web ACL, its association and the pattern set as deployed before the rule group
    resources = default_template()["Resources"]
    acl, association, pattern_set = (
        resources[name] for name in ("OriginWebAcl", "OriginWebAclAssociation", "OriginPatternSet")
    )

    # WHEN CloudFormation compares this template's definitions with those (WebAcl Create, the
    # default, creates all three)
    replaced_by = {
        name: create_only_properties(resources[name]["Type"]) for name in BEFORE_RULE_GROUP
    }

    # THEN the web ACL keeps every property whose change would replace it: it is updated in
    # place, and its ARN (which the association names) stays
    assert replaced_by["OriginWebAcl"] == {"Name", "Scope"}
    for name in replaced_by["OriginWebAcl"]:
        assert acl["Properties"][name] == BEFORE_RULE_GROUP["OriginWebAcl"][name]
    # AND the association and the pattern set are unchanged, so CloudFormation leaves them
    # alone: the pool stays associated, and the values the rotator wrote stay accepted
    assert association["Properties"] == BEFORE_RULE_GROUP["OriginWebAclAssociation"]
    assert pattern_set["Properties"] == BEFORE_RULE_GROUP["OriginPatternSet"]
    assert "Condition" not in pattern_set
    assert acl["Condition"] == association["Condition"] == "CreatesWebAcl"
    assert default_template()["Parameters"]["WebAcl"]["Default"] == "Create"
