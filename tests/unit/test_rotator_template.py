"""template.yaml's rotation, secret and WAF resources, checked structurally."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_template import default_template, resource
from rotator.settings import MAX_VALUE_LENGTH, MIN_VALUE_LENGTH, RotatorSettings


def _rules(parameters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The origin rules (the rule group's) as CloudFormation resolves them with these
    parameter values."""
    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name="test", region="eu-west-1"),
        parameters={"CognitoDomain": "auth.example.com", **(parameters or {})},
    )
    resolver.register("OriginPatternSet", "test|set-id|REGIONAL", Arn="arn:set", Id="set-id")
    rules: list[dict[str, Any]] = resolver.resolve(
        resource("OriginRuleGroup")["Properties"]["Rules"]
    )
    return rules


def _statements(parameters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return list(_rules(parameters)[0]["Statement"]["AndStatement"]["Statements"])


def _transformations(statement: dict[str, Any]) -> list[tuple[int, str]]:
    return [(t["Priority"], t["Type"]) for t in statement["TextTransformations"]]


def _origin_not_accepted(statement: dict[str, Any]) -> None:
    """The x-origin-verify header matches nothing in OriginPatternSet (untransformed)."""
    reference = statement["NotStatement"]["Statement"]["RegexPatternSetReferenceStatement"]
    assert reference["Arn"] == "arn:set"
    assert reference["FieldToMatch"] == {"SingleHeader": {"Name": "x-origin-verify"}}
    assert _transformations(reference) == [(0, "NONE")]


def _token_path(statement: dict[str, Any]) -> None:
    """The URI path starts with /oauth2/token after URL_DECODE then LOWERCASE."""
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"UriPath": {}}
    assert match["PositionalConstraint"] == "STARTS_WITH"
    assert match["SearchString"] == "/oauth2/token"
    assert _transformations(match) == [(0, "URL_DECODE"), (1, "LOWERCASE")]


def test_the_rule_group_counts_by_default_and_blocks_with_custom_403_bodies() -> None:
    # GIVEN the rule group that holds the origin rules
    group = resource("OriginRuleGroup")["Properties"]
    default_action = default_template()["Parameters"]["OriginRuleAction"]["Default"]
    block = {
        "Block": {
            "CustomResponse": {
                "ResponseCode": 403,
                "CustomResponseBodyKey": "origin_verify_required",
            }
        }
    }
    block_api = {
        "Block": {
            "CustomResponse": {
                "ResponseCode": 403,
                "CustomResponseBodyKey": "origin_verify_required_api",
            }
        }
    }

    # THEN it is regional; both rules only count at the default OriginRuleAction (a first
    # deployment refuses nobody) and block with a custom 403 under Block
    assert group["Scope"] == "REGIONAL"
    assert default_action == "Count"
    assert [rule["Action"] for rule in _rules()] == [{"Count": {}}, {"Count": {}}]
    assert [rule["Action"] for rule in _rules({"OriginRuleAction": "Block"})] == [
        block,
        block_api,
    ]
    # AND the bodies are the group's own, as rules inside a group need
    bodies = group["CustomResponseBodies"]
    assert bodies["origin_verify_required"]["ContentType"] == "APPLICATION_JSON"
    assert '"error":"access_denied"' in bodies["origin_verify_required"]["Content"]
    assert '"__type":"ForbiddenException"' in bodies["origin_verify_required_api"]["Content"]
    for visibility in [group["VisibilityConfig"], *(r["VisibilityConfig"] for r in group["Rules"])]:
        assert visibility["SampledRequestsEnabled"] is True
        assert visibility["CloudWatchMetricsEnabled"] is True


def test_the_stacks_web_acl_runs_the_rule_group_as_it_is_only_with_web_acl_create() -> None:
    # GIVEN the web ACL, its association and the WebAcl parameter
    template = default_template()
    acl = resource("OriginWebAcl")
    parameter = template["Parameters"]["WebAcl"]

    # THEN both exist only with WebAcl Create (the default); External creates neither
    assert parameter["Default"] == "Create"
    assert set(parameter["AllowedValues"]) == {"Create", "External"}
    assert template["Conditions"]["CreatesWebAcl"] == {"Fn::Equals": [{"Ref": "WebAcl"}, "Create"]}
    assert acl["Condition"] == resource("OriginWebAclAssociation")["Condition"] == "CreatesWebAcl"
    assert template["Outputs"]["WebAclArn"]["Condition"] == "CreatesWebAcl"
    assert "Condition" not in template["Outputs"]["OriginRuleGroupArn"]
    assert "Condition" not in resource("OriginRuleGroup")
    # AND the web ACL allows by default and has one rule: the rule group, its own actions in
    # effect (OverrideAction None, no rule action overrides)
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"
    assert props["DefaultAction"] == {"Allow": {}}
    assert props["Rules"] == [
        {
            "Name": "origin-verify",
            "Priority": 0,
            "OverrideAction": {"None": {}},
            "Statement": {
                "RuleGroupReferenceStatement": {"Arn": {"Fn::GetAtt": ["OriginRuleGroup", "Arn"]}}
            },
            "VisibilityConfig": {
                "SampledRequestsEnabled": True,
                "CloudWatchMetricsEnabled": True,
                "MetricName": "origin-verify",
            },
        }
    ]


def test_by_default_the_token_rule_covers_client_credentials_requests_only() -> None:
    # GIVEN the token endpoint rule at the default OriginRuleCoverage (ClientCredentials)
    assert default_template()["Parameters"]["OriginRuleCoverage"]["Default"] == "ClientCredentials"
    path, grant, origin = _statements()

    # THEN it is the AND of: the path, a client_credentials grant, no accepted origin value
    _token_path(path)
    # the body (oversize counts as a match) or the query string contains
    # grant_type=client_credentials after URL_DECODE then LOWERCASE
    body_match, query_match = (s["ByteMatchStatement"] for s in grant["OrStatement"]["Statements"])
    assert body_match["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    assert query_match["FieldToMatch"] == {"QueryString": {}}
    for match in (body_match, query_match):
        assert match["PositionalConstraint"] == "CONTAINS"
        assert match["SearchString"] == "grant_type=client_credentials"
        assert _transformations(match) == [(0, "URL_DECODE"), (1, "LOWERCASE")]
    _origin_not_accepted(origin)


def test_covering_all_token_requests_needs_neither_the_body_nor_the_query() -> None:
    # GIVEN the token endpoint rule with OriginRuleCoverage AllTokenRequests
    path, origin = _statements({"OriginRuleCoverage": "AllTokenRequests"})

    # THEN it is the path and the origin header only
    _token_path(path)
    _origin_not_accepted(origin)


def test_get_client_token_needs_an_accepted_value_under_either_coverage() -> None:
    for coverage in ("ClientCredentials", "AllTokenRequests"):
        # GIVEN the second rule
        rule = _rules({"OriginRuleCoverage": coverage})[1]
        operation, origin = rule["Statement"]["AndStatement"]["Statements"]

        # THEN it matches the GetClientToken operation by either header, lower-cased, exactly
        target, name = (s["ByteMatchStatement"] for s in operation["OrStatement"]["Statements"])
        assert rule["Name"] == "get-client-token-requires-origin-verify"
        assert target["FieldToMatch"] == {"SingleHeader": {"Name": "x-amz-target"}}
        assert target["SearchString"] == "awscognitoidentityproviderservice.getclienttoken"
        assert name["FieldToMatch"] == {"SingleHeader": {"Name": "x-amzn-cognito-operation-name"}}
        assert name["SearchString"] == "getclienttoken"
        for match in (target, name):
            assert match["PositionalConstraint"] == "EXACTLY"
            assert _transformations(match) == [(0, "LOWERCASE")]
        # AND without an accepted origin value
        _origin_not_accepted(origin)


def test_the_web_acl_is_associated_with_the_pool_of_the_stacks_region_and_account() -> None:
    association = resource("OriginWebAclAssociation")["Properties"]
    assert association == {
        "ResourceArn": {
            "Fn::Sub": (
                "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}"
                ":userpool/${UserPoolId}"
            )
        },
        "WebACLArn": {"Fn::GetAtt": ["OriginWebAcl", "Arn"]},
    }


def test_the_pattern_set_starts_with_the_current_value_anchored() -> None:
    props = resource("OriginPatternSet")["Properties"]
    assert props["Scope"] == "REGIONAL"
    assert props["RegularExpressionList"] == [
        {"Fn::Sub": "^{{resolve:secretsmanager:${OriginSecret}:SecretString}}$"}
    ]


def test_the_secret_is_a_long_alphanumeric_random_string_rotated_by_the_rotator() -> None:
    # GIVEN the secret, its rotation schedule and the invoke permission
    generate = resource("OriginSecret")["Properties"]["GenerateSecretString"]
    schedule = resource("OriginSecretRotation")["Properties"]
    permission = resource("RotatorInvokePermission")["Properties"]
    days = default_template()["Parameters"]["RotationDays"]

    # THEN the value is plain alphanumeric, >= 48 characters, fits a WAF regex
    assert MIN_VALUE_LENGTH <= generate["PasswordLength"] <= MAX_VALUE_LENGTH
    assert generate["ExcludePunctuation"] is True
    assert generate["IncludeSpace"] is False
    assert "SecretStringTemplate" not in generate
    # AND Secrets Manager rotates it with the rotator every RotationDays (default 30)
    assert schedule["SecretId"] == {"Ref": "OriginSecret"}
    assert schedule["RotationLambdaARN"] == {"Fn::GetAtt": ["RotatorFunction", "Arn"]}
    assert schedule["RotationRules"] == {
        "ScheduleExpression": {
            "Fn::If": ["RotatesDaily", "rate(1 day)", {"Fn::Sub": "rate(${RotationDays} days)"}]
        }
    }
    assert days["Default"] == 30
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceArn"] == {"Ref": "OriginSecret"}
    assert permission["FunctionName"] == {"Fn::GetAtt": ["RotatorFunction", "Arn"]}


def test_the_rotator_may_touch_only_its_secret_and_its_pattern_set() -> None:
    # GIVEN the rotator's inline policy
    function = resource("RotatorFunction")["Properties"]
    statements = {s["Sid"]: s for s in function["Policies"][0]["Statement"]}

    # THEN every action is named (no wildcard) and every resource is the one it needs
    for statement in statements.values():
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in action for action in actions)
        assert statement["Effect"] == "Allow"
    assert statements["RotateOriginSecret"]["Action"] == [
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:UpdateSecretVersionStage",
    ]
    assert statements["RotateOriginSecret"]["Resource"] == {"Ref": "OriginSecret"}
    assert statements["RecordRotationTime"]["Action"] == "secretsmanager:TagResource"
    assert statements["RecordRotationTime"]["Resource"] == {"Ref": "OriginSecret"}
    assert statements["RecordRotationTime"]["Condition"] == {
        "ForAllValues:StringEquals": {
            "aws:TagKeys": ["origin-verify:current-version", "origin-verify:current-since"]
        }
    }
    # (GetRandomPassword has no resource type: "*" is the only possible resource)
    assert statements["GenerateRandomValues"]["Action"] == "secretsmanager:GetRandomPassword"
    assert statements["MoveThePatternSet"]["Action"] == [
        "wafv2:GetRegexPatternSet",
        "wafv2:UpdateRegexPatternSet",
    ]
    assert statements["MoveThePatternSet"]["Resource"] == {
        "Fn::GetAtt": ["OriginPatternSet", "Arn"]
    }
    assert set(statements) == {
        "RotateOriginSecret",
        "RecordRotationTime",
        "GenerateRandomValues",
        "MoveThePatternSet",
    }


def test_the_rotator_environment_matches_its_settings_and_the_prune_is_scheduled() -> None:
    # GIVEN the function
    function = resource("RotatorFunction")["Properties"]
    variables = function["Environment"]["Variables"]
    setting_names = {f.name.upper() for f in fields(RotatorSettings)}
    prune = function["Events"]["Prune"]

    # THEN every variable it sets (but Powertools') is a setting, and the required ones are set
    assert function["Handler"] == "rotator.app.lambda_handler"
    assert set(variables) - {"POWERTOOLS_SERVICE_NAME"} <= setting_names
    assert {"ORIGIN_SECRET_ARN", "PATTERN_SET_NAME", "PATTERN_SET_ID"} <= set(variables)
    assert variables["PATTERN_SET_ID"] == {"Fn::GetAtt": ["OriginPatternSet", "Id"]}
    assert variables["PRUNE_GRACE_SECONDS"] == {"Ref": "PruneGraceSeconds"}
    # AND a schedule sends it the prune event every 15 minutes
    assert prune["Type"] == "Schedule"
    assert prune["Properties"]["Schedule"] == "rate(15 minutes)"
    assert prune["Properties"]["Input"] == '{"action": "prune"}'


def test_the_grace_period_default_is_well_above_the_proxies_secret_max_age() -> None:
    parameters = default_template()["Parameters"]
    grace = parameters["PruneGraceSeconds"]["Default"]
    max_age = parameters["OriginSecretMaxAgeSeconds"]
    assert grace >= 10 * max_age["Default"]
    assert grace > max_age["MaxValue"]
