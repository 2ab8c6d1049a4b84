"""The saved Logs Insights queries in template.yaml (``AWS::Logs::QueryDefinition``), run on the
log lines the proxy actually writes.

The handler answers a small day of real token requests (moto's DynamoDB and Secrets Manager,
Cognito faked over HTTP on loopback), Powertools' JSON lines are captured as Lambda
ships them, and each query is

1. checked field by field: every field its ``filter``, ``stats`` and ``sort`` read is in every
   record the query selects, and every field it only displays is in at least one of them;
2. run on those records by a strict evaluator of the query language's subset the queries use
   (:mod:`tests.fakes.logs_insights`), and its answer compared with what the traffic implies.

So renaming or dropping a log field fails here, not in an operator's console. The fields the
queries rely on are those of the Cognito call line (src/token_proxy/accounting.py) and of the
``token request refused`` line (src/token_proxy/app.py).
"""

from __future__ import annotations

import base64
import copy
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cloudformation_template import default_template, dynamodb_create_table_kwargs
from tests.conftest import REGION, TABLE_NAME
from tests.fakes import logs_insights
from tests.fakes.cognito_endpoint import CLIENT_ID, CLIENT_SECRET, FakeCognito, serving
from tests.fakes.http_endpoint import Received
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import function_log, load_event, log_records, proxy_environment
from token_proxy import accounting, app

# Refusals add no application metric, and Powertools warns about the empty metric set.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

OTHER_CLIENT_ID = "2other345678901"
OTHER_CLIENT_SECRET = "other-secret-not-real-0123"
WRONG_SECRET = "example-wrong-secret-not-real"
UNKNOWN_CLIENT_ID = "9unknown00000000"
UNKNOWN_CLIENT_SECRET = "unknown-secret-not-real"
SLOW_SECONDS = 0.6
#: What tests/conftest.py's aws_environment sets for each test, for the module's one run.
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "CognitoTokenProxy",
}
DOWN_RESOURCE = "https://down.example.com"
#: The template's saved queries, each tested below: a new one fails until it has a test.
QUERIES = (
    "TopClientsByCognitoCallsQuery",
    "LoopingClientsQuery",
    "SlowestCognitoCallsQuery",
    "RefusalsByReasonQuery",
)


class CognitoOfTheDay(FakeCognito):
    """Cognito for two app clients, whose answers to the other client are slow, and which is
    down (503) for requests naming :data:`DOWN_RESOURCE`."""

    def _answer(self, request: Received) -> tuple[int, dict[str, str], str]:
        if "resource=https%3A%2F%2Fdown.example.com" in request.text:
            return 503, {"Content-Type": "application/json"}, "{}"
        header = request.headers.get("Authorization") or ""
        if base64.b64decode(header.removeprefix("Basic ")).startswith(OTHER_CLIENT_ID.encode()):
            time.sleep(SLOW_SECONDS)
        return super()._answer(request)


def token_event(client_id: str, secret: str | None, **form: str) -> dict[str, Any]:
    """events/token_basic.json with other credentials (secret None: the id alone, in the body)
    and other form parameters (already form-encoded)."""
    event = copy.deepcopy(load_event("token_basic.json"))
    if secret is None:
        del event["headers"]["authorization"]
        form = {"client_id": client_id, **form}
    else:
        raw = f"{client_id}:{secret}".encode()
        event["headers"]["authorization"] = "Basic " + base64.b64encode(raw).decode()
    pairs = {"grant_type": "client_credentials", **form}
    event["body"] = "&".join(f"{name}={value}" for name, value in pairs.items())
    return event


def invoke(event: dict[str, Any]) -> int:
    status: int = app.lambda_handler(event, lambda_context())["statusCode"]
    return status


def run_the_day() -> None:
    """The traffic, each answer checked."""
    # The example client: three scope sets, each asked for three times (three Cognito calls);
    # the other client: one scope set, twice (one slow Cognito call).
    statuses = [
        invoke(token_event(CLIENT_ID, CLIENT_SECRET, scope=scope))
        for scope in (
            "example-api%2Fread",
            "example-api%2Fwrite",
            "example-api%2Fwrite+example-api%2Fread",
        )
        for _ in range(3)
    ]
    statuses += [invoke(token_event(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET)) for _ in range(2)]
    assert statuses == [200] * 11
    # Cognito refuses: a client looping on a wrong secret (three times), an unknown client id,
    # a scope the other client may not have.
    refused = [invoke(token_event(CLIENT_ID, WRONG_SECRET)) for _ in range(3)]
    refused.append(invoke(token_event(UNKNOWN_CLIENT_ID, UNKNOWN_CLIENT_SECRET)))
    refused.append(
        invoke(token_event(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, scope="other-api%2Fadmin"))
    )
    assert refused == [400] * 5
    # Cognito is down for a request whose token is not cached: 503.
    down = token_event(CLIENT_ID, CLIENT_SECRET, resource="https%3A%2F%2Fdown.example.com")
    assert invoke(down) == 503
    # The proxy refuses by itself: no secret, another grant, another method, another path.
    own = [
        invoke(token_event(CLIENT_ID, None)),
        invoke(load_event("token_wrong_grant.json")),
        invoke(load_event("token_get_method.json")),
        invoke(load_event("token_function_url_other_path.json")),
    ]
    assert own == [401, 400, 405, 404]


@pytest.fixture(scope="module")
def day_log() -> Iterator[list[dict[str, Any]]]:
    """The function's log records of the day, run once for the module (in moto, with the
    token table from template.yaml; the negative cache off, so each wrong secret reaches
    Cognito; one attempt per call, so Cognito's outage is one call)."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**dynamodb_create_table_kwargs(TABLE_NAME))
        with proxy_environment(monkeypatch):
            monkeypatch.setenv("NEGATIVE_CACHE_SECONDS", "0")
            monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
            cognito = CognitoOfTheDay(
                clients={CLIENT_ID: CLIENT_SECRET, OTHER_CLIENT_ID: OTHER_CLIENT_SECRET}
            )
            with serving(cognito), function_log() as output:
                run_the_day()
            yield log_records(output.getvalue())


def saved_query(logical_id: str) -> str:
    query: str = default_template()["Resources"][logical_id]["Properties"]["QueryString"]
    return query


def test_every_saved_query_of_the_template_is_tested_here() -> None:
    resources = default_template()["Resources"]
    saved = {
        name for name, spec in resources.items() if spec["Type"] == "AWS::Logs::QueryDefinition"
    }
    assert saved == set(QUERIES)
    for name in saved:
        properties = resources[name]["Properties"]
        assert properties["LogGroupNames"] == [{"Ref": "TokenProxyLogs"}], name
        assert properties["Name"]["Fn::Sub"].startswith("${AWS::StackName}/"), name


@pytest.mark.parametrize("logical_id", QUERIES)
def test_every_field_a_saved_query_reads_is_on_the_lines_it_counts(
    logical_id: str, day_log: list[dict[str, Any]]
) -> None:
    # GIVEN a saved query and the fields it reads
    query = saved_query(logical_id)
    fields = logs_insights.fields_read(query)
    assert fields.used, logical_id

    # WHEN it selects among the lines the proxy wrote
    chosen = logs_insights.matching(query, day_log)

    # THEN it selects some, each holds every field the query selects, groups or sorts by, and
    # every field it only shows is on some of them
    assert chosen, f"{logical_id} selects none of the proxy's log lines"
    for record in chosen:
        assert fields.used <= set(record), (logical_id, record.get("message"))
    for name in fields.displayed:
        assert any(name in record for record in chosen), (logical_id, name)


def test_top_clients_by_cognito_calls(day_log: list[dict[str, Any]]) -> None:
    # WHEN the query runs on the day's log
    rows = logs_insights.run(saved_query("TopClientsByCognitoCallsQuery"), day_log)

    # THEN the example client made three billed calls and the other one, slower, one; a client
    # Cognito never confirmed is not among them
    assert [(row["client_id"], row["cognito_calls"]) for row in rows] == [
        (CLIENT_ID, 3),
        (OTHER_CLIENT_ID, 1),
    ]
    assert rows[1]["avg_ms"] >= SLOW_SECONDS * 1000


def test_clients_looping_on_refused_credentials(day_log: list[dict[str, Any]]) -> None:
    # WHEN the query runs on the day's log
    rows = logs_insights.run(saved_query("LoopingClientsQuery"), day_log)

    # THEN the wrong secret's key leads with its three refusals, then the unknown id's key; each
    # key is the short keyed hash, never a client id or secret
    assert [(row["refusals"], row["error"]) for row in rows] == [
        (3, "invalid_client"),
        (1, "invalid_client"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{8}", row["key"]) for row in rows)
    assert rows[0]["key"] != rows[1]["key"]
    # AND each names its client id only by the keyed fingerprint (neither id was confirmed)
    assert all(re.fullmatch(r"[0-9a-f]{12}", row["client_fp"]) for row in rows)
    assert rows[0]["client_fp"] != rows[1]["client_fp"]
    assert all(row["last_refused"] for row in rows)


def test_the_slowest_cognito_calls(day_log: list[dict[str, Any]]) -> None:
    # WHEN the query runs on the day's log
    rows = logs_insights.run(saved_query("SlowestCognitoCallsQuery"), day_log)

    # THEN every call is listed, slowest first: the other client's two (its token, and the
    # scope it was refused, which names no client); the call Cognito gave no answer to is there
    # without a status
    assert len(rows) == 3 + 1 + 5 + 1
    slowest = {(row["status"], row["client_id"], row["error"]) for row in rows[:2]}
    assert slowest == {(200, OTHER_CLIENT_ID, None), (400, None, "invalid_scope")}
    assert all(row["elapsed_ms"] >= SLOW_SECONDS * 1000 for row in rows[:2])
    assert all(row["elapsed_ms"] < SLOW_SECONDS * 1000 for row in rows[2:])
    assert [r["elapsed_ms"] for r in rows] == sorted((r["elapsed_ms"] for r in rows), reverse=True)
    (down,) = [row for row in rows if row["error"] == accounting.UNAVAILABLE]
    assert down["status"] is None
    assert down["client_id"] is None  # no token, no confirmation


def test_refusals_by_reason(day_log: list[dict[str, Any]]) -> None:
    # WHEN the query runs on the day's log
    rows = logs_insights.run(saved_query("RefusalsByReasonQuery"), day_log)

    # THEN Cognito's refusals and the proxy's own are counted by status and error; Cognito
    # being down is not a refusal
    counted = {(row["message"], row["status"], row["error"]): row["refusals"] for row in rows}
    assert counted == {
        (accounting.COGNITO_CALL, 400, "invalid_client"): 4,
        (accounting.COGNITO_CALL, 400, "invalid_scope"): 1,
        ("token request refused", 401, "invalid_client"): 1,
        ("token request refused", 400, "unsupported_grant_type"): 1,
        ("token request refused", 405, "invalid_request"): 1,
        ("token request refused", 404, "invalid_request"): 1,
    }
    assert rows[0]["refusals"] == 4


def test_no_cognito_call_line_names_a_client_cognito_did_not_confirm(
    day_log: list[dict[str, Any]],
) -> None:
    # GIVEN the day's Cognito call lines
    calls = [r for r in day_log if r["message"] == accounting.COGNITO_CALL]
    assert len(calls) == 10

    # THEN only the ones Cognito answered with a token name a client id
    assert {r["client_id"] for r in calls if "client_id" in r} == {CLIENT_ID, OTHER_CLIENT_ID}
    assert all(r.get("status") == 200 for r in calls if "client_id" in r)
    assert all("client_id" not in r for r in calls if r.get("status") != 200)
    text = repr(calls)
    for value in (UNKNOWN_CLIENT_ID, WRONG_SECRET, UNKNOWN_CLIENT_SECRET, CLIENT_SECRET):
        assert value not in text
