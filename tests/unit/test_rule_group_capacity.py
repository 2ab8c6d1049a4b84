"""The rule group's capacity is the WCUs of its rules, computed from template.yaml's own rules
with the costs AWS documents, for either OriginRuleCoverage (the capacity is fixed when the
group is created, so it must fit the larger one).

Costs (https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-string-match.html,
waf-rule-statement-type-regex-pattern-set-match.html, waf-rule-statements-logical.html): a
string match costs 2 (EXACTLY, STARTS_WITH, ENDS_WITH) or 10 (CONTAINS, CONTAINS_WORD), a regex
pattern set match 25; each text transformation adds 10 (NONE counted too, the conservative
reading); AND, OR and NOT cost what they hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_template import default_template, resource

MATCH_COSTS = {"EXACTLY": 2, "STARTS_WITH": 2, "ENDS_WITH": 2, "CONTAINS": 10, "CONTAINS_WORD": 10}
REGEX_SET_COST = 25
TRANSFORMATION_COST = 10


def wcu(statement: Mapping[str, Any]) -> int:
    """The WCUs of one statement, as AWS documents them."""
    ((kind, body),) = statement.items()
    if kind in ("AndStatement", "OrStatement"):
        return sum(wcu(inner) for inner in body["Statements"])
    if kind == "NotStatement":
        return wcu(body["Statement"])
    transformations = TRANSFORMATION_COST * len(body.get("TextTransformations") or [])
    if kind == "ByteMatchStatement":
        return MATCH_COSTS[body["PositionalConstraint"]] + transformations
    if kind == "RegexPatternSetReferenceStatement":
        return REGEX_SET_COST + transformations
    raise AssertionError(f"{kind}: add its documented cost")


def rules(coverage: str) -> list[dict[str, Any]]:
    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name="wcu", region="eu-west-1"),
        parameters={
            "CognitoDomain": "d",
            "UserPoolId": "eu-west-1_x",
            "OriginRuleCoverage": coverage,
        },
    )
    resolver.register("OriginPatternSet", "x", Arn="arn:set")
    resolved: list[dict[str, Any]] = resolver.resolve(
        resource("OriginRuleGroup")["Properties"]["Rules"]
    )
    return resolved


@pytest.mark.parametrize(
    ("coverage", "expected"), [("ClientCredentials", 117 + 59), ("AllTokenRequests", 57 + 59)]
)
def test_the_rules_cost_what_the_templates_comment_says(coverage: str, expected: int) -> None:
    # GIVEN the origin rules at one coverage / WHEN their WCUs are added up
    total = sum(wcu(rule["Statement"]) for rule in rules(coverage))

    # THEN they are the figures the template's comment gives
    assert total == expected


def test_the_capacity_fits_the_rules_at_either_coverage_and_no_more() -> None:
    # GIVEN the rule group's capacity
    capacity = resource("OriginRuleGroup")["Properties"]["Capacity"]

    # WHEN / THEN it is exactly the larger coverage's WCUs: enough, and none of the web ACL's
    # capacity units spent for nothing
    costs = [
        sum(wcu(r["Statement"]) for r in rules(c))
        for c in ("ClientCredentials", "AllTokenRequests")
    ]
    assert capacity == max(costs) == 176
