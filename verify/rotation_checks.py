"""What keeps the deployment healthy over time: the rotation of the origin secret, and the
alarms.

When a rotation fails, Secrets Manager leaves ``AWSPENDING`` on a version other than
``AWSCURRENT``, and refuses the next rotation while it is there
(https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html): a
pending version older than :data:`STUCK_ROTATION_SECONDS` is a rotation that failed, a younger
one a rotation in progress.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from verify.report import CheckResult, failed, passed
from verify.stack import ALARM_TYPE, Deployment

ROTATION = "rotation"
ALARMS = "alarms"
#: A pending version older than this is a rotation that failed, not one in progress.
STUCK_ROTATION_SECONDS = 15 * 60


def check_alarms(d: Deployment) -> tuple[list[CheckResult], dict[str, str]]:
    """The stack's alarms exist in CloudWatch; with the state of each (by name), which the
    rotation check reads."""
    names = sorted(d.physical_ids(ALARM_TYPE).values())
    if not names:
        return [failed(ALARMS, "the stack has no alarms")], {}
    cloudwatch = d.client("cloudwatch")
    found: dict[str, str] = {}
    for start in range(0, len(names), 100):
        pages = cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        for page in pages:
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                found[str(alarm["AlarmName"])] = str(alarm["StateValue"])
    missing = [name for name in names if name not in found]
    if missing:
        return [failed(ALARMS, f"missing from CloudWatch: {', '.join(missing)}")], found
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
    return [passed(ALARMS, detail)], found


def check_rotation(
    d: Deployment, alarm_states: Mapping[str, str], now: dt.datetime
) -> list[CheckResult]:
    """Rotation is enabled with the stack's rotator, no rotation was left unfinished, and the
    rotation failure alarm (state from ``alarm_states``) is not in ALARM."""
    sm = d.client("secretsmanager")
    arn = str(d.output("OriginSecretArn"))
    secret = sm.describe_secret(SecretId=arn)
    problems: list[str] = []
    if not secret.get("RotationEnabled"):
        problems.append("rotation is not enabled on the origin secret")
    function = str(secret.get("RotationLambdaARN") or "")
    rotator = d.output("RotatorFunctionName")
    if function and rotator and not function.endswith(f":function:{rotator}"):
        problems.append(f"the secret is rotated by {function.rsplit(':', 1)[-1]}, not {rotator}")
    stages = secret.get("VersionIdsToStages") or {}
    pending = [
        v for v, labels in stages.items() if "AWSPENDING" in labels and "AWSCURRENT" not in labels
    ]
    in_progress = ""
    if pending:
        created = _version_created(sm, arn, pending[0])
        age = (now - created).total_seconds() if created else None
        if age is None or age > STUCK_ROTATION_SECONDS:
            since = f" since {created:%Y-%m-%d %H:%M} UTC" if created else ""
            problems.append(
                f"a rotation did not finish: a version is AWSPENDING{since} (Secrets "
                "Manager refuses new rotations until it is resolved; see the runbook)"
            )
        else:
            in_progress = f"; a rotation is in progress (started {int(age)} s ago)"
    failed_alarm = d.physical_ids(ALARM_TYPE).get("RotationFailedAlarm")
    if failed_alarm and alarm_states.get(failed_alarm) == "ALARM":
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
