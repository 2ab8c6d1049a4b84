"""Direct requests to the pool: what the origin rules do with requests that skip the proxy.

Three probes go straight to the pool's token endpoint (:mod:`verify.probes`: client_credentials
with HTTP Basic and with the secret in the body, and an authorization_code request), first of
all checks, because WAF's samples of them take time to appear. Under Block the covered ones must
be refused by the origin rule; under Count they must be counted, which WAF's sampled requests
show (:mod:`verify.waf`; samples can lag by minutes, so an earlier make verify probe of the same
kind counts too); a request the rules do not cover must be neither. The closing lines count the
direct requests of other clients the rules matched in the last three hours (WAF keeps samples
for three hours).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from verify import waf
from verify.probes import BASIC, BODY, CODE, PROBES, USER_AGENT_PRODUCT, Answer, Credentials, Prober
from verify.report import CheckResult, cannot_check, failed, passed
from verify.stack import Deployment

DIRECT = {probe: f"direct {probe}" for probe in PROBES}
#: The whole run stays within a minute; WAF's samples are waited for this long at most.
SAMPLE_WAIT_SECONDS = 40.0
SAMPLE_POLL_SECONDS = 3.0
#: How far back the closing lines look for other clients' direct requests (WAF keeps 3 hours).
READINESS_WINDOW = dt.timedelta(hours=3) - dt.timedelta(minutes=2)


@dataclass
class _Probe:
    name: str
    answer: Answer
    sample: waf.Sample | None = None
    earlier: waf.Sample | None = None


class DirectRequests:
    """The probes of one run, their answers and WAF's samples of them."""

    def __init__(
        self,
        deployment: Deployment,
        credentials: Credentials | None,
        prober: Prober,
        *,
        now: Callable[[], dt.datetime],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sample_wait_seconds: float = SAMPLE_WAIT_SECONDS,
    ) -> None:
        self._deployment = deployment
        self._credentials = credentials
        self._prober = prober
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._sample_wait = sample_wait_seconds
        self._started = monotonic()
        self._probes: dict[str, _Probe] = {}
        self._sent_at: dt.datetime | None = None
        self._sample_error: str | None = None

    def send(self) -> None:
        """Send the probes (first of all checks: WAF's samples of them take time to appear)."""
        d = self._deployment
        client_id = self._credentials.client_id if self._credentials else "make-verify"
        scope = self._credentials.scope if self._credentials else ""
        self._sent_at = self._now()
        for probe in PROBES:
            answer = self._prober.direct(d.pool_token_url, probe, client_id, scope)
            self._probes[probe] = _Probe(probe, answer)

    def check(
        self, protection: waf.Protection | None, protection_error: str | None
    ) -> list[CheckResult]:
        """One line per probe: refused (Block) or counted (Count) when the origin rules cover
        it, neither otherwise (``protection`` None: the web ACL could not be read, for
        ``protection_error``)."""
        d = self._deployment
        coverage_all = d.parameter("OriginRuleCoverage") == "AllTokenRequests"
        rule = protection.rules.get(waf.TOKEN_RULE) if protection else None
        action = rule.action if rule else d.parameter("OriginRuleAction", "Count").upper()
        covered = {BASIC: True, BODY: True, CODE: coverage_all}
        if action == "COUNT" and rule is not None and protection and protection.web_acl_arn:
            self._wait_for_samples(protection.web_acl_arn, rule, [p for p in PROBES if covered[p]])
        return [
            self._judge(
                probe, covered[probe], action, rule, protection, protection_error=protection_error
            )
            for probe in PROBES
        ]

    def _wait_for_samples(self, web_acl_arn: str, rule: waf.OriginRule, wanted: list[str]) -> None:
        """Poll WAF's samples of the token rule until this run's counted probes show, or the
        wait is over; then look for earlier make verify probes of the missing kinds."""
        wafv2 = self._deployment.client("wafv2")
        sent = self._sent_at or self._now()
        deadline = self._started + self._sample_wait
        probes = self._probes
        try:
            while True:
                window = (sent - dt.timedelta(seconds=30), self._now())
                samples, _ = waf.sampled_requests(wafv2, web_acl_arn, rule.metric_name, *window)
                for probe, entry in probes.items():
                    own = self._prober.user_agent(probe)
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
            self._sample_error = str(exc)
            return
        for probe in wanted:
            kind = self._prober.user_agent(probe).split(";")[0]
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
        *,
        protection_error: str | None,
    ) -> CheckResult:
        name = DIRECT[probe]
        entry = self._probes[probe]
        answer = entry.answer
        url = self._deployment.pool_token_url
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
            if action == "COUNT" and all(self._probes[p].sample for p in (BASIC, BODY)):
                return passed(
                    name,
                    f"not counted (WAF sampled this run's client_credentials requests, not this "
                    f"one) and not refused: {said}",
                )
            return passed(name, f"not refused: {said}")
        if protection is None or protection.web_acl is None or rule is None:
            why = (
                "no web ACL runs the origin rules"
                if protection_error is None
                else (f"the web ACL could not be read ({protection_error})")
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
                if probe != CODE and not self._deployment.is_local
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
        if self._sample_error:
            return cannot_check(
                name,
                f"{said}{wrong}, and WAF's samples could not be read ({self._sample_error})",
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

    def readiness(self, protection: waf.Protection | None) -> list[str]:
        """How many direct requests from other clients the origin rules matched lately."""
        if protection is None or protection.web_acl_arn is None or not protection.rules:
            return []
        action = self._deployment.parameter("OriginRuleAction", "Count")
        wafv2 = self._deployment.client("wafv2")
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


def _refused_by_rule(answer: Answer, rule: waf.OriginRule | None) -> bool:
    """Whether the answer is the origin rule's refusal (its custom response when known)."""
    if rule is not None and rule.block_body is not None:
        return answer.status == rule.block_status and answer.body.strip() == rule.block_body.strip()
    return answer.status == 403 and answer.error == "access_denied"
