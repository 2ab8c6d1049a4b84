"""template.yaml's operations pieces, checked against the code: the dashboard and the alarms
read the metrics the functions emit (names, namespace, dimensions) with either front end, the
dashboard's savings figures, every log group has a retention, the access log format leaks no
credential, the invalidation index and its IAM grant, the proxy's environment matches its
settings, and `sam deploy --guided` has a default for everything but the two values only the
user knows."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation_template import as_deployed, default_template, resource
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
FRONTENDS = ("HttpApi", "FunctionUrl")
REQUIRED = {"CognitoDomain": "auth.example.com", "UserPoolId": "eu-west-1_Ab1"}


def resources_of(kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: spec for name, spec in default_template()["Resources"].items() if spec["Type"] == kind
    }


def service_name(function: str) -> str:
    return str(
        resource(function)["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    )


def deployed(frontend: str) -> dict[str, Any]:
    """template.yaml as deployed with ``frontend`` (conditions applied)."""
    return as_deployed({**REQUIRED, "Frontend": frontend})


def dashboard(frontend: str = "HttpApi") -> dict[str, Any]:
    """The dashboard body as deployed with ``frontend``: its Fn::Sub variables (the front end's
    widgets) put in, every other ${...} replaced by a placeholder."""
    sub = deployed(frontend)["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body, variables = sub
    for name, value in variables.items():
        body = body.replace("${" + name + "}", value["Fn::Sub"])
    references = set(re.findall(r"\$\{([^}]+)\}", body))
    template = default_template()
    for ref in references:
        target = ref.split(".")[0]
        assert (
            target in template["Parameters"]
            or target in deployed(frontend)["Resources"]
            or target.startswith("AWS::")
        ), ref
    data: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))
    return data


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_the_dashboard_shows_every_metric_the_functions_emit(frontend: str) -> None:
    # GIVEN the dashboard's metric rows and SEARCH expressions with either front end
    rows: list[list[Any]] = []
    expressions: list[str] = []
    for widget in dashboard(frontend)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expressions.append(row[0]["expression"])
            else:
                rows.append(row)
    own = [row for row in rows if row[0] == "<MetricsNamespace>"]
    shown = {row[1] for row in own} | {
        name for e in expressions for name in re.findall(r'MetricName=\\?"(\w+)\\?"', e)
    }

    # THEN every metric of both functions (and, with the HTTP API, the access log's) is on it
    log_metrics = LOG_METRICS if frontend == "HttpApi" else set()
    assert shown >= PROXY_METRICS | ROTATOR_METRICS | log_metrics
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
    # AND the AWS metrics are the stack's own function, front end and web ACL rule
    aws_rows = [row for row in rows if row[0].startswith("AWS/")]
    front = {"AWS/ApiGateway"} if frontend == "HttpApi" else set()
    assert {row[0] for row in aws_rows} == {"AWS/Lambda", "AWS/WAFV2"} | front
    if frontend == "FunctionUrl":  # the function URL's own metrics, by function name
        url_metrics = {row[1] for row in aws_rows if row[1].startswith("Url")}
        assert url_metrics == {"UrlRequestCount", "Url4xxCount", "Url5xxCount", "UrlRequestLatency"}
    # (each origin rule's Blocked and Counted requests, under the rule group's and the rule's
    # metric names: WAF lists a rule group's rules under the group, whichever web ACL runs it)
    group = resource("OriginRuleGroup")["Properties"]
    assert group["VisibilityConfig"]["MetricName"] == {"Ref": "AWS::StackName"}
    waf_rows = [row for row in aws_rows if row[0] == "AWS/WAFV2"]
    shown_waf = set()
    for row in waf_rows:
        dims = [x for x in row[2:] if not isinstance(x, dict)]
        pairs = dict(zip(dims[::2], dims[1::2], strict=True))
        assert set(pairs) == {"RuleGroup", "Region", "Rule"}, row
        assert pairs["RuleGroup"] == "<AWS::StackName>", row
        assert pairs["Region"] == "<AWS::Region>", row
        shown_waf.add((row[1], pairs["Rule"]))
    rule_metrics = {rule["VisibilityConfig"]["MetricName"] for rule in group["Rules"]}
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
    (alarm_widget,) = [w for w in dashboard(frontend)["widgets"] if w["type"] == "alarm"]
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


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_every_alarm_notifies_the_optional_topic_and_reads_emitted_metrics(frontend: str) -> None:
    stack = deployed(frontend)["Resources"]
    alarms = {
        name: spec for name, spec in stack.items() if spec["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == ALARMS
    proxy, rotator = service_name("TokenProxyFunction"), service_name("RotatorFunction")
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert resource(name)["Properties"]["AlarmActions"] == TOPIC_ACTIONS, name
        assert resource(name)["Properties"]["OKActions"] == TOPIC_ACTIONS, name
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
            elif frontend == "HttpApi":
                assert metric["Namespace"] in ("AWS/Lambda", "AWS/ApiGateway"), name
            else:
                assert metric["Namespace"] == "AWS/Lambda", name
    # AND the 5xx alarm counts the front end's own 5xx answers
    errors = _metric_stats(alarms["ApiServerErrorsAlarm"])[0]
    assert (errors["Namespace"], errors["MetricName"]) == (
        ("AWS/ApiGateway", "5xx") if frontend == "HttpApi" else ("AWS/Lambda", "Url5xxCount")
    )


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
    api = resource("TokenApiApiGatewayDefaultStage")["Properties"]["AccessLogSettings"]
    assert api["DestinationArn"] == {"Fn::GetAtt": ["TokenApiAccessLogs", "Arn"]}


def test_the_access_log_is_json_with_the_request_facts_and_no_credentials() -> None:
    # GIVEN the access log format, its $context variables replaced
    fmt = resource("TokenApiApiGatewayDefaultStage")["Properties"]["AccessLogSettings"]["Format"]
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


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_the_outputs_name_the_token_endpoint_the_dashboard_and_the_functions(
    frontend: str,
) -> None:
    outputs = deployed(frontend)["Outputs"]
    endpoint = outputs["TokenEndpoint"]["Value"]["Fn::Sub"]
    assert (endpoint if isinstance(endpoint, str) else endpoint[0]).endswith("/oauth2/token")
    assert outputs["Frontend"]["Value"] == {"Ref": "Frontend"}
    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    assert "dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert outputs["TokenProxyFunctionName"]["Value"] == {"Ref": "TokenProxyFunction"}
    assert outputs["RotatorFunctionName"]["Value"] == {"Ref": "RotatorFunction"}


def test_the_dashboard_shows_the_savings_over_its_period() -> None:
    # GIVEN the dashboard's single-value widgets
    widgets = [w for w in dashboard()["widgets"] if w["properties"].get("view") == "singleValue"]
    assert [w["properties"]["title"] for w in widgets] == [
        "Cognito requests avoided (tokens served from the cache)",
        "Their list price (USD, at <CognitoPricePerThousandTokens> per 1,000 token requests)",
        "Hit ratio over the dashboard's period (%)",
    ]
    expressions = []
    for widget in widgets:
        properties = widget["properties"]
        # THEN each one sums its metrics over the dashboard's whole time range
        assert properties["setPeriodToTimeRange"] is True
        assert properties["stat"] == "Sum"
        (visible,) = [row[0] for row in properties["metrics"] if isinstance(row[0], dict)]
        hidden = {
            row[-1]["id"]: row[1] for row in properties["metrics"] if not isinstance(row[0], dict)
        }
        # AND its expression reads only its own hidden metrics, the proxy's own (service
        # dimension token-proxy)
        ids = set(re.findall(r"\b([a-z][a-z0-9]*)\b", visible["expression"])) - {"fill"}
        assert ids == set(hidden), visible["expression"]
        assert set(hidden.values()) <= PROXY_METRICS
        assert all(row[-1]["visible"] is False for row in properties["metrics"][1:])
        expressions.append(visible["expression"].replace(" ", ""))
    # AND the figures: hits (L1 and DynamoDB) avoided a Cognito request each, priced by the
    # parameter, out of every token request the service answered (as the hit ratio graph)
    avoided = "FILL(l1,0)+FILL(ddb,0)"
    assert expressions[0] == avoided
    assert expressions[1] == f"({avoided})*<CognitoPricePerThousandTokens>/1000"
    assert expressions[2] == (f"100*({avoided})/({avoided}+FILL(miss,0)+FILL(ra,0)+FILL(neg,0))")
    (ratio_graph,) = [
        w
        for w in dashboard()["widgets"]
        if w["properties"].get("title", "").startswith("Hit ratio by")
    ]
    total = [
        row[0]
        for row in ratio_graph["properties"]["metrics"]
        if isinstance(row[0], dict) and row[0]["id"] == "total"
    ]
    assert (
        total[0]["expression"].replace(" ", "") == f"{avoided}+FILL(miss,0)+FILL(ra,0)+FILL(neg,0)"
    )
    # AND the price parameter defaults to Cognito's first tier for M2M token requests
    price = default_template()["Parameters"]["CognitoPricePerThousandTokens"]
    assert price["Default"] == 2.25
