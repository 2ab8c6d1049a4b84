"""What guards the pool: the web ACL associated with it, and the pattern set its rules read.

WAF's rule groups, overrides and priorities are read by :mod:`verify.waf`. The pattern set's
entries are matched as WAF matches a regex pattern set: a request component matches when any
of the set's expressions matches it
(https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-regex-pattern-set-match.html);
the rotator writes each accepted value as ``^value$``, so each entry must be exactly one value
of the origin secret (its current, previous or pending one), and AWSCURRENT must be one of them.
Values are compared in memory and never printed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from verify import waf
from verify.report import CheckResult, failed, passed
from verify.stack import Deployment

WEB_ACL = "web ACL on the pool"
PATTERN_SET = "pattern set"
STAGES = ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING")


def check_web_acl(d: Deployment, protection: waf.Protection) -> list[CheckResult]:
    """The pool has a web ACL, it is this stack's (or, with WebAcl=External, the pool's own)
    and runs the origin rules as the stack's parameters say."""
    pool = str(d.output("UserPoolArn")).rsplit("/", 1)[-1]
    if protection.web_acl is None:
        return [
            failed(
                WEB_ACL,
                f"no web ACL is associated with the pool {pool}: direct requests reach "
                "Cognito unchecked",
            )
        ]
    problems = list(protection.problems)
    own = d.output("WebAclArn")
    if d.web_acl_mode == "Create" and own and protection.web_acl_arn != own:
        problems.insert(
            0,
            f"the pool's web ACL is {protection.web_acl_name}, not this stack's "
            f"({own.rsplit('/', 2)[-2]})",
        )
    whose = "this stack's" if protection.web_acl_arn == own else "the pool's own"
    actions = ", ".join(
        f"{name} {rule.action.title()}" for name, rule in sorted(protection.rules.items())
    )
    if problems:
        return [failed(WEB_ACL, "; ".join(problems))]
    return [
        passed(
            WEB_ACL,
            f"{protection.web_acl_name} ({whose}) is associated with the pool {pool}; the "
            f"origin rules run {protection.where}: {actions}",
        )
    ]


def check_pattern_set(d: Deployment, protection: waf.Protection | None) -> list[CheckResult]:
    """The origin rules read the stack's pattern set, and it accepts AWSCURRENT and nothing but
    the origin secret's values (``protection`` None: the web ACL could not be read)."""
    wafv2 = d.client("wafv2")
    expected_id = str(d.output("OriginPatternSetId"))
    referenced: set[str] = set()
    problems: list[str] = []
    if protection is not None:
        for rule in protection.rules.values():
            referenced.update(rule.pattern_set_arns)
    for arn in sorted(referenced):
        if arn.rsplit("/", 1)[-1] != expected_id:
            problems.append(
                f"the origin rules read pattern set {arn.split('/')[-2]}, which the rotator "
                "does not update"
            )
    pattern_set = waf.call(wafv2, "get_regex_pattern_set", **_pattern_set_key(d, expected_id))[
        "RegexPatternSet"
    ]
    entries = [str(e["RegexString"]) for e in pattern_set.get("RegularExpressionList") or []]
    values = _origin_values(d)
    current = values.get("AWSCURRENT")
    if current is None:
        return [failed(PATTERN_SET, "the origin secret has no AWSCURRENT value")]
    for index, entry in enumerate(entries, start=1):
        problem = _entry_problem(entry, values)
        if problem:
            problems.append(f"entry {index} of {len(entries)} {problem}")
    if not any(_matches(entry, current) for entry in entries):
        problems.insert(
            0,
            f"{pattern_set['Name']} does not accept AWSCURRENT: the proxy's requests are refused",
        )
    if problems:
        return [failed(PATTERN_SET, "; ".join(problems))]
    accepted = [
        stage
        for stage in STAGES
        if stage in values and any(_matches(entry, values[stage]) for entry in entries)
    ]
    return [
        passed(
            PATTERN_SET,
            f"{pattern_set['Name']} accepts {' and '.join(accepted)}, and nothing else: "
            f"{_entries(len(entries))} exactly one value of the origin secret",
        )
    ]


def _origin_values(d: Deployment) -> dict[str, str]:
    """The origin secret's value at each stage it has (kept in memory, never printed)."""
    sm = d.client("secretsmanager")
    arn = str(d.output("OriginSecretArn"))
    stages = {
        stage
        for labels in (sm.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}).values()
        for stage in labels
    }
    return {
        stage: str(sm.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
        for stage in STAGES
        if stage in stages
    }


def _entry_problem(entry: str, values: Mapping[str, str]) -> str | None:
    """Why a pattern set entry is not exactly one rotation value, or None."""
    if any(entry in (f"^{value}$", f"^{re.escape(value)}$") for value in values.values()):
        return None
    try:
        re.compile(entry)
    except re.error:
        return "is not a regular expression this check can read"
    probe = "make-verify-" + secrets.token_hex(8)
    if _matches(entry, probe) or _matches(entry, ""):
        return "accepts any value (it matched a random one)"
    return "is not ^<a current, previous or pending origin value>$ (a retired or foreign value?)"


def _entries(count: int) -> str:
    return "its one entry is" if count == 1 else f"each of its {count} entries is"


def _matches(entry: str, value: str) -> bool:
    try:
        return re.search(entry, value) is not None
    except re.error:
        return False


def _pattern_set_key(d: Deployment, expected_id: str) -> dict[str, str]:
    """Name, Scope and Id of the stack's pattern set (its physical ID is "name|id|scope")."""
    physical = d.physical_ids("AWS::WAFv2::RegexPatternSet").get("OriginPatternSet", "")
    parts = physical.split("|")
    if len(parts) == 3:
        return {"Name": parts[0], "Id": parts[1], "Scope": parts[2]}
    return {"Name": d.name, "Id": expected_id, "Scope": waf.SCOPE}
