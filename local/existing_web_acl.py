"""The web ACL a user pool already had, for the local stack in ``WebAcl=External`` mode.

With ``External`` the stack creates no web ACL: the pool keeps its own, and the user adds one
rule to it that references the stack's rule group, as the README's "Pools that already have a
web ACL" says. Locally this module plays that user: it creates a web ACL with a rule of its own
(it blocks requests whose User-Agent names a bad bot, standing in for the rate-based and
managed rules real web ACLs have) and the README's reference rule in front of it, and
associates that web ACL with the local pool. The e2e tests check both that the origin rules
refuse direct client_credentials requests through it and that the web ACL's own rule still
applies, and that :func:`reference_rule` is the rule the README shows.

A rule that references a rule group has an ``OverrideAction`` and no ``Action``
(https://docs.aws.amazon.com/waf/latest/APIReference/API_Rule.html); ``None`` leaves the group's
own actions, which OriginRuleAction sets, in effect
(https://docs.aws.amazon.com/waf/latest/APIReference/API_OverrideAction.html).
"""

from __future__ import annotations

from typing import Any

#: The name and metric name of the reference rule (the stack's own web ACL uses the same).
REFERENCE_RULE_NAME = "origin-verify"
#: The existing web ACL's own rule: a bad bot's User-Agent is refused, whatever it asks for.
BAD_BOT = "badbot"
OWN_RULE: dict[str, Any] = {
    "Name": "block-bad-bots",
    "Priority": 10,
    "Action": {"Block": {}},
    "Statement": {
        "ByteMatchStatement": {
            "FieldToMatch": {"SingleHeader": {"Name": "user-agent"}},
            "PositionalConstraint": "CONTAINS",
            "SearchString": BAD_BOT,
            "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}],
        }
    },
    "VisibilityConfig": {
        "SampledRequestsEnabled": True,
        "CloudWatchMetricsEnabled": True,
        "MetricName": "block-bad-bots",
    },
}


def reference_rule(rule_group_arn: str, priority: int = 0) -> dict[str, Any]:
    """The web ACL rule that runs the stack's rule group: the README's JSON."""
    return {
        "Name": REFERENCE_RULE_NAME,
        "Priority": priority,
        "OverrideAction": {"None": {}},
        "Statement": {"RuleGroupReferenceStatement": {"ARN": rule_group_arn}},
        "VisibilityConfig": {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": REFERENCE_RULE_NAME,
        },
    }


def create_existing_web_acl(
    wafv2: Any, *, name: str, rule_group_arn: str, pool_arn: str
) -> dict[str, Any]:
    """Create the pool's own web ACL (its own rule, then the reference put in front of it, as
    the README says) and associate it with the pool; returns its summary."""
    summary = wafv2.create_web_acl(
        Name=name,
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        Description="The user pool's own web ACL (WebAcl External)",
        VisibilityConfig={
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": name,
        },
        Rules=[OWN_RULE, reference_rule(rule_group_arn)],
    )["Summary"]
    wafv2.associate_web_acl(WebACLArn=summary["ARN"], ResourceArn=pool_arn)
    return dict(summary)
