"""The local WAF evaluator: template.yaml's own web ACL running its rule group, rule group
references and overrides, then statement by statement."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_resources import cfn_to_api_shape
from local.cloudformation_template import default_template, resource
from local.waf_web_acl import (
    COGNITO_BODY_INSPECTION_LIMIT,
    Request,
    RuleMatch,
    UnsupportedStatementError,
    Verdict,
    WebAclEvaluator,
    positional_match,
    transform,
)

PATTERN_SET_ARN = "arn:aws:wafv2:eu-west-1:123456789012:regional/regexpatternset/unit/set-id"
RULE_GROUP_ARN = "arn:aws:wafv2:eu-west-1:123456789012:regional/rulegroup/unit/group-id"
CURRENT = "CurrentValue0123456789abcdefABCDEF"
PREVIOUS = "PreviousValue0123456789abcdefABCDEF"
RULE = "token-endpoint-requires-origin-verify"
API_RULE = "get-client-token-requires-origin-verify"
FORM = [("Content-Type", "application/x-www-form-urlencoded")]


def template_waf(**parameters: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's OriginWebAcl and OriginRuleGroup properties (WebAcl Create), their ARNs
    resolved, deployed with OriginRuleAction Block unless told otherwise."""
    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name="unit", region="eu-west-1"),
        parameters={
            "CognitoDomain": "localhost",
            "UserPoolId": "eu-west-1_unit",
            "OriginRuleAction": "Block",
            **parameters,
        },
    )
    resolver.register("OriginPatternSet", "n|set-id|REGIONAL", Arn=PATTERN_SET_ARN, Id="set-id")
    group: dict[str, Any] = resolver.resolve(resource("OriginRuleGroup")["Properties"])
    resolver.register("OriginRuleGroup", "unit|group-id|REGIONAL", Arn=RULE_GROUP_ARN)
    acl: dict[str, Any] = resolver.resolve(resource("OriginWebAcl")["Properties"])
    return acl, group


def template_web_acl(**parameters: str) -> dict[str, Any]:
    return template_waf(**parameters)[0]


def boto3_shaped(acl: dict[str, Any]) -> dict[str, Any]:
    """The same web ACL or rule group as boto3's GetWebACL and GetRuleGroup return it (ARN key,
    SearchString bytes, null members for what is unset, as moto returns them)."""

    def blobs(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (v.encode() if k == "SearchString" else blobs(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [blobs(item) for item in node]
        return node

    shaped: dict[str, Any] = blobs(cfn_to_api_shape(acl))
    for rule in shaped.get("Rules") or []:
        rule.setdefault("Action", None)
        rule.setdefault("OverrideAction", None)
    return shaped


def evaluator_for(shape: str = "template", **parameters: str) -> WebAclEvaluator:
    acl, group = template_waf(**parameters)
    if shape == "boto3":
        acl, group = boto3_shaped(acl), boto3_shaped(group)
    return WebAclEvaluator(
        acl,
        {PATTERN_SET_ARN: [f"^{CURRENT}$", f"^{PREVIOUS}$"]},
        rule_groups={RULE_GROUP_ARN: group},
    )


@pytest.fixture(params=["template", "boto3"])
def evaluator(request: pytest.FixtureRequest) -> WebAclEvaluator:
    return evaluator_for(request.param)


def token_request(
    body: bytes = b"grant_type=client_credentials&scope=api%2Fread",
    *,
    origin: str | None = None,
    header_name: str = "x-origin-verify",
    path: str = "/oauth2/token",
    query: str = "",
) -> Request:
    headers = list(FORM)
    if origin is not None:
        headers.append((header_name, origin))
    return Request("POST", path, query, headers, body)


def expected_block(rule: str = RULE, body_key: str = "origin_verify_required") -> Verdict:
    """The template's 403 for a rule, with that rule's custom response body (the rule group's
    bodies: a group's rules take theirs from the group)."""
    content = resource("OriginRuleGroup")["Properties"]["CustomResponseBodies"]
    return Verdict(
        "BLOCK",
        rule_name=rule,
        status=403,
        body=content[body_key]["Content"].encode(),
        content_type="application/json",
        rule_group="unit",
    )


# ---------------------------------------------------------------------- the template's rule
def test_client_credentials_without_the_header_is_blocked(evaluator: WebAclEvaluator) -> None:
    # GIVEN a client_credentials token request that did not come through the proxy
    request = token_request()

    # WHEN the web ACL evaluates it
    verdict = evaluator.evaluate(request)

    # THEN the rule blocks it with its custom 403 response
    assert verdict == expected_block()
    assert json.loads(verdict.body)["error"] == "access_denied"


@pytest.mark.parametrize("value", [CURRENT, PREVIOUS])
def test_an_accepted_value_is_allowed(evaluator: WebAclEvaluator, value: str) -> None:
    # GIVEN the request carries one of the values the pattern set accepts
    # WHEN / THEN the default action lets it through
    assert evaluator.evaluate(token_request(origin=value)) == Verdict("ALLOW")


@pytest.mark.parametrize(
    "value",
    ["wrong", "", CURRENT + "x", "x" + CURRENT, CURRENT.lower(), f"{CURRENT} "],
    ids=["wrong", "empty", "suffix", "prefix", "lowercased", "trailing-space"],
)
def test_any_other_value_is_blocked(evaluator: WebAclEvaluator, value: str) -> None:
    # GIVEN a value that is not exactly an accepted one (the expressions are anchored)
    # WHEN / THEN the request is blocked
    assert evaluator.evaluate(token_request(origin=value)) == expected_block()


@pytest.mark.parametrize("header_name", ["X-Origin-Verify", "X-ORIGIN-VERIFY"])
def test_the_header_name_is_case_insensitive(evaluator: WebAclEvaluator, header_name: str) -> None:
    # GIVEN the accepted value under a differently cased header name
    request = token_request(origin=CURRENT, header_name=header_name)

    # WHEN / THEN it is allowed
    assert evaluator.evaluate(request) == Verdict("ALLOW")


def test_grant_type_in_the_query_string_is_blocked(evaluator: WebAclEvaluator) -> None:
    # GIVEN the grant type sent in the query string and nothing in the body
    request = token_request(b"", query="grant_type=client_credentials")

    # WHEN / THEN the rule still sees a client_credentials request
    assert evaluator.evaluate(request) == expected_block()
    assert (
        evaluator.evaluate(
            token_request(b"", query="grant_type=client_credentials", origin=CURRENT)
        ).action
        == "ALLOW"
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"grant_type=CLIENT%5FCREDENTIALS", "/oauth2/token"),
        (b"GRANT_TYPE=Client_Credentials", "/oauth2/token"),
        (b"grant%5Ftype%3Dclient%5fcredentials", "/oauth2/token"),
        (b"scope=a&grant_type=client_credentials", "/OAUTH2/TOKEN"),
        (b"grant_type=client_credentials", "/oauth2/%74oken"),
        (b"grant_type=client_credentials", "/oauth2/token/"),
    ],
    ids=[
        "encoded-upper-value",
        "upper-name",
        "fully-encoded",
        "upper-path",
        "encoded-path",
        "slash",
    ],
)
def test_encoded_or_upper_case_variants_are_blocked(
    evaluator: WebAclEvaluator, body: bytes, path: str
) -> None:
    # GIVEN a client_credentials request disguised by case or percent-encoding
    # WHEN / THEN URL_DECODE then LOWERCASE reveal it and the rule blocks it
    assert evaluator.evaluate(token_request(body, path=path)) == expected_block()


def test_an_oversize_body_counts_as_a_match(evaluator: WebAclEvaluator) -> None:
    # GIVEN a body over Cognito's 16 KB inspection limit, the grant type hidden beyond it
    body = b"pad=" + b"a" * COGNITO_BODY_INSPECTION_LIMIT + b"&grant_type=authorization_code"

    # WHEN / THEN OversizeHandling MATCH makes it a client_credentials request: blocked
    assert evaluator.evaluate(token_request(body)) == expected_block()
    # AND with an accepted value it passes
    assert evaluator.evaluate(token_request(body, origin=CURRENT)) == Verdict("ALLOW")


def test_a_body_at_the_limit_is_inspected_normally(evaluator: WebAclEvaluator) -> None:
    # GIVEN an authorization_code body of exactly 16 KB (over ALB's 8 KB, within Cognito's)
    body = b"grant_type=authorization_code&pad="
    body += b"a" * (COGNITO_BODY_INSPECTION_LIMIT - len(body))

    # WHEN / THEN it is not oversize and not client_credentials: allowed
    assert len(body) == COGNITO_BODY_INSPECTION_LIMIT == 16 * 1024
    assert evaluator.evaluate(token_request(body)) == Verdict("ALLOW")


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp",
        b"grant_type=refresh_token&refresh_token=eyJ",
    ],
    ids=["authorization_code", "refresh_token"],
)
def test_human_flows_are_untouched(evaluator: WebAclEvaluator, body: bytes) -> None:
    # GIVEN a human sign-in flow's token request without the header
    # WHEN / THEN the rule does not touch it
    assert evaluator.evaluate(token_request(body)) == Verdict("ALLOW")


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/login", "client_id=abc&response_type=code"),
        ("GET", "/oauth2/authorize", "grant_type=client_credentials"),
        ("POST", "/oauth2/revoke", ""),
        ("GET", "/.well-known/jwks.json", ""),
    ],
)
def test_other_paths_are_allowed(
    evaluator: WebAclEvaluator, method: str, path: str, query: str
) -> None:
    # GIVEN a request to another path of the user pool's domain, without the header
    request = Request(method, path, query, FORM, b"grant_type=client_credentials")

    # WHEN / THEN it is allowed
    assert evaluator.evaluate(request) == Verdict("ALLOW")


# ---------------------------------------------------------------------- coverage and GetClientToken
def api_request(
    target: str | None = "AWSCognitoIdentityProviderService.GetClientToken",
    *,
    operation: str | None = None,
    origin: str | None = None,
) -> Request:
    """A user pools API request as it reaches WAF: POST / with a JSON body."""
    headers = [("Content-Type", "application/x-amz-json-1.1")]
    if target is not None:
        headers.append(("X-Amz-Target", target))
    if operation is not None:
        headers.append(("x-amzn-cognito-operation-name", operation))
    if origin is not None:
        headers.append(("x-origin-verify", origin))
    return Request("POST", "/", "", headers, b'{"ClientId":"abc","Secret":"xyz"}')


def expected_api_block() -> Verdict:
    return expected_block(API_RULE, "origin_verify_required_api")


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp",
        b"grant_type=refresh_token&refresh_token=eyJ",
        b"",
        b"grant_type=client_credentials",
        b"pad=" + b"a" * (COGNITO_BODY_INSPECTION_LIMIT + 10),
    ],
    ids=["authorization_code", "refresh_token", "empty", "client_credentials", "oversize"],
)
def test_covering_all_token_requests_refuses_every_direct_one(body: bytes) -> None:
    # GIVEN the rule deployed with OriginRuleCoverage AllTokenRequests (machine-only pools)
    evaluator = evaluator_for(OriginRuleCoverage="AllTokenRequests")

    # WHEN / THEN any /oauth2/token request without an accepted value is refused, by path
    # alone, whatever its body; with an accepted value it passes
    assert evaluator.evaluate(token_request(body)) == expected_block()
    assert evaluator.evaluate(token_request(body, path="/OAUTH2/%74oken")) == expected_block()
    assert evaluator.evaluate(token_request(body, origin=CURRENT)) == Verdict("ALLOW")
    # AND the rest of the domain is untouched
    assert evaluator.evaluate(Request("GET", "/login", "response_type=code")) == Verdict("ALLOW")


def test_the_default_coverage_is_client_credentials_requests() -> None:
    # GIVEN the template's defaults for the coverage
    evaluator = evaluator_for()
    human = b"grant_type=authorization_code&code=abc"

    # WHEN / THEN a direct authorization_code request passes, a client_credentials one not
    assert evaluator.evaluate(token_request(human)) == Verdict("ALLOW")
    assert evaluator.evaluate(token_request()) == expected_block()


@pytest.mark.parametrize("coverage", ["ClientCredentials", "AllTokenRequests"])
@pytest.mark.parametrize(
    ("target", "operation"),
    [
        ("AWSCognitoIdentityProviderService.GetClientToken", None),
        ("awscognitoidentityproviderservice.getclienttoken", None),
        (None, "GetClientToken"),
        ("AWSCognitoIdentityProviderService.GetClientToken", "GetClientToken"),
    ],
    ids=["x-amz-target", "lower-cased-target", "operation-name-header", "both"],
)
def test_get_client_token_needs_an_accepted_value_under_either_coverage(
    coverage: str, target: str | None, operation: str | None
) -> None:
    # GIVEN Cognito's other machine-to-machine path, the GetClientToken API
    evaluator = evaluator_for(OriginRuleCoverage=coverage)

    # WHEN / THEN without an accepted value it is refused with the API-shaped body
    verdict = evaluator.evaluate(api_request(target, operation=operation))
    assert verdict == expected_api_block()
    assert json.loads(verdict.body)["__type"] == "ForbiddenException"
    for wrong in ("wrong", CURRENT + "x"):
        assert evaluator.evaluate(api_request(target, operation=operation, origin=wrong)).blocked
    # AND with an accepted value it passes
    accepted = api_request(target, operation=operation, origin=PREVIOUS)
    assert evaluator.evaluate(accepted) == Verdict("ALLOW")


@pytest.mark.parametrize(
    ("target", "operation"),
    [
        ("AWSCognitoIdentityProviderService.InitiateAuth", "InitiateAuth"),
        ("AWSCognitoIdentityProviderService.GetClientTokenX", None),
        ("AWSCognitoIdentityService.GetClientToken", None),
        (None, None),
    ],
    ids=["initiate-auth", "longer-name", "other-service", "no-target"],
)
def test_other_api_operations_are_untouched(target: str | None, operation: str | None) -> None:
    # GIVEN a user pools API request that is not GetClientToken, without the header
    evaluator = evaluator_for(OriginRuleCoverage="AllTokenRequests")

    # WHEN / THEN no rule refuses it
    assert evaluator.evaluate(api_request(target, operation=operation)) == Verdict("ALLOW")


def test_with_count_both_rules_only_count() -> None:
    # GIVEN OriginRuleAction Count (the template's default)
    _, group = template_waf(OriginRuleAction="Count")
    evaluator = evaluator_for(OriginRuleAction="Count")

    # WHEN / THEN both rules are non-terminating: every direct request passes, counted under
    # the web ACL's reference rule and named "<group>#<rule>", as WAF samples them
    assert [rule["Action"] for rule in group["Rules"]] == [{"Count": {}}, {"Count": {}}]
    verdict = evaluator.evaluate(token_request())
    assert verdict == Verdict("ALLOW")
    assert verdict.matches == (
        RuleMatch(RULE, "origin-verify", "COUNT", rule_name_within_rule_group=f"unit#{RULE}"),
    )
    assert evaluator.evaluate(api_request()) == Verdict("ALLOW")


# ---------------------------------------------------------------------- rule group references
def group_acl(reference: dict[str, Any], override: dict[str, Any] | None = None) -> dict[str, Any]:
    """A web ACL with its own Allow rule for /health first, then the reference rule."""
    return {
        "ARN": "arn:acl",
        "DefaultAction": {"Allow": {}},
        "CustomResponseBodies": {
            "acl-body": {"ContentType": "TEXT_PLAIN", "Content": "acl says no"}
        },
        "Rules": [
            {
                "Name": "reference",
                "Priority": 5,
                "Statement": {"RuleGroupReferenceStatement": {"ARN": RULE_GROUP_ARN, **reference}},
                "OverrideAction": override or {"None": {}},
                "VisibilityConfig": {
                    "MetricName": "reference-metric",
                    "SampledRequestsEnabled": True,
                },
            },
            {
                "Name": "allow-health",
                "Priority": 0,
                "Action": {"Allow": {}},
                "Statement": byte_match("/health", "EXACTLY"),
                "VisibilityConfig": {"MetricName": "health", "SampledRequestsEnabled": False},
            },
        ],
    }


def simple_group() -> dict[str, Any]:
    """A group whose rule blocks /oauth2/token with the group's own body, and counts /login."""
    return {
        "Name": "group",
        "CustomResponseBodies": {"group-body": {"ContentType": "TEXT_PLAIN", "Content": "no"}},
        "Rules": [
            {
                "Name": "token",
                "Priority": 1,
                "Action": {
                    "Block": {
                        "CustomResponse": {
                            "ResponseCode": 403,
                            "CustomResponseBodyKey": "group-body",
                        }
                    }
                },
                "Statement": byte_match("/oauth2/token", "STARTS_WITH"),
            },
            {
                "Name": "login",
                "Priority": 0,
                "Action": {"Count": {}},
                "Statement": byte_match("/login", "STARTS_WITH"),
            },
        ],
    }


def test_a_rule_groups_rules_run_with_their_own_actions_and_bodies() -> None:
    # GIVEN a web ACL whose rule references a group, OverrideAction None
    evaluator = WebAclEvaluator(group_acl({}), {}, rule_groups={RULE_GROUP_ARN: simple_group()})

    # WHEN / THEN the group's Block ends the evaluation with the group's body, its Count counts,
    # and the web ACL's own rules still run in priority order
    blocked = evaluator.evaluate(Request("POST", "/oauth2/token"))
    assert blocked == Verdict(
        "BLOCK",
        rule_name="token",
        status=403,
        body=b"no",
        content_type="text/plain",
        rule_group="group",
    )
    assert blocked.matches == (
        RuleMatch("token", "reference-metric", "BLOCK", rule_name_within_rule_group="group#token"),
    )
    counted = evaluator.evaluate(Request("GET", "/login"))
    assert counted == Verdict("ALLOW")
    assert [m.action for m in counted.matches] == ["COUNT"]
    assert evaluator.evaluate(Request("GET", "/health")) == Verdict(
        "ALLOW", rule_name="allow-health"
    )


def test_a_rule_action_override_replaces_a_group_rules_action() -> None:
    # GIVEN the reference overrides the token rule: first to Count, then to a Block with the
    # web ACL's own body
    groups = {RULE_GROUP_ARN: simple_group()}
    to_count = {"RuleActionOverrides": [{"Name": "token", "ActionToUse": {"Count": {}}}]}
    to_block = {
        "RuleActionOverrides": [
            {
                "Name": "token",
                "ActionToUse": {
                    "Block": {
                        "CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "acl-body"}
                    }
                },
            }
        ]
    }

    # WHEN / THEN counted, with the rule's own action reported as overridden
    counted = WebAclEvaluator(group_acl(to_count), {}, rule_groups=groups).evaluate(
        Request("POST", "/oauth2/token")
    )
    assert counted == Verdict("ALLOW")
    assert counted.matches[0].action == "COUNT"
    assert counted.matches[0].overridden_action == "BLOCK"
    # AND the override's custom response body is the web ACL's
    blocked = WebAclEvaluator(group_acl(to_block), {}, rule_groups=groups).evaluate(
        Request("POST", "/oauth2/token")
    )
    assert (blocked.status, blocked.body) == (429, b"acl says no")


def test_override_action_count_only_counts_the_groups_result() -> None:
    # GIVEN the reference's OverrideAction is Count
    evaluator = WebAclEvaluator(
        group_acl({}, override={"Count": {}}), {}, rule_groups={RULE_GROUP_ARN: simple_group()}
    )

    # WHEN / THEN the group's Block is only counted and the request passes
    verdict = evaluator.evaluate(Request("POST", "/oauth2/token"))
    assert verdict == Verdict("ALLOW")
    assert [(m.rule_name, m.action) for m in verdict.matches] == [("token", "COUNT")]


def test_an_unknown_rule_group_raises() -> None:
    # GIVEN a reference to a group the evaluator was not given
    evaluator = WebAclEvaluator(group_acl({}), {})

    # WHEN / THEN it refuses rather than letting requests through unchecked
    with pytest.raises(UnsupportedStatementError, match="rule group"):
        evaluator.evaluate(Request("POST", "/oauth2/token"))


# ---------------------------------------------------------------------- the statements
def byte_match(
    search: str | bytes,
    constraint: str = "CONTAINS",
    field: dict[str, Any] | None = None,
    transformations: tuple[str, ...] = ("NONE",),
) -> dict[str, Any]:
    return {
        "ByteMatchStatement": {
            "FieldToMatch": field or {"UriPath": {}},
            "PositionalConstraint": constraint,
            "SearchString": search,
            "TextTransformations": [
                {"Priority": i, "Type": t} for i, t in enumerate(transformations)
            ],
        }
    }


def acl(
    *rules: tuple[str, int, dict[str, Any], dict[str, Any]], default: str = "Allow"
) -> dict[str, Any]:
    return {
        "DefaultAction": {default: {}},
        "Rules": [
            {"Name": name, "Priority": priority, "Statement": statement, "Action": action}
            for name, priority, statement, action in rules
        ],
    }


@pytest.mark.parametrize(
    ("constraint", "value", "search", "expected"),
    [
        ("EXACTLY", b"/a/b", b"/a/b", True),
        ("EXACTLY", b"/a/b/", b"/a/b", False),
        ("STARTS_WITH", b"/a/b", b"/a", True),
        ("STARTS_WITH", b"x/a/b", b"/a", False),
        ("ENDS_WITH", b"/a/b", b"/b", True),
        ("ENDS_WITH", b"/a/bc", b"/b", False),
        ("CONTAINS", b"xx-token-yy", b"token", True),
        ("CONTAINS", b"xx-tok-en", b"token", False),
        ("CONTAINS_WORD", b"a token b", b"token", True),
        ("CONTAINS_WORD", b"token", b"token", True),
        ("CONTAINS_WORD", b"a-token;", b"token", True),
        ("CONTAINS_WORD", b"tokens token_x", b"token", False),
        ("CONTAINS_WORD", b"tokens token", b"token", True),
    ],
)
def test_positional_constraints(
    constraint: str, value: bytes, search: bytes, expected: bool
) -> None:
    # GIVEN a value and a search string / WHEN matched / THEN WAF's semantics hold
    assert positional_match(constraint, value, search) is expected


@pytest.mark.parametrize(
    ("order", "value", "expected"),
    [
        (("URL_DECODE", "LOWERCASE"), b"%4A%4b", b"jk"),
        (("LOWERCASE", "URL_DECODE"), b"%4A%4b", b"JK"),
        (("URL_DECODE",), b"a+b%2", b"a b%2"),
        (("COMPRESS_WHITE_SPACE",), b"a \t\r\n\xa0 b\fc", b"a b c"),
        (("NONE",), b"A%20B", b"A%20B"),
    ],
)
def test_transformations_apply_in_priority_order(
    order: tuple[str, ...], value: bytes, expected: bytes
) -> None:
    # GIVEN transformations listed out of order with their priorities
    steps = [{"Priority": i, "Type": t} for i, t in reversed(list(enumerate(order)))]

    # WHEN applied / THEN they run by ascending priority
    assert transform(value, steps) == expected


def test_rules_run_by_priority_and_count_does_not_terminate() -> None:
    # GIVEN a Count rule, then an Allow rule, then a Block rule that would also match
    evaluator = WebAclEvaluator(
        acl(
            ("block-all", 30, byte_match("/"), {"Block": {}}),
            ("count-all", 10, byte_match("/"), {"Count": {}}),
            ("allow-health", 20, byte_match("/health", "EXACTLY"), {"Allow": {}}),
        ),
        {},
    )

    # WHEN / THEN the first terminating match by priority decides
    assert evaluator.evaluate(Request("GET", "/health")) == Verdict(
        "ALLOW", rule_name="allow-health"
    )
    assert evaluator.evaluate(Request("GET", "/other")) == Verdict(
        "BLOCK", rule_name="block-all", status=403
    )


def test_default_block_and_custom_response_headers() -> None:
    # GIVEN a web ACL that blocks by default and a rule with custom headers
    web_acl = acl(
        (
            "teapot",
            0,
            byte_match("/tea", "STARTS_WITH"),
            {
                "Block": {
                    "CustomResponse": {
                        "ResponseCode": 418,
                        "CustomResponseBodyKey": "tea",
                        "ResponseHeaders": [{"Name": "reason", "Value": "tea"}],
                    }
                }
            },
        ),
        default="Block",
    )
    web_acl["CustomResponseBodies"] = {"tea": {"ContentType": "TEXT_PLAIN", "Content": "short"}}
    evaluator = WebAclEvaluator(web_acl, {})

    # WHEN / THEN the rule's response and WAF's default block response
    assert evaluator.evaluate(Request("GET", "/tea")) == Verdict(
        "BLOCK",
        rule_name="teapot",
        status=418,
        body=b"short",
        content_type="text/plain",
        headers=(("x-amzn-waf-reason", "tea"),),
    )
    assert evaluator.evaluate(Request("GET", "/coffee")) == Verdict("BLOCK", status=403)


@pytest.mark.parametrize(
    ("handling", "body", "expected"),
    [
        ("MATCH", b"x" * 17_000, "BLOCK"),
        ("NO_MATCH", b"needle" + b"x" * 17_000, "ALLOW"),
        ("CONTINUE", b"needle" + b"x" * 17_000, "BLOCK"),
        ("CONTINUE", b"x" * 17_000 + b"needle", "ALLOW"),
    ],
)
def test_oversize_handling(handling: str, body: bytes, expected: str) -> None:
    # GIVEN a body rule with an OversizeHandling and a body over 16 KB
    statement = byte_match("needle", field={"Body": {"OversizeHandling": handling}})
    evaluator = WebAclEvaluator(acl(("body", 0, statement, {"Block": {}})), {})

    # WHEN / THEN the oversize body is handled as configured (CONTINUE inspects 16 KB)
    assert evaluator.evaluate(Request("POST", "/", body=body)).action == expected


def test_search_string_forms_and_a_missing_header() -> None:
    # GIVEN the same header match written as text, bytes and CloudFormation base64
    field = {"SingleHeader": {"Name": "User-Agent"}}
    forms = [
        byte_match("bot", field=field),
        byte_match(b"bot", field=field),
        {
            "ByteMatchStatement": {
                **byte_match("", field=field)["ByteMatchStatement"],
                "SearchStringBase64": base64.b64encode(b"bot").decode(),
            }
        },
    ]
    for statement in forms:
        evaluator = WebAclEvaluator(acl(("ua", 0, statement, {"Block": {}})), {})

        # WHEN / THEN each matches the header, and a request without it does not match
        assert evaluator.evaluate(Request("GET", "/", headers={"user-agent": "a bot"})).blocked
        assert not evaluator.evaluate(Request("GET", "/")).blocked


def test_regex_sets_resolve_through_a_callable() -> None:
    # GIVEN a lookup function for the set's expressions
    looked_up: list[str] = []

    def lookup(arn: str) -> list[str]:
        looked_up.append(arn)
        return ["^a+$"]

    statement = {
        "RegexPatternSetReferenceStatement": {
            "ARN": "arn:set",
            "FieldToMatch": {"QueryString": {}},
            "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
        }
    }
    evaluator = WebAclEvaluator(acl(("re", 0, statement, {"Block": {}})), lookup)

    # WHEN / THEN it matches by regex search, and the set is looked up once per evaluator
    assert evaluator.evaluate(Request("GET", "/", "aaa")).blocked
    assert not evaluator.evaluate(Request("GET", "/", "aab")).blocked
    assert looked_up == ["arn:set"]


def test_unmodelled_statements_raise() -> None:
    # GIVEN a statement the evaluator does not model
    statement = {"GeoMatchStatement": {"CountryCodes": ["NL"]}}
    evaluator = WebAclEvaluator(acl(("geo", 0, statement, {"Block": {}})), {})

    # WHEN / THEN it refuses rather than silently skipping the rule
    with pytest.raises(UnsupportedStatementError, match="GeoMatchStatement"):
        evaluator.evaluate(Request("GET", "/"))
