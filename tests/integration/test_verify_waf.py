"""What `make verify` reads of the pool's protection, against moto's WAFv2 (real API shapes):
where the origin rules run, what they do, and what makes them not do what the stack says (an
override, OverrideAction Count, an Allow rule before them, another pattern set)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.cloudformation_resources import LocalAwsResources, bootstrap
from local.existing_web_acl import reference_rule
from local.moto_server import RunningMotoServer, aws_client
from verify import waf

REGION = "eu-west-1"
ISSUER = "http://127.0.0.1:9/oauth2/token"


@pytest.fixture(scope="module")
def stack(moto: RunningMotoServer) -> LocalAwsResources:
    return bootstrap(moto.endpoint_url, cognito_token_url=ISSUER, stack_name="wafcheck")


def client(moto: RunningMotoServer) -> Any:
    return aws_client("wafv2", moto.endpoint_url, REGION)


def read(
    moto: RunningMotoServer, stack: LocalAwsResources, action: str = "Block"
) -> waf.Protection:
    return waf.read_protection(
        client(moto),
        stack.user_pool_arn,
        rule_group_arn=stack.rule_group_arn,
        expected_action=action,
    )


def replace_reference(moto: RunningMotoServer, stack: LocalAwsResources, **changes: Any) -> None:
    """Rewrite the stack's web ACL with its reference rule changed (and extra rules)."""
    assert stack.rule_group_arn is not None
    wafv2 = client(moto)
    key = {"Name": stack.web_acl_name, "Scope": "REGIONAL", "Id": stack.web_acl_id}
    acl = wafv2.get_web_acl(**key)
    rule = reference_rule(stack.rule_group_arn, priority=5)
    rule["Statement"]["RuleGroupReferenceStatement"].update(changes.pop("reference", {}))
    rule.update(changes.pop("rule", {}))
    wafv2.update_web_acl(
        **key,
        DefaultAction={"Allow": {}},
        VisibilityConfig=acl["WebACL"]["VisibilityConfig"],
        Rules=[rule, *changes.pop("more", [])],
        LockToken=acl["LockToken"],
    )


@pytest.fixture
def restore(moto: RunningMotoServer, stack: LocalAwsResources) -> Iterator[None]:
    yield
    replace_reference(moto, stack)


def test_the_rule_group_runs_from_the_stacks_web_acl(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the stack as deployed (Block) / WHEN make verify reads the pool's protection
    protection = read(moto, stack)

    # THEN it finds the reference, the group's two rules with their action, pattern set,
    # refusal and sample names, and nothing wrong
    assert protection.problems == ()
    assert protection.web_acl_arn == stack.web_acl_arn
    token = protection.rules[waf.TOKEN_RULE]
    assert token.action == "BLOCK"
    assert token.metric_name == "origin-verify"
    assert token.sample_name == f"wafcheck#{waf.TOKEN_RULE}"
    assert token.pattern_set_arns == (stack.pattern_set_arn,)
    assert token.block_status == 403
    assert token.block_body is not None and b'"error":"access_denied"' in token.block_body
    assert set(protection.rules) == set(waf.ORIGIN_RULES)
    assert "at priority 0" in protection.where
    # AND the stack's OriginRuleAction must match what the rules do
    assert set(read(moto, stack, action="Count").problems) == {
        f"{waf.API_RULE} acts as Block, but the stack's OriginRuleAction is Count",
        f"{waf.TOKEN_RULE} acts as Block, but the stack's OriginRuleAction is Count",
    }


@pytest.mark.usefixtures("restore")
def test_an_override_to_count_or_override_action_count_is_a_problem(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the reference overrides the token rule to Count
    replace_reference(
        moto,
        stack,
        reference={"RuleActionOverrides": [{"Name": waf.TOKEN_RULE, "ActionToUse": {"Count": {}}}]},
    )

    # WHEN / THEN that rule counts, and both the override and the mismatch are named
    overridden = read(moto, stack)
    assert overridden.rules[waf.TOKEN_RULE].action == "COUNT"
    assert any(
        "overrides token-endpoint-requires-origin-verify's action" in p for p in overridden.problems
    )
    assert any(
        "acts as Count, but the stack's OriginRuleAction is Block" in p for p in overridden.problems
    )

    # GIVEN instead OverrideAction Count on the reference rule
    replace_reference(moto, stack, rule={"OverrideAction": {"Count": {}}})

    # WHEN / THEN every origin rule only counts, and the setting is named
    counting = read(moto, stack)
    assert {rule.action for rule in counting.rules.values()} == {"COUNT"}
    assert any("has OverrideAction Count" in p for p in counting.problems)


@pytest.mark.usefixtures("restore")
def test_an_allow_rule_before_the_origin_rules_is_a_problem(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN an allow-list rule at a lower priority number than the reference (5), and a
    # Block rule before it, which is fine
    allow = {
        "Name": "office-allow-list",
        "Priority": 1,
        "Action": {"Allow": {}},
        "Statement": {
            "ByteMatchStatement": {
                "FieldToMatch": {"UriPath": {}},
                "PositionalConstraint": "STARTS_WITH",
                "SearchString": b"/",
                "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
            }
        },
        "VisibilityConfig": {
            "SampledRequestsEnabled": False,
            "CloudWatchMetricsEnabled": False,
            "MetricName": "office",
        },
    }
    block = {**allow, "Name": "block-first", "Priority": 0, "Action": {"Block": {}}}
    replace_reference(moto, stack, more=[allow, block])

    # WHEN / THEN the Allow rule is named as a way past the origin rules, the Block one is not
    problems = read(moto, stack).problems
    assert problems == (
        "rule office-allow-list (priority 1) allows requests before the origin rules run: a "
        "direct request it matches is never checked",
    )


def test_no_web_acl_and_no_reference(moto: RunningMotoServer) -> None:
    # GIVEN a pool without a web ACL, and one whose web ACL does not reference the group
    bare = bootstrap(moto.endpoint_url, cognito_token_url=ISSUER, stack_name="bare")
    wafv2 = client(moto)
    wafv2.disassociate_web_acl(ResourceArn=bare.user_pool_arn)

    # WHEN / THEN the first has no web ACL; the second names the missing reference
    assert read(moto, bare).web_acl is None
    other_group = "arn:aws:wafv2:eu-west-1:123456789012:regional/rulegroup/other/x"
    wafv2.associate_web_acl(WebACLArn=bare.web_acl_arn, ResourceArn=bare.user_pool_arn)
    missing = waf.read_protection(
        wafv2, bare.user_pool_arn, rule_group_arn=other_group, expected_action="Block"
    )
    assert missing.rules == {}
    assert missing.problems == (
        f"web ACL bare does not run the origin rules (no rule references rule group {other_group})",
    )
