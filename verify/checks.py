"""The checks of ``make verify``, in one run against one deployment.

Order: the direct probes to the pool go out first (WAF's samples of them take time to appear),
then the proxy, the web ACL, the pattern set, rotation and the alarms are checked, and last the
direct probes' answers and samples are judged. Every AWS or HTTP failure becomes a FAIL or a
"cannot check here" line, never a traceback.

What each check relies on, from AWS's documentation:
- A stack's status names a settled stack when it ends in ``_COMPLETE``; ``ROLLBACK_COMPLETE``
  (a failed creation) and the ``_FAILED`` and ``DELETE_`` states do not
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html, StackStatus).
- When a rotation fails, Secrets Manager leaves ``AWSPENDING`` on a version other than
  ``AWSCURRENT``, and refuses the next rotation while it is there
  (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html).
- WAF's rule groups, overrides, priorities and samples: :mod:`verify.waf`.
- The pattern set's entries are matched as WAF matches a regex pattern set: a request component
  matches when any of the set's expressions matches it
  (https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-regex-pattern-set-match.html);
  the rotator writes each accepted value as ``^value$``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from verify import waf
from verify.probes import BASIC, BODY, CODE, PROBES, USER_AGENT_PRODUCT, Answer, Credentials, Prober
from verify.report import CheckResult, cannot_check, failed, passed
from verify.stack import ALARM_TYPE, Deployment

#: A pending version older than this is a rotation that failed, not one in progress.
STUCK_ROTATION_SECONDS = 15 * 60
#: The whole run stays within a minute; WAF's samples are waited for this long at most.
SAMPLE_WAIT_SECONDS = 40.0
SAMPLE_POLL_SECONDS = 3.0
#: How far back the closing lines look for other clients' direct requests (WAF keeps 3 hours).
READINESS_WINDOW = dt.timedelta(hours=3) - dt.timedelta(minutes=2)
STAGES = ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING")

STACK = "stack"
PROXY = "token through the proxy"
CACHE = "cached token"
WEB_ACL = "web ACL on the pool"
PATTERN_SET = "pattern set"
ROTATION = "rotation"
ALARMS = "alarms"
DIRECT = {probe: f"direct {probe}" for probe in PROBES}
#: The check lines, in the order they are printed.
ORDER = (STACK, PROXY, CACHE, WEB_ACL, PATTERN_SET, ALARMS, ROTATION, *DIRECT.values())

Emit = Callable[[CheckResult], None]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Probe:
    name: str
    answer: Answer
    sample: waf.Sample | None = None
    earlier: waf.Sample | None = None


@dataclass
class _Findings:
    """What the checks learnt that later checks use."""

    protection: waf.Protection | None = None
    protection_error: str | None = None
    alarm_states: dict[str, str] = field(default_factory=dict)
    probes: dict[str, _Probe] = field(default_factory=dict)
    probes_sent_at: dt.datetime | None = None
    sample_error: str | None = None


class Verification:
    """One ``make verify`` run against a deployment."""

    def __init__(
        self,
        deployment: Deployment,
        credentials: Credentials | None,
        *,
        prober: Prober | None = None,
        now: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sample_wait_seconds: float = SAMPLE_WAIT_SECONDS,
    ) -> None:
        self.deployment = deployment
        self.credentials = credentials
        self.prober = prober or Prober()
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._sample_wait = sample_wait_seconds
        self._started = monotonic()
        self._found = _Findings()
        self.closing: list[str] = []

    # ------------------------------------------------------------------ the run
    def run(self, emit: Emit) -> list[CheckResult]:
        results: list[CheckResult] = []

        def record(result: CheckResult) -> None:
            results.append(result)
            emit(result)

        stack = self._guard(STACK, self.check_stack)
        record(stack)
        if stack.failed:
            for name in ORDER[1:]:
                record(cannot_check(name, "the stack could not be read"))
            return results
        self._send_direct_probes()
        for name, check in (
            (PROXY, self.check_token_and_cache),
            (WEB_ACL, self.check_web_acl),
            (PATTERN_SET, self.check_pattern_set),
            (ALARMS, self.check_alarms),
            (ROTATION, self.check_rotation),
        ):
            for result in self._guard_many(name, check):
                record(result)
        direct = self._guard_many(DIRECT[BASIC], self.check_direct_probes)
        if len(direct) == 1:  # the check failed as a whole: one line per probe
            direct = [failed(DIRECT[probe], direct[0].detail) for probe in PROBES]
        for result in direct:
            record(result)
        self.closing = self._guard_lines(self.readiness)
        return results

    def _guard(self, name: str, check: Callable[[], CheckResult]) -> CheckResult:
        return self._guard_many(name, lambda: [check()])[0]

    def _guard_many(self, name: str, check: Callable[[], list[CheckResult]]) -> list[CheckResult]:
        try:
            return check()
        except (ClientError, BotoCoreError, waf.WafReadError) as exc:
            return [failed(name, f"an AWS call failed: {_aws_error(exc)}")]
        except Exception as exc:  # a defect of this tool: one line, no traceback
            return [failed(name, f"the check itself failed ({type(exc).__name__})")]

    def _guard_lines(self, lines: Callable[[], list[str]]) -> list[str]:
        try:
            return lines()
        except (ClientError, BotoCoreError, waf.WafReadError) as exc:
            return [f"Direct requests of other clients: cannot tell ({_aws_error(exc)})."]

    # ------------------------------------------------------------------ stack
    def check_stack(self) -> CheckResult:
        d = self.deployment
        status = d.status
        settled = status.endswith("_COMPLETE") and status not in (
            "ROLLBACK_COMPLETE",
            "DELETE_COMPLETE",
            "IMPORT_ROLLBACK_COMPLETE",
        )
        mode = (
            f"WebAcl={d.web_acl_mode}, OriginRuleAction={d.parameter('OriginRuleAction')}, "
            f"OriginRuleCoverage={d.parameter('OriginRuleCoverage')}"
        )
        missing = [
            name
            for name in ("TokenEndpoint", "UserPoolArn", "OriginSecretArn", "OriginPatternSetId")
            if not d.output(name)
        ]
        where = f"{d.name}, {status}, {d.origin}; {mode}"
        if status.endswith("_IN_PROGRESS"):
            return cannot_check(
                STACK, f"{d.name} is being changed ({status}): run make verify when it is done"
            )
        if not settled:
            return failed(STACK, f"{d.name} is not deployed ({status}): see the stack's events")
        if missing:
            return failed(STACK, f"{d.name} ({status}) lacks the outputs {', '.join(missing)}")
        note = " (its last update was rolled back)" if "ROLLBACK" in status else ""
        return passed(STACK, where + note)

    # ------------------------------------------------------------------ the proxy
    def check_token_and_cache(self) -> list[CheckResult]:
        if self.credentials is None:
            why = "no client credentials: set CLIENT_ID and CLIENT_SECRET (an app client with "
            why += "the client credentials grant)"
            return [cannot_check(PROXY, why), cannot_check(CACHE, why)]
        url = str(self.deployment.output("TokenEndpoint"))
        answers = [self.prober.token(url, self.credentials)]
        answered_at = [self._monotonic()]
        first = answers[0]
        if first.status != 200 or first.token_digest is None or first.expires_in is None:
            return [
                failed(PROXY, f"{url} answered {first.describe()}, not a token"),
                cannot_check(CACHE, "no token came through the proxy"),
            ]
        token = passed(
            PROXY,
            f"{url} answered 200 with a {first.token_type} token, expires_in {first.expires_in} s",
        )
        # expires_in is whole seconds of the token's real remaining life: a second later the
        # cached token says less. A token refreshed ahead in between starts a new pair.
        for _ in range(2):
            self._sleep(1.1)
            answers.append(self.prober.token(url, self.credentials))
            answered_at.append(self._monotonic())
            before, after = answers[-2], answers[-1]
            later = f"{answered_at[-1] - answered_at[-2]:.1f} s later"
            if after.status != 200 or after.expires_in is None:
                return [token, failed(CACHE, f"a second request got {after.describe()}")]
            if after.token_digest == before.token_digest and after.expires_in < (
                before.expires_in or 0
            ):
                return [
                    token,
                    passed(
                        CACHE,
                        f"the same token again {later}, expires_in {after.expires_in} s "
                        f"(was {before.expires_in} s): served from the cache with its real "
                        "remaining life",
                    ),
                ]
        before, after = answers[-2], answers[-1]
        if after.token_digest != before.token_digest:
            why = (
                "requests 1 s apart got different tokens: the second was not served from the cache"
            )
        else:
            why = (
                f"the same token 1 s later still says expires_in {after.expires_in} s "
                f"(was {before.expires_in} s): it must be the real remaining life"
            )
        return [token, failed(CACHE, why)]

    # ------------------------------------------------------------------ WAF
    def _protection(self) -> waf.Protection:
        """The pool's protection, read once (raises WafReadError, once and again)."""
        if self._found.protection_error is not None:
            raise waf.WafReadError(self._found.protection_error)
        if self._found.protection is None:
            d = self.deployment
            try:
                self._found.protection = waf.read_protection(
                    d.client("wafv2"),
                    str(d.output("UserPoolArn")),
                    rule_group_arn=d.output("OriginRuleGroupArn"),
                    expected_action=d.parameter("OriginRuleAction", "Count"),
                )
            except waf.WafReadError as exc:
                self._found.protection_error = str(exc)
                raise
        return self._found.protection

    def check_web_acl(self) -> list[CheckResult]:
        d = self.deployment
        pool = str(d.output("UserPoolArn")).rsplit("/", 1)[-1]
        protection = self._protection()
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

    def check_pattern_set(self) -> list[CheckResult]:
        d = self.deployment
        wafv2 = d.client("wafv2")
        expected_id = str(d.output("OriginPatternSetId"))
        referenced: set[str] = set()
        problems: list[str] = []
        try:
            protection: waf.Protection | None = self._protection()
        except waf.WafReadError:
            protection = None
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
        values = self._origin_values()
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
                f"{pattern_set['Name']} does not accept AWSCURRENT: the proxy's requests are "
                "refused",
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

    def _origin_values(self) -> dict[str, str]:
        """The origin secret's value at each stage it has (kept in memory, never printed)."""
        sm = self.deployment.client("secretsmanager")
        arn = str(self.deployment.output("OriginSecretArn"))
        stages = {
            stage
            for labels in (
                sm.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}
            ).values()
            for stage in labels
        }
        return {
            stage: str(sm.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
            for stage in STAGES
            if stage in stages
        }

    # ------------------------------------------------------------------ rotation and alarms
    def check_alarms(self) -> list[CheckResult]:
        names = sorted(self.deployment.physical_ids(ALARM_TYPE).values())
        if not names:
            return [failed(ALARMS, "the stack has no alarms")]
        cloudwatch = self.deployment.client("cloudwatch")
        found: dict[str, str] = {}
        for start in range(0, len(names), 100):
            pages = cloudwatch.get_paginator("describe_alarms").paginate(
                AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for page in pages:
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found[str(alarm["AlarmName"])] = str(alarm["StateValue"])
        self._found.alarm_states = found
        missing = [name for name in names if name not in found]
        if missing:
            return [failed(ALARMS, f"missing from CloudWatch: {', '.join(missing)}")]
        states: dict[str, int] = {}
        for state in found.values():
            states[state] = states.get(state, 0) + 1
        alarming = sorted(name for name, state in found.items() if state == "ALARM")
        detail = (
            f"{len(names)} of {len(names)} exist ("
            + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
            + ")"
        )
        if alarming:
            detail += f"; in ALARM: {', '.join(alarming)} (see the runbook)"
        return [passed(ALARMS, detail)]

    def check_rotation(self) -> list[CheckResult]:
        d = self.deployment
        sm = d.client("secretsmanager")
        arn = str(d.output("OriginSecretArn"))
        secret = sm.describe_secret(SecretId=arn)
        problems: list[str] = []
        if not secret.get("RotationEnabled"):
            problems.append("rotation is not enabled on the origin secret")
        function = str(secret.get("RotationLambdaARN") or "")
        rotator = d.output("RotatorFunctionName")
        if function and rotator and not function.endswith(f":function:{rotator}"):
            problems.append(
                f"the secret is rotated by {function.rsplit(':', 1)[-1]}, not {rotator}"
            )
        stages = secret.get("VersionIdsToStages") or {}
        pending = [
            v
            for v, labels in stages.items()
            if "AWSPENDING" in labels and "AWSCURRENT" not in labels
        ]
        in_progress = ""
        if pending:
            created = self._version_created(sm, arn, pending[0])
            age = (self._now() - created).total_seconds() if created else None
            if age is None or age > STUCK_ROTATION_SECONDS:
                since = f" since {created:%Y-%m-%d %H:%M} UTC" if created else ""
                problems.append(
                    f"a rotation did not finish: a version is AWSPENDING{since} (Secrets "
                    "Manager refuses new rotations until it is resolved; see the runbook)"
                )
            else:
                in_progress = f"; a rotation is in progress (started {int(age)} s ago)"
        failed_alarm = self.deployment.physical_ids(ALARM_TYPE).get("RotationFailedAlarm")
        if failed_alarm and self._found.alarm_states.get(failed_alarm) == "ALARM":
            problems.append(f"the alarm {failed_alarm} is in ALARM: a rotation step failed")
        if problems:
            return [failed(ROTATION, "; ".join(problems))]
        rules = secret.get("RotationRules") or {}
        every = rules.get("ScheduleExpression") or (
            f"every {rules['AutomaticallyAfterDays']} days"
            if "AutomaticallyAfterDays" in rules
            else "on a schedule"
        )
        detail = f"enabled ({every}) with {function.rsplit(':', 1)[-1] or 'its rotation function'}"
        for key, label in (("LastRotatedDate", "last rotated"), ("NextRotationDate", "next")):
            if isinstance(secret.get(key), dt.datetime):
                detail += f"; {label} {secret[key]:%Y-%m-%d %H:%M} UTC"
        return [passed(ROTATION, detail + (in_progress or "; no rotation left unfinished"))]

    @staticmethod
    def _version_created(sm: Any, arn: str, version_id: str) -> dt.datetime | None:
        kwargs: dict[str, Any] = {"SecretId": arn}
        while True:  # ListSecretVersionIds has a NextToken but no paginator in botocore
            page = sm.list_secret_version_ids(**kwargs)
            for version in page.get("Versions", []):
                if version.get("VersionId") == version_id and version.get("CreatedDate"):
                    created: dt.datetime = version["CreatedDate"]
                    return created if created.tzinfo else created.replace(tzinfo=dt.UTC)
            if not page.get("NextToken"):
                return None
            kwargs["NextToken"] = page["NextToken"]

    # ------------------------------------------------------------------ direct requests
    def _send_direct_probes(self) -> None:
        d = self.deployment
        client_id = self.credentials.client_id if self.credentials else "make-verify"
        scope = self.credentials.scope if self.credentials else ""
        self._found.probes_sent_at = self._now()
        for probe in PROBES:
            answer = self.prober.direct(d.pool_token_url, probe, client_id, scope)
            self._found.probes[probe] = _Probe(probe, answer)

    def check_direct_probes(self) -> list[CheckResult]:
        d = self.deployment
        coverage_all = d.parameter("OriginRuleCoverage") == "AllTokenRequests"
        protection = self._found.protection
        rule = protection.rules.get(waf.TOKEN_RULE) if protection else None
        action = rule.action if rule else d.parameter("OriginRuleAction", "Count").upper()
        covered = {BASIC: True, BODY: True, CODE: coverage_all}
        if action == "COUNT" and rule is not None and protection and protection.web_acl_arn:
            self._wait_for_samples(protection.web_acl_arn, rule, [p for p in PROBES if covered[p]])
        return [self._judge(probe, covered[probe], action, rule, protection) for probe in PROBES]

    def _wait_for_samples(self, web_acl_arn: str, rule: waf.OriginRule, wanted: list[str]) -> None:
        """Poll WAF's samples of the token rule until this run's counted probes show, or the
        wait is over; then look for earlier make verify probes of the missing kinds."""
        wafv2 = self.deployment.client("wafv2")
        sent = self._found.probes_sent_at or self._now()
        deadline = self._started + self._sample_wait
        probes = self._found.probes
        try:
            while True:
                window = (sent - dt.timedelta(seconds=30), self._now())
                samples, _ = waf.sampled_requests(wafv2, web_acl_arn, rule.metric_name, *window)
                for probe, entry in probes.items():
                    own = self.prober.user_agent(probe)
                    entry.sample = next(
                        (s for s in samples if s.user_agent == own and waf.is_rule(s, rule)),
                        entry.sample,
                    )
                if all(probes[p].sample for p in wanted):
                    return
                if self._monotonic() + SAMPLE_POLL_SECONDS > deadline:
                    break
                self._sleep(SAMPLE_POLL_SECONDS)
            window = (self._now() - READINESS_WINDOW, self._now())
            earlier, _ = waf.sampled_requests(wafv2, web_acl_arn, rule.metric_name, *window)
        except waf.WafReadError as exc:
            self._found.sample_error = str(exc)
            return
        for probe in wanted:
            kind = self.prober.user_agent(probe).split(";")[0]
            probes[probe].earlier = next(
                (
                    s
                    for s in reversed(earlier)
                    if s.user_agent.startswith(kind)
                    and waf.is_rule(s, rule)
                    and s.action == "COUNT"
                ),
                None,
            )

    def _judge(
        self,
        probe: str,
        covered: bool,
        action: str,
        rule: waf.OriginRule | None,
        protection: waf.Protection | None,
    ) -> CheckResult:
        name = DIRECT[probe]
        entry = self._found.probes[probe]
        answer = entry.answer
        url = self.deployment.pool_token_url
        if not answer.answered:
            return failed(name, f"{url} gave {answer.describe()}")
        refused = _refused_by_rule(answer, rule)
        said = f"the pool answered {answer.describe()}"
        wrong = " to the deliberately wrong secret" if probe != CODE else ""
        if not covered:
            if refused:
                return failed(
                    name,
                    "refused by the origin rule, which must leave other grants to the pool "
                    "(OriginRuleCoverage=ClientCredentials)",
                )
            if action == "COUNT" and entry.sample is not None:
                return failed(
                    name, "counted by the origin rule, which must leave other grants alone"
                )
            if action == "COUNT" and all(self._found.probes[p].sample for p in (BASIC, BODY)):
                return passed(
                    name,
                    f"not counted (WAF sampled this run's client_credentials requests, not this "
                    f"one) and not refused: {said}",
                )
            return passed(name, f"not refused: {said}")
        if protection is None or protection.web_acl is None or rule is None:
            why = (
                "no web ACL runs the origin rules"
                if self._found.protection_error is None
                else (f"the web ACL could not be read ({self._found.protection_error})")
            )
            if refused:
                return passed(name, f"refused with {answer.describe()} ({why} here, so not proven)")
            return failed(name, f"not refused: {said}{wrong} ({why})")
        if action == "BLOCK":
            if refused:
                return passed(
                    name, f"refused by {rule.name}: {answer.status} {answer.error or ''}".rstrip()
                )
            hint = (
                " (Cognito may not forward the form body to WAF: see the README's Known limits, "
                "OriginRuleCoverage=AllTokenRequests)"
                if probe != CODE and not self.deployment.is_local
                else ""
            )
            return failed(name, f"not refused: {said}{wrong}{hint}")
        if refused:
            return failed(
                name,
                f"refused ({answer.describe()}) though {rule.name} only counts "
                "(OriginRuleAction=Count)",
            )
        if entry.sample is not None:
            return passed(
                name,
                f"counted by {rule.name} (WAF sampled it with action {entry.sample.action}); "
                f"{said}{wrong}",
            )
        if self._found.sample_error:
            return cannot_check(
                name,
                f"{said}{wrong}, and WAF's samples could not be read ({self._found.sample_error})",
            )
        if entry.earlier is not None:
            return passed(
                name,
                f"counted by {rule.name}: WAF sampled an earlier make verify request of this "
                f"kind ({entry.earlier.timestamp:%H:%M} UTC) with action COUNT; this run's is not "
                f"sampled yet; {said}{wrong}",
            )
        return cannot_check(
            name,
            f"{said}{wrong}, but WAF had not sampled it {int(self._sample_wait)} s later (samples "
            "can lag by minutes): run make verify again, or watch the dashboard's direct requests",
        )

    # ------------------------------------------------------------------ closing lines
    def readiness(self) -> list[str]:
        """How many direct requests from other clients the origin rules matched lately."""
        protection = self._found.protection
        if protection is None or protection.web_acl_arn is None or not protection.rules:
            return []
        action = self.deployment.parameter("OriginRuleAction", "Count")
        wafv2 = self.deployment.client("wafv2")
        now = self._now()
        others = 0.0
        exact = True
        for metric in sorted({rule.metric_name for rule in protection.rules.values()}):
            samples, population = waf.sampled_requests(
                wafv2, protection.web_acl_arn, metric, now - READINESS_WINDOW, now
            )
            rules = [r for r in protection.rules.values() if r.metric_name == metric]
            ours = [s for s in samples if any(waf.is_rule(s, r) for r in rules)]
            theirs = [s for s in ours if not s.user_agent.startswith(USER_AGENT_PRODUCT)]
            if population > len(samples):
                exact = False
                total = sum(s.weight for s in samples) or 1
                others += population * sum(s.weight for s in theirs) / total
            else:
                others += sum(s.weight for s in theirs)
        count = f"{'about ' if not exact else ''}{round(others)}"
        requests_ = "request" if round(others) == 1 else "requests"
        if action == "Count":
            if round(others) == 0:
                return [
                    "No client but make verify called the pool directly in the last 3 hours "
                    "(the origin rules counted nothing else).",
                    "When that holds over your clients' longest token lifetime, switch to "
                    "OriginRuleAction=Block (README: Deploy, Last step).",
                ]
            return [
                f"{count} direct token {requests_} from other clients reached the pool in the last "
                "3 hours (counted by the origin rules; the WAF console's sampled requests show "
                "their source).",
                "Move those clients to the proxy before switching to OriginRuleAction=Block.",
            ]
        return [
            f"The origin rules refused {count} direct token {requests_} from other clients in the "
            "last 3 hours."
        ]


# ---------------------------------------------------------------------- helpers
def _refused_by_rule(answer: Answer, rule: waf.OriginRule | None) -> bool:
    """Whether the answer is the origin rule's refusal (its custom response when known)."""
    if rule is not None and rule.block_body is not None:
        return answer.status == rule.block_status and answer.body.strip() == rule.block_body.strip()
    return answer.status == 403 and answer.error == "access_denied"


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


def _aws_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', 'error')}"
    return str(exc) if isinstance(exc, waf.WafReadError) else type(exc).__name__
