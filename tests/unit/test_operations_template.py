"""template.yaml's operations pieces, checked against the code: the dashboard and the alarms
read the metrics the functions emit (names, namespace, dimensions), every log group has a
retention, the access log format leaks no credential, the invalidation index and its IAM
grant, the proxy's environment matches its settings, and `sam deploy --guided` has a default
for everything but the two values only the user knows."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation_template import default_template, resource
from rotator import model as rotator_model
from token_proxy import origin_verify, telemetry
from token_proxy.settings import Settings
from token_proxy.store import CLIENT_INDEX

ROOT = Path(__file__).resolve().parents[2]
TOPIC_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
ALARMS = {
    "UpstreamErrorRateAlarm",
    "ApiServerErrorsAlarm",
    "ThrottlesAlarm",
    "RotationFailedAlarm",
    "PruneOverdueAlarm",
    "UnprovenBudgetSpentAlarm",
}
NAMESPACE_REF = {"Ref": "MetricsNamespace"}
PROXY_METRICS = {
    value
    for name, value in vars(telemetry).items()
    if name.isupper() and isinstance(value, str) and name != "NAMESPACE"
} | {origin_verify.ORIGIN_SECRET_ERROR}
ROTATOR_METRICS = {
    rotator_model.STEP_SUCCEEDED,
    rotator_model.STEP_FAILED,
    rotator_model.ACCEPTED_VALUES,
}
LOG_METRICS = {"ApiThrottledRequests"}  # the access log's metric filter


def resources_of(kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: spec for name, spec in default_template()["Resources"].items() if spec["Type"] == kind
    }


def service_name(function: str) -> str:
    return str(
        resource(function)["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    )


def dashboard() -> dict[str, Any]:
    """The dashboard body with every ${...} of its Fn::Sub replaced by a placeholder."""
    body = resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
    references = set(re.findall(r"\$\{([^}]+)\}", body))
    template = default_template()
    for ref in references:
        target = ref.split(".")[0]
        assert (
            target in template["Parameters"]
            or target in template["Resources"]
            or target.startswith("AWS::")
        ), ref
    data: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))
    return data


def test_the_dashboard_shows_every_metric_the_functions_emit() -> None:
    # GIVEN the dashboard's metric rows and SEARCH expressions
    rows: list[list[Any]] = []
    expressions: list[str] = []
    for widget in dashboard()["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expressions.append(row[0]["expression"])
            else:
                rows.append(row)
    own = [row for row in rows if row[0] == "<MetricsNamespace>"]
    shown = {row[1] for row in own} | {
        name for e in expressions for name in re.findall(r'MetricName=\\?"(\w+)\\?"', e)
    }

    # THEN every metric of both functions (and the access log's) is on it
    assert shown >= PROXY_METRICS | ROTATOR_METRICS | LOG_METRICS
    # AND each row's dimensions are the ones the emitting function uses
    proxy, rotator = service_name("TokenProxyFunction"), service_name("RotatorFunction")
    for row in own:
        dims = [x for x in row[2:] if not isinstance(x, dict)]
        pairs = dict(zip(dims[::2], dims[1::2], strict=True))
        if row[1] in PROXY_METRICS:
            assert pairs == {"service": proxy}, row
        elif row[1] in ROTATOR_METRICS:
            assert pairs == {"Step": "prune", "service": rotator}, row
        else:
            assert pairs == {}, row
    # AND the AWS metrics are the stack's own function, API and web ACL rule
    aws_rows = [row for row in rows if row[0].startswith("AWS/")]
    assert {row[0] for row in aws_rows} == {"AWS/Lambda", "AWS/ApiGateway", "AWS/WAFV2"}
    # (each rule's Blocked and Counted requests, under the web ACL's and the rule's metric names)
    acl = resource("OriginWebAcl")["Properties"]
    assert acl["VisibilityConfig"]["MetricName"] == {"Ref": "AWS::StackName"}
    waf_rows = [row for row in aws_rows if row[0] == "AWS/WAFV2"]
    shown_waf = set()
    for row in waf_rows:
        dims = [x for x in row[2:] if not isinstance(x, dict)]
        pairs = dict(zip(dims[::2], dims[1::2], strict=True))
        assert set(pairs) == {"WebACL", "Region", "Rule"}, row
        assert pairs["WebACL"] == "<AWS::StackName>", row
        assert pairs["Region"] == "<AWS::Region>", row
        shown_waf.add((row[1], pairs["Rule"]))
    rule_metrics = {rule["VisibilityConfig"]["MetricName"] for rule in acl["Rules"]}
    assert shown_waf == {
        (metric, rule) for metric in ("BlockedRequests", "CountedRequests") for rule in rule_metrics
    }
    for row in (row for row in aws_rows if row[0] != "AWS/WAFV2"):
        assert row[2:4] in (
            ["FunctionName", "<TokenProxyFunction>"],
            ["FunctionName", "<RotatorFunction>"],
            ["ApiId", "<TokenApi>"],
        ), row
    # AND the alarm widget lists every alarm
    (alarm_widget,) = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    assert {a.removesuffix(".Arn>").lstrip("<") for a in alarm_widget["properties"]["alarms"]} == (
        ALARMS
    )


def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    props = alarm["Properties"]
    if "Metrics" not in props:
        return [
            {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
            }
        ]
    return [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]


def test_every_alarm_notifies_the_optional_topic_and_reads_emitted_metrics() -> None:
    alarms = resources_of("AWS::CloudWatch::Alarm")
    assert set(alarms) == ALARMS
    proxy, rotator = service_name("TokenProxyFunction"), service_name("RotatorFunction")
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == TOPIC_ACTIONS, name
        assert props["OKActions"] == TOPIC_ACTIONS, name
        assert props["AlarmDescription"].strip(), name
        for metric in _metric_stats(alarm):
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            if metric["Namespace"] == NAMESPACE_REF:
                if metric["MetricName"] in PROXY_METRICS:
                    assert dims == {"service": proxy}, name
                elif metric["MetricName"] in ROTATOR_METRICS:
                    assert dims["service"] == rotator, name
                    assert set(dims) == {"Step", "service"}, name
                else:
                    assert metric["MetricName"] in LOG_METRICS, name
            else:
                assert metric["Namespace"] in ("AWS/Lambda", "AWS/ApiGateway"), name


def test_the_rotation_alarm_covers_every_step_and_the_prune_alarm_the_schedule() -> None:
    failed = _metric_stats(resource("RotationFailedAlarm"))
    steps = {
        d["Value"]
        for m in failed
        if m["MetricName"] == rotator_model.STEP_FAILED
        for d in m["Dimensions"]
        if d["Name"] == "Step"
    }
    assert steps == {step.value for step in rotator_model.Step} | {"unknown"}
    expression = resource("RotationFailedAlarm")["Properties"]["Metrics"][0]["Expression"]
    for query in resource("RotationFailedAlarm")["Properties"]["Metrics"][1:]:
        assert f"FILL({query['Id']}, 0)" in expression

    prune = resource("PruneOverdueAlarm")["Properties"]
    schedule = resource("RotatorFunction")["Properties"]["Events"]["Prune"]["Properties"]
    assert schedule["Schedule"] == "rate(15 minutes)"
    assert prune["MetricName"] == rotator_model.STEP_SUCCEEDED
    assert prune["Period"] >= 4 * 15 * 60  # several scheduled prunes per period
    assert prune["ComparisonOperator"] == "LessThanThreshold"
    assert prune["TreatMissingData"] == "breaching"


def test_every_log_group_has_the_retention_and_each_function_its_group() -> None:
    groups = resources_of("AWS::Logs::LogGroup")
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    names = {str(g["Properties"].get("LogGroupName", {}).get("Fn::Sub")) for g in groups.values()}
    for function in resources_of("AWS::Serverless::Function"):
        assert f"/aws/lambda/${{{function}}}" in names
    api = resource("TokenApi")["Properties"]["AccessLogSettings"]
    assert api["DestinationArn"] == {"Fn::GetAtt": ["TokenApiAccessLogs", "Arn"]}


def test_the_access_log_is_json_with_the_request_facts_and_no_credentials() -> None:
    # GIVEN the access log format, its $context variables replaced
    fmt = resource("TokenApi")["Properties"]["AccessLogSettings"]["Format"]
    variables = re.findall(r"\$context\.[A-Za-z.]+", fmt)
    line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", fmt))

    # THEN it has the request id, status, latency, source IP and user agent
    assert {"requestId", "status", "latencyMs", "sourceIp", "userAgent"} <= set(line)
    assert {"$context.requestId", "$context.status", "$context.responseLatency"} <= set(variables)
    assert {"$context.identity.sourceIp", "$context.identity.userAgent"} <= set(variables)
    # AND nothing that could carry a credential: no header but the User-Agent, no query
    # string, no body
    assert "$input" not in fmt and "$request" not in fmt and "$method" not in fmt
    lowered = fmt.lower()
    for forbidden in ("authorization", "header", "querystring", "body"):
        assert forbidden not in lowered


def test_the_invalidation_index_and_the_only_grant_to_query_it() -> None:
    table = resource("TokenTable")["Properties"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index == {
        "IndexName": CLIENT_INDEX,
        "KeySchema": [{"AttributeName": "client_id", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert {"AttributeName": "client_id", "AttributeType": "S"} in table["AttributeDefinitions"]
    statements = resource("TokenProxyPolicy")["Properties"]["PolicyDocument"]["Statement"]
    queries = [s for s in statements if "dynamodb:Query" in str(s["Action"])]
    assert queries == [
        {
            "Sid": "ListAClientsItems",
            "Effect": "Allow",
            "Action": "dynamodb:Query",
            "Resource": {"Fn::Sub": f"${{TokenTable.Arn}}/index/{CLIENT_INDEX}"},
        }
    ]
    assert not any("Scan" in str(s["Action"]) for s in statements)


def test_the_proxy_environment_matches_its_settings_and_the_defaults_agree() -> None:
    # GIVEN the function's variables and the Settings fields
    variables = resource("TokenProxyFunction")["Properties"]["Environment"]["Variables"]
    defaults = {f.name.upper(): f.default for f in fields(Settings)}
    parameters = default_template()["Parameters"]

    # THEN every variable but Powertools' is a setting, and each parameter's default is the
    # setting's own default (a local run and a default deployment behave alike)
    assert set(variables) - {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_TRACE_DISABLED"} <= set(
        defaults
    )
    assert variables["L1_MAX_AGE_SECONDS"] == {"Ref": "L1MaxAgeSeconds"}
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            default = parameters[value["Ref"]].get("Default")
            if default is not None:
                assert float(default) == pytest.approx(float(defaults[name])), name


def test_guided_deploy_needs_only_the_domain_and_the_pool_and_samconfig_has_the_rest() -> None:
    parameters = default_template()["Parameters"]
    assert {name for name, spec in parameters.items() if "Default" not in spec} == {
        "CognitoDomain",
        "UserPoolId",
    }
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert config["default"]["global"]["parameters"]["stack_name"]


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = [
        (name, skip)
        for name, spec in default_template()["Resources"].items()
        for skip in (spec.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
        assert len(skip["comment"]) > 20, name


def test_the_outputs_name_the_token_endpoint_the_dashboard_and_the_functions() -> None:
    outputs = default_template()["Outputs"]
    assert outputs["TokenEndpoint"]["Value"]["Fn::Sub"].endswith("/oauth2/token")
    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    assert "dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert outputs["TokenProxyFunctionName"]["Value"] == {"Ref": "TokenProxyFunction"}
    assert outputs["RotatorFunctionName"]["Value"] == {"Ref": "RotatorFunction"}
