"""template.yaml's rotation, secret and WAF resources, checked structurally."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_template import default_template, resource
from rotator.settings import MAX_VALUE_LENGTH, MIN_VALUE_LENGTH, RotatorSettings


def _statements(resource_id: str) -> list[dict[str, Any]]:
    return list(
        resource(resource_id)["Properties"]["Rules"][0]["Statement"]["AndStatement"]["Statements"]
    )


def _rule_action(parameters: dict[str, str]) -> Any:
    """The rule's action as CloudFormation resolves it with these parameter values."""
    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name="test", region="eu-west-1"),
        parameters={"CognitoDomain": "auth.example.com", **parameters},
    )
    return resolver.resolve(resource("OriginWebAcl")["Properties"]["Rules"][0]["Action"])


def _transformations(statement: dict[str, Any]) -> list[tuple[int, str]]:
    return [(t["Priority"], t["Type"]) for t in statement["TextTransformations"]]


def test_the_web_acl_blocks_only_client_credentials_token_requests_without_an_accepted_value() -> (
    None
):
    # GIVEN the web ACL
    acl = resource("OriginWebAcl")["Properties"]
    (rule,) = acl["Rules"]

    # THEN it is regional, allows by default, and its one rule blocks with the custom 403 body
    # (at the default OriginRuleAction; Count only counts, for moving clients over)
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    block = {
        "Block": {
            "CustomResponse": {
                "ResponseCode": 403,
                "CustomResponseBodyKey": "origin_verify_required",
            }
        }
    }
    assert _rule_action({}) == block
    assert _rule_action({"OriginRuleAction": "Block"}) == block
    assert _rule_action({"OriginRuleAction": "Count"}) == {"Count": {}}
    body = acl["CustomResponseBodies"]["origin_verify_required"]
    assert body["ContentType"] == "APPLICATION_JSON"
    assert '"error":"access_denied"' in body["Content"]
    for visibility in (acl["VisibilityConfig"], rule["VisibilityConfig"]):
        assert visibility["SampledRequestsEnabled"] is True
        assert visibility["CloudWatchMetricsEnabled"] is True

    # AND the rule is the AND of exactly three conditions
    path, grant, origin = _statements("OriginWebAcl")

    # 1. the URI path starts with /oauth2/token
    assert path["ByteMatchStatement"]["FieldToMatch"] == {"UriPath": {}}
    assert path["ByteMatchStatement"]["PositionalConstraint"] == "STARTS_WITH"
    assert path["ByteMatchStatement"]["SearchString"] == "/oauth2/token"

    # 2. the body (oversize counts as a match) or the query string contains
    #    grant_type=client_credentials after URL_DECODE then LOWERCASE
    body_match, query_match = (s["ByteMatchStatement"] for s in grant["OrStatement"]["Statements"])
    assert body_match["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    assert query_match["FieldToMatch"] == {"QueryString": {}}
    for match in (body_match, query_match):
        assert match["PositionalConstraint"] == "CONTAINS"
        assert match["SearchString"] == "grant_type=client_credentials"
        assert _transformations(match) == [(0, "URL_DECODE"), (1, "LOWERCASE")]

    # 3. the x-origin-verify header matches nothing in OriginPatternSet (untransformed)
    reference = origin["NotStatement"]["Statement"]["RegexPatternSetReferenceStatement"]
    assert reference["Arn"] == {"Fn::GetAtt": ["OriginPatternSet", "Arn"]}
    assert reference["FieldToMatch"] == {"SingleHeader": {"Name": "x-origin-verify"}}
    assert _transformations(reference) == [(0, "NONE")]


def test_the_web_acl_is_associated_with_the_user_pool() -> None:
    association = resource("OriginWebAclAssociation")["Properties"]
    assert association == {
        "ResourceArn": {"Ref": "UserPoolArn"},
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
        "ScheduleExpression": {"Fn::Sub": "rate(${RotationDays} days)"}
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
