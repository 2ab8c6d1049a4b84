"""`make verify` against the local stack, as users run it: ``python -m verify --local`` in a
subprocess, reading the stack's state file, talking to moto, the proxy and the local pool over
HTTP. The stacks run in this process on ephemeral ports (a `make run` in progress is left
alone); each test that breaks something puts it back."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.cloudformation_template import default_template
from local.cognito_token_endpoint import DEMO_CLIENTS_PATH
from local.commands.rotate import finish_rotation, rotator, stage_pending_version
from local.moto_server import aws_client
from local.stack import LocalStack, read_running_state
from tests.e2e.harness import start_local_stack
from verify.checks import Verification, utc_now
from verify.probes import Credentials
from verify.report import CheckResult
from verify.stack import from_local_state

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = json.loads(DEMO_CLIENTS_PATH.read_text(encoding="utf-8"))[0]
CHECKS = (
    "stack",
    "token through the proxy",
    "cached token",
    "web ACL on the pool",
    "pattern set",
    "alarms",
    "rotation",
    "direct client_credentials, HTTP Basic",
    "direct client_credentials, secret in the body",
    "direct authorization_code",
)


def start_stack(directory: Path, **parameters: str) -> LocalStack:
    return start_local_stack(f"verify-{uuid.uuid4().hex[:6]}", directory, **parameters)


@pytest.fixture(scope="module")
def blocking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack as `make run` starts it: the rules refuse (OriginRuleAction Block)."""
    stack = start_stack(tmp_path_factory.mktemp("verify-block"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def counting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A first deployment's settings: the rules only count (OriginRuleAction Count)."""
    stack = start_stack(tmp_path_factory.mktemp("verify-count"), OriginRuleAction="Count")
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """WebAcl External: the pool keeps its own web ACL, which references the rule group."""
    stack = start_stack(tmp_path_factory.mktemp("verify-external"), WebAcl="External")
    yield stack
    stack.stop()


def make_verify(stack: LocalStack, **env: str) -> subprocess.CompletedProcess[str]:
    """`make verify LOCAL=1`, with the stack's state file."""
    assert stack.config.state_file is not None
    environment = {
        "PATH": "/usr/bin:/bin",
        "LOCAL_STACK_STATE": str(stack.config.state_file),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "verify", "--local"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """Each check's status and detail, by check name."""
    found: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(pass|FAIL|skip)  ([^:]+): (.*)$", line)
        if match:
            found[match[2]] = (match[1], match[3])
    return found


def secrets_of(stack: LocalStack) -> list[str]:
    """Everything make verify must never print: the client's secret and the origin values."""
    assert stack.aws is not None
    sm = aws_client("secretsmanager", stack.aws.endpoint_url, stack.aws.region)
    stages = sm.describe_secret(SecretId=stack.aws.secret_arn)["VersionIdsToStages"]
    values = [
        sm.get_secret_value(SecretId=stack.aws.secret_arn, VersionId=version)["SecretString"]
        for version in stages
    ]
    return [DEMO["client_secret"], *values]


def assert_nothing_secret(result: subprocess.CompletedProcess[str], stack: LocalStack) -> None:
    printed = result.stdout + result.stderr
    for secret in secrets_of(stack):
        assert secret not in printed
    assert "eyJ" not in printed  # no JWT, not even a piece of one


def wafv2(stack: LocalStack) -> Any:
    assert stack.aws is not None
    return aws_client("wafv2", stack.aws.endpoint_url, stack.aws.region)


# ---------------------------------------------------------------------- passing
def test_make_verify_passes_against_the_local_stack(blocking: LocalStack) -> None:
    # GIVEN the local stack as `make run` starts it (its state file written)
    # WHEN `make verify LOCAL=1` runs, with the shipped demo client by default
    result = make_verify(blocking)

    # THEN every check passes, one line each, and it exits 0
    checks = lines(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(checks) == list(CHECKS)
    assert {status for status, _ in checks.values()} == {"pass"}, result.stdout
    assert f"client {DEMO['client_id']}" in result.stdout.splitlines()[0]
    # AND the direct client_credentials requests were refused by the rule, by each method
    for name in CHECKS[7:9]:
        assert (
            "refused by token-endpoint-requires-origin-verify: 403 access_denied"
            in (checks[name][1])
        )
    assert "not refused" in checks["direct authorization_code"][1]
    assert "served from the cache" in checks["cached token"][1]
    alarms = [r for r in default_template()["Resources"].values() if r["Type"].endswith("::Alarm")]
    assert f"{len(alarms)} of {len(alarms)} exist" in checks["alarms"][1]
    assert result.stdout.splitlines()[-1].startswith("make verify: 10 pass, 0 FAIL, 0 cannot")
    # AND nothing secret was printed
    assert_nothing_secret(result, blocking)


def test_under_count_the_direct_requests_are_counted_and_other_clients_reported(
    counting: LocalStack,
) -> None:
    # GIVEN a first deployment's Count, and no client calling the pool directly
    # WHEN make verify runs
    quiet = make_verify(counting)

    # THEN its direct client_credentials requests were counted (WAF's samples show them), the
    # code exchange neither counted nor refused, and the closing lines say Block is next
    checks = lines(quiet)
    assert quiet.returncode == 0, quiet.stdout
    for name in CHECKS[7:9]:
        assert checks[name][0] == "pass"
        assert "counted by token-endpoint-requires-origin-verify" in checks[name][1]
        assert "400 invalid_client to the deliberately wrong secret" in checks[name][1]
    assert checks["direct authorization_code"][1].startswith("not counted")
    assert "No client but make verify called the pool directly" in quiet.stdout
    assert "OriginRuleAction=Block" in quiet.stdout

    # WHEN a client still asks the pool directly, and make verify runs again
    direct = requests.post(
        counting.issuer_token_url,
        data={"grant_type": "client_credentials"},
        auth=(DEMO["client_id"], DEMO["client_secret"]),
        timeout=30,
    )
    busy = make_verify(counting)

    # THEN that request was counted, not refused, and make verify says to move that client
    assert direct.status_code == 200
    assert busy.returncode == 0, busy.stdout
    assert "1 direct token request from other clients reached the pool" in busy.stdout
    assert "Move those clients to the proxy before switching" in busy.stdout
    assert_nothing_secret(busy, counting)


# ---------------------------------------------------------------------- failing
def test_a_pattern_set_that_accepts_any_value_fails_the_pattern_set_check(
    blocking: LocalStack,
) -> None:
    # GIVEN someone adds an expression that matches anything to the pattern set
    aws = blocking.aws
    assert aws is not None
    waf = wafv2(blocking)
    key = {"Name": aws.pattern_set_name, "Scope": "REGIONAL", "Id": aws.pattern_set_id}
    before = waf.get_regex_pattern_set(**key)
    original = before["RegexPatternSet"]["RegularExpressionList"]
    waf.update_regex_pattern_set(
        **key,
        RegularExpressionList=[*original, {"RegexString": ".*"}],
        LockToken=before["LockToken"],
    )
    try:
        # WHEN make verify runs
        result = make_verify(blocking)
    finally:
        waf.update_regex_pattern_set(
            **key,
            RegularExpressionList=original,
            LockToken=waf.get_regex_pattern_set(**key)["LockToken"],
        )

    # THEN it fails, naming the check and what is wrong, and nothing else fails
    checks = lines(result)
    assert result.returncode == 1
    assert checks["pattern set"] == (
        "FAIL",
        "entry 2 of 2 accepts any value (it matched a random one)",
    )
    assert [name for name, (status, _) in checks.items() if status != "pass"] == ["pattern set"]
    assert_nothing_secret(result, blocking)


def test_a_pool_without_the_web_acl_fails_the_association_and_direct_checks(
    blocking: LocalStack,
) -> None:
    # GIVEN the web ACL is disassociated from the pool
    aws = blocking.aws
    assert aws is not None
    waf = wafv2(blocking)
    waf.disassociate_web_acl(ResourceArn=aws.user_pool_arn)
    try:
        # WHEN make verify runs
        result = make_verify(blocking)
    finally:
        waf.associate_web_acl(WebACLArn=aws.web_acl_arn, ResourceArn=aws.user_pool_arn)

    # THEN it fails, naming the association; the local pool, unprotected, answered the direct
    # client_credentials requests itself, and those checks fail too
    checks = lines(result)
    assert result.returncode == 1
    assert checks["web ACL on the pool"][0] == "FAIL"
    assert "no web ACL is associated with the pool" in checks["web ACL on the pool"][1]
    for name in CHECKS[7:9]:
        assert checks[name][0] == "FAIL"
        assert checks[name][1].startswith("not refused: the pool answered 400 invalid_client")
    assert checks["pattern set"][0] == checks["token through the proxy"][0] == "pass"


def test_a_missing_alarm_fails_the_alarms_check(blocking: LocalStack) -> None:
    # GIVEN one of the stack's alarms was deleted
    aws = blocking.aws
    assert aws is not None
    cloudwatch = aws_client("cloudwatch", aws.endpoint_url, aws.region)
    name = aws.alarm_names[0]
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    cloudwatch.delete_alarms(AlarmNames=[name])
    try:
        # WHEN make verify runs
        result = make_verify(blocking)
    finally:
        keep = ("AlarmName", "AlarmDescription", "Metrics", "ComparisonOperator", "Threshold")
        keep += ("EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData")
        cloudwatch.put_metric_alarm(**{k: alarm[k] for k in keep if k in alarm})

    # THEN it fails, naming the alarm
    assert result.returncode == 1
    assert lines(result)["alarms"] == ("FAIL", f"missing from CloudWatch: {name}")


def run_in_process(stack: LocalStack, now: dt.datetime | None = None) -> dict[str, CheckResult]:
    """The same checks in this process (to move the clock forward)."""
    assert stack.config.state_file is not None
    state = read_running_state(stack.config.state_file)
    assert state is not None
    verification = Verification(
        from_local_state(state),
        Credentials(DEMO["client_id"], DEMO["client_secret"], DEMO["scopes"][0]),
        now=(lambda: now) if now else utc_now,
        sleep=lambda _seconds: None,
    )
    return {result.name: result for result in verification.run(lambda _result: None)}


def test_a_rotation_left_unfinished_fails_the_rotation_check(blocking: LocalStack) -> None:
    # GIVEN a rotation that staged its new version AWSPENDING and went no further
    assert blocking.config.state_file is not None
    state = read_running_state(blocking.config.state_file)
    assert state is not None
    token = str(uuid.uuid4())
    function = rotator(state, {})
    try:
        stage_pending_version(state, function, token)
        # WHEN make verify runs at once, then as if 20 minutes later
        now = run_in_process(blocking)["rotation"]
        later = run_in_process(blocking, utc_now() + dt.timedelta(minutes=20))["rotation"]
    finally:
        finish_rotation(state, token)  # AWSPENDING removed, as Secrets Manager would clear it
        function.close()

    # THEN at once it is a rotation in progress; 20 minutes on, a rotation that did not finish
    assert now.status == "pass", now.detail
    assert "a rotation is in progress" in now.detail
    assert later.status == "FAIL"
    assert later.detail.startswith("a rotation did not finish: a version is AWSPENDING since")


# ---------------------------------------------------------------------- WebAcl External
def test_make_verify_checks_that_the_pools_own_web_acl_runs_the_rule_group(
    external: LocalStack,
) -> None:
    # GIVEN a stack deployed with WebAcl External, the pool's own web ACL extended as the
    # README says
    # WHEN make verify runs
    result = make_verify(external)

    # THEN every check passes, and the web ACL line names the pool's own web ACL and the
    # reference to the rule group
    checks = lines(result)
    assert result.returncode == 0, result.stdout
    assert {status for status, _ in checks.values()} == {"pass"}, result.stdout
    detail = checks["web ACL on the pool"][1]
    assert detail.startswith(f"{external.config.stack_name}-existing (the pool's own)")
    assert (
        f"from rule group {external.config.stack_name}, referenced by web ACL rule "
        "origin-verify at priority 0"
    ) in detail
    assert "WebAcl=External" in checks["stack"][1]


def test_a_web_acl_without_the_reference_fails_with_web_acl_external(external: LocalStack) -> None:
    # GIVEN the pool's web ACL lost its rule that references the rule group
    aws = external.aws
    assert aws is not None
    waf = wafv2(external)
    key = {"Name": aws.web_acl_name, "Scope": "REGIONAL", "Id": aws.web_acl_id}
    acl = waf.get_web_acl(**key)
    rules = acl["WebACL"]["Rules"]
    own = [
        {k: v for k, v in rule.items() if v is not None}
        for rule in rules
        if "RuleGroupReferenceStatement" not in rule["Statement"]
    ]
    update = {
        "DefaultAction": acl["WebACL"]["DefaultAction"],
        "VisibilityConfig": acl["WebACL"]["VisibilityConfig"],
    }
    waf.update_web_acl(**key, **update, Rules=own, LockToken=acl["LockToken"])
    try:
        # WHEN make verify runs
        result = make_verify(external)
    finally:
        token = waf.get_web_acl(**key)["LockToken"]
        restored = [{k: v for k, v in rule.items() if v is not None} for rule in rules]
        waf.update_web_acl(**key, **update, Rules=restored, LockToken=token)

    # THEN it fails, naming the web ACL and the missing reference, and the direct requests
    # that now reach the pool
    checks = lines(result)
    assert result.returncode == 1
    assert checks["web ACL on the pool"][0] == "FAIL"
    assert (
        "does not run the origin rules (no rule references rule group"
        in (checks["web ACL on the pool"][1])
    )
    assert checks["direct client_credentials, HTTP Basic"][0] == "FAIL"
