"""The checks of ``make verify``, in one run against one deployment.

Order: the direct probes to the pool go out first (WAF's samples of them take time to appear),
then the proxy, the web ACL, the pattern set, rotation and the alarms are checked, and last the
direct probes' answers and samples are judged. Every AWS or HTTP failure becomes a FAIL or a
"cannot check here" line, never a traceback.

The checks, by area, and what each relies on from AWS's documentation:
:mod:`verify.deployment_checks` (the stack, a token through the proxy and its cache),
:mod:`verify.origin_checks` (the web ACL and the pattern set),
:mod:`verify.rotation_checks` (rotation and the alarms) and :mod:`verify.direct_checks` (the
direct requests, and the closing lines about other clients').
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from verify import waf
from verify.deployment_checks import CACHE, PROXY, STACK, check_stack, check_token_and_cache
from verify.direct_checks import DIRECT, SAMPLE_WAIT_SECONDS, DirectRequests
from verify.origin_checks import PATTERN_SET, WEB_ACL, check_pattern_set, check_web_acl
from verify.probes import BASIC, PROBES, Credentials, Prober
from verify.report import CheckResult, cannot_check, failed
from verify.rotation_checks import ALARMS, ROTATION, check_alarms, check_rotation
from verify.stack import Deployment

#: The check lines, in the order they are printed.
ORDER = (STACK, PROXY, CACHE, WEB_ACL, PATTERN_SET, ALARMS, ROTATION, *DIRECT.values())

Emit = Callable[[CheckResult], None]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        self._direct = DirectRequests(
            deployment,
            credentials,
            self.prober,
            now=now,
            monotonic=monotonic,
            sleep=sleep,
            sample_wait_seconds=sample_wait_seconds,
        )
        #: The pool's protection, read once by the first check that needs it (or why not).
        self._protection: waf.Protection | None = None
        self._protection_error: str | None = None
        self._alarm_states: dict[str, str] = {}
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
        self._direct.send()
        for name, check in (
            (PROXY, self.check_token_and_cache),
            (WEB_ACL, self.check_web_acl),
            (PATTERN_SET, self.check_pattern_set),
            (ALARMS, self.check_alarms),
            (ROTATION, self.check_rotation),
        ):
            for result in self._guard_many(name, check):
                record(result)
        direct = self._guard_many(
            DIRECT[BASIC], lambda: self._direct.check(self._protection, self._protection_error)
        )
        if len(direct) == 1:  # the check failed as a whole: one line per probe
            direct = [failed(DIRECT[probe], direct[0].detail) for probe in PROBES]
        for result in direct:
            record(result)
        self.closing = self._guard_lines(lambda: self._direct.readiness(self._protection))
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

    # ------------------------------------------------------------------ the checks
    def check_stack(self) -> CheckResult:
        return check_stack(self.deployment)

    def check_token_and_cache(self) -> list[CheckResult]:
        return check_token_and_cache(
            self.deployment,
            self.credentials,
            self.prober,
            sleep=self._sleep,
            monotonic=self._monotonic,
        )

    def check_web_acl(self) -> list[CheckResult]:
        return check_web_acl(self.deployment, self._read_protection())

    def check_pattern_set(self) -> list[CheckResult]:
        try:
            protection: waf.Protection | None = self._read_protection()
        except waf.WafReadError:
            protection = None
        return check_pattern_set(self.deployment, protection)

    def check_alarms(self) -> list[CheckResult]:
        results, self._alarm_states = check_alarms(self.deployment)
        return results

    def check_rotation(self) -> list[CheckResult]:
        return check_rotation(self.deployment, self._alarm_states, self._now())

    def _read_protection(self) -> waf.Protection:
        """The pool's protection, read once (raises WafReadError, once and again)."""
        if self._protection_error is not None:
            raise waf.WafReadError(self._protection_error)
        if self._protection is None:
            d = self.deployment
            try:
                self._protection = waf.read_protection(
                    d.client("wafv2"),
                    str(d.output("UserPoolArn")),
                    rule_group_arn=d.output("OriginRuleGroupArn"),
                    expected_action=d.parameter("OriginRuleAction", "Count"),
                )
            except waf.WafReadError as exc:
                self._protection_error = str(exc)
                raise
        return self._protection


def _aws_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', 'error')}"
    return str(exc) if isinstance(exc, waf.WafReadError) else type(exc).__name__
