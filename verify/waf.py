"""What protects the pool: its web ACL, the origin rules in it, and WAF's samples of them.

The origin rules are ``token-endpoint-requires-origin-verify`` and
``get-client-token-requires-origin-verify``. They run either from the stack's rule group,
through a web ACL rule whose ``RuleGroupReferenceStatement`` names the group's ARN (the
``OriginRuleGroupArn`` output), or inline in the stack's own web ACL (stacks deployed before
the rule group existed). Each rule's effective action is the group's own action, unless the
reference's ``RuleActionOverrides`` replace it for that rule, and a terminating action only
counts when the reference's ``OverrideAction`` is ``Count``
(https://docs.aws.amazon.com/waf/latest/APIReference/API_OverrideAction.html,
https://docs.aws.amazon.com/waf/latest/APIReference/API_RuleActionOverride.html). Rules run
from the lowest priority number up, and an ``Allow`` ends the web ACL's evaluation of the
request it matched, so an ``Allow`` rule before the origin rules lets what it matches past them
(https://docs.aws.amazon.com/waf/latest/developerguide/web-acl-processing-order.html,
https://docs.aws.amazon.com/waf/latest/developerguide/web-acl-rule-actions.html).

Samples come from ``GetSampledRequests`` for the web ACL rule's metric name; for a rule group's
rule, the sample names it ``"<group name>#<rule name>"``
(https://docs.aws.amazon.com/waf/latest/APIReference/API_SampledHTTPRequest.html).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

TOKEN_RULE = "token-endpoint-requires-origin-verify"  # noqa: S105 - a rule name
API_RULE = "get-client-token-requires-origin-verify"
ORIGIN_RULES = (TOKEN_RULE, API_RULE)
SCOPE = "REGIONAL"
MAX_SAMPLES = 500


class WafReadError(RuntimeError):
    """A WAF API call failed (the message names the call and AWS's error code)."""


@dataclass(frozen=True)
class OriginRule:
    """One origin rule as it runs on the pool."""

    name: str
    #: COUNT, BLOCK or ALLOW: what WAF does with a request the rule matches.
    action: str
    #: The web ACL rule its matches are sampled and counted under.
    metric_name: str
    #: ``"<group>#<rule>"`` in samples, or None for a rule inline in the web ACL.
    sample_name: str | None
    pattern_set_arns: tuple[str, ...]
    block_status: int | None = None
    block_body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Protection:
    """The pool's web ACL and where its origin rules are; ``problems`` are what make the
    rules not do what the stack says (each one a sentence)."""

    web_acl: Mapping[str, Any] | None
    rules: Mapping[str, OriginRule]
    where: str = ""
    problems: tuple[str, ...] = ()

    @property
    def web_acl_arn(self) -> str | None:
        return None if self.web_acl is None else str(self.web_acl["ARN"])

    @property
    def web_acl_name(self) -> str:
        return "" if self.web_acl is None else str(self.web_acl["Name"])


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """One WAF API call; its failure as a WafReadError naming the call and the error code."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise WafReadError(f"{_api_name(operation)} failed: {code}") from None
    except BotoCoreError as exc:
        raise WafReadError(f"{_api_name(operation)} failed: {type(exc).__name__}") from None


def pool_web_acl(wafv2: Any, pool_arn: str) -> Mapping[str, Any] | None:
    """The web ACL associated with the pool, or None."""
    try:
        found = wafv2.get_web_acl_for_resource(ResourceArn=pool_arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code == "WAFNonexistentItemException":
            return None
        raise WafReadError(f"GetWebACLForResource failed: {code}") from None
    acl = found.get("WebACL")
    return None if not acl else dict(acl)


def read_protection(
    wafv2: Any, pool_arn: str, *, rule_group_arn: str | None, expected_action: str
) -> Protection:
    """Where the pool's origin rules are and what they do (raises WafReadError)."""
    acl = pool_web_acl(wafv2, pool_arn)
    if acl is None:
        return Protection(None, {}, problems=(f"no web ACL is associated with {pool_arn}",))
    rules = sorted(acl.get("Rules") or [], key=lambda rule: int(rule["Priority"]))
    reference = _reference_rule(rules, rule_group_arn) if rule_group_arn else None
    problems: list[str] = []
    if reference is not None:
        found, where = _group_rules(wafv2, reference, acl, problems)
        position = int(reference["Priority"])
    else:
        found = _inline_rules(rules, acl)
        where = "inline in the web ACL"
        position = min((int(r["Priority"]) for r in rules if r["Name"] in found), default=0)
        if not found:
            named = f"no rule references rule group {rule_group_arn}" if rule_group_arn else ""
            problems.append(
                f"web ACL {acl['Name']} does not run the origin rules ({named or 'none inline'})"
            )
    for name in ORIGIN_RULES:
        if found and name not in found:
            problems.append(f"the origin rule {name} is missing ({where})")
    for rule in rules:
        if int(rule["Priority"]) < position and "Allow" in _present(rule.get("Action") or {}):
            problems.append(
                f"rule {rule['Name']} (priority {rule['Priority']}) allows requests before the "
                "origin rules run: a direct request it matches is never checked"
            )
    wanted = expected_action.upper()
    for rule in found.values():
        if rule.action != wanted:
            problems.append(
                f"{rule.name} acts as {rule.action.title()}, but the stack's OriginRuleAction "
                f"is {expected_action}"
            )
    return Protection(acl, found, where, tuple(problems))


def _reference_rule(
    rules: list[Mapping[str, Any]], rule_group_arn: str
) -> Mapping[str, Any] | None:
    for rule in rules:
        reference = rule["Statement"].get("RuleGroupReferenceStatement")
        if reference and str(reference.get("ARN")) == rule_group_arn:
            return rule
    return None


def _group_rules(
    wafv2: Any, reference_rule: Mapping[str, Any], acl: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, OriginRule], str]:
    reference = reference_rule["Statement"]["RuleGroupReferenceStatement"]
    group = call(wafv2, "get_rule_group", ARN=str(reference["ARN"]))["RuleGroup"]
    metric = str(reference_rule["VisibilityConfig"]["MetricName"])
    where = (
        f"from rule group {group['Name']}, referenced by web ACL rule {reference_rule['Name']} "
        f"at priority {reference_rule['Priority']}"
    )
    counts_only = "Count" in _present(reference_rule.get("OverrideAction") or {})
    if counts_only:
        problems.append(
            f"web ACL rule {reference_rule['Name']} has OverrideAction Count: the rule group's "
            "refusals are only counted (set it to None)"
        )
    overrides = {
        str(o["Name"]): o["ActionToUse"] for o in reference.get("RuleActionOverrides") or []
    }
    overrides.update({str(e["Name"]): {"Count": {}} for e in reference.get("ExcludedRules") or []})
    found: dict[str, OriginRule] = {}
    for rule in group.get("Rules") or []:
        name = str(rule["Name"])
        if name not in ORIGIN_RULES:
            continue
        if name in overrides:
            problems.append(
                f"web ACL rule {reference_rule['Name']} overrides {name}'s action with "
                f"{_kind(overrides[name]).title()}: remove the override (OriginRuleAction "
                "sets the action)"
            )
        action = overrides.get(name, rule["Action"])
        bodies = acl if name in overrides else group
        kind = "COUNT" if counts_only else _kind(action)
        found[name] = _origin_rule(
            name,
            kind,
            action=action,
            bodies_from=bodies,
            metric=metric,
            sample_name=f"{group['Name']}#{name}",
            rule=rule,
        )
    return found, where


def _inline_rules(rules: list[Mapping[str, Any]], acl: Mapping[str, Any]) -> dict[str, OriginRule]:
    found: dict[str, OriginRule] = {}
    for rule in rules:
        if rule["Name"] in ORIGIN_RULES and rule.get("Action"):
            metric = str(rule["VisibilityConfig"]["MetricName"])
            action = rule["Action"]
            found[str(rule["Name"])] = _origin_rule(
                str(rule["Name"]),
                _kind(action),
                action=action,
                bodies_from=acl,
                metric=metric,
                sample_name=None,
                rule=rule,
            )
    return found


def _origin_rule(
    name: str,
    kind: str,
    *,
    action: Mapping[str, Any],
    bodies_from: Mapping[str, Any],
    metric: str,
    sample_name: str | None,
    rule: Mapping[str, Any],
) -> OriginRule:
    status: int | None = None
    body: bytes | None = None
    if kind == "BLOCK":
        custom = (action.get("Block") or {}).get("CustomResponse") or {}
        status = int(custom.get("ResponseCode") or 403)
        key = custom.get("CustomResponseBodyKey")
        content = ((bodies_from.get("CustomResponseBodies") or {}).get(key) or {}).get("Content")
        body = None if content is None else str(content).encode()
    return OriginRule(
        name, kind, metric, sample_name, tuple(_pattern_sets(rule["Statement"])), status, body
    )


def _pattern_sets(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "RegexPatternSetReferenceStatement":
                yield str(value.get("ARN"))
            else:
                yield from _pattern_sets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pattern_sets(item)


def _present(action: Mapping[str, Any]) -> list[str]:
    """The members of a RuleAction or OverrideAction that are set (boto3 omits the others;
    moto returns them as null)."""
    return [key for key, value in action.items() if value is not None]


def _kind(action: Mapping[str, Any]) -> str:
    present = _present(action)
    return present[0].upper() if len(present) == 1 else "+".join(present).upper()


def _api_name(operation: str) -> str:
    return "".join(part.title() for part in operation.split("_")).replace("Acl", "ACL")


# ---------------------------------------------------------------------- sampled requests
@dataclass(frozen=True)
class Sample:
    """One sampled request: when, what WAF did, under which rule, and its User-Agent."""

    timestamp: dt.datetime
    action: str
    rule_name_within_rule_group: str | None
    user_agent: str
    weight: int


def sampled_requests(
    wafv2: Any, web_acl_arn: str, metric_name: str, start: dt.datetime, end: dt.datetime
) -> tuple[list[Sample], int]:
    """The samples of one web ACL rule in a time window, and the population they come from."""
    answer = call(
        wafv2,
        "get_sampled_requests",
        WebAclArn=web_acl_arn,
        RuleMetricName=metric_name,
        Scope=SCOPE,
        TimeWindow={"StartTime": start, "EndTime": end},
        MaxItems=MAX_SAMPLES,
    )
    samples = [
        Sample(
            timestamp=entry.get("Timestamp") or end,
            action=str(entry.get("Action", "")).upper(),
            rule_name_within_rule_group=entry.get("RuleNameWithinRuleGroup"),
            user_agent=_header(entry["Request"].get("Headers") or [], "user-agent"),
            weight=int(entry.get("Weight") or 1),
        )
        for entry in answer.get("SampledRequests") or []
    ]
    return samples, int(answer.get("PopulationSize") or 0)


def _header(headers: list[Mapping[str, Any]], name: str) -> str:
    for header in headers:
        if str(header.get("Name", "")).lower() == name:
            return str(header.get("Value", ""))
    return ""


def is_rule(sample: Sample, rule: OriginRule) -> bool:
    """Whether the sample is of ``rule`` (a group's samples name the group's rule)."""
    return rule.sample_name is None or sample.rule_name_within_rule_group == rule.sample_name
