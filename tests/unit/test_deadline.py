"""The request deadline: its arithmetic, the worst case of an SDK call, the settings that must fit
in the function's timeout (refused at cold start), and the template that passes the timeout to
the function and sets the HTTP API's integration timeout."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config

from function_setup.environment import ConfigurationError
from local.cloudformation_template import default_template, resource
from tests.fakes.clock import FakeClock
from tests.fakes.lambda_context import lambda_context
from tests.fakes.token_requests import settings
from token_proxy import app
from token_proxy.deadline import Deadline, sdk_call_bound
from token_proxy.secrets_manager import READ_BOUND_SECONDS
from token_proxy.settings import MAX_FUNCTION_TIMEOUT_SECONDS, Settings
from token_proxy.wiring import DYNAMODB_CALL_BOUND_SECONDS

# A misconfigured function adds no application metric, and Powertools warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def test_a_deadline_counts_down_on_its_clock() -> None:
    clock = FakeClock()
    deadline = Deadline.within(5.0, clock)
    assert (deadline.remaining(), deadline.allows(5.0), deadline.bound(9.0)) == (5.0, True, 5.0)
    clock.advance(4.5)
    assert (deadline.allows(1.0), deadline.bound(3.0), deadline.bound(0.2)) == (False, 0.5, 0.2)
    clock.advance(1.0)
    assert (deadline.remaining(), deadline.bound(3.0)) == (-0.5, 0.0)


@pytest.mark.parametrize(
    ("config", "bound"),
    [
        # 2 attempts of 1 s + 1 s, and the pause before the retry (at most 1 s)
        (Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 2}), 5.0),
        # max_attempts counts the retries: 3 attempts, pauses of at most 1 and 2 s
        (Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 2}), 10.5),
        (Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}), 2.0),
    ],
)
def test_the_worst_case_of_an_sdk_call(config: Config, bound: float) -> None:
    assert sdk_call_bound(config) == pytest.approx(bound)


def test_the_functions_own_sdk_calls_are_bounded_and_fit_a_default_request() -> None:
    # DynamoDB and Secrets Manager calls fail fast: a few of them fit in a request
    assert pytest.approx(5.0) == DYNAMODB_CALL_BOUND_SECONDS
    assert pytest.approx(5.0) == READ_BOUND_SECONDS
    assert settings().request_seconds == 19.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"function_timeout_seconds": 30.0}, "FUNCTION_TIMEOUT_SECONDS must be between 1 and 29"),
        ({"function_timeout_seconds": 0.0}, "FUNCTION_TIMEOUT_SECONDS must be between 1 and 29"),
        ({"deadline_margin_seconds": 20.0}, "DEADLINE_MARGIN_SECONDS must be > 0 and less than"),
        (
            {"coalesce_wait_seconds": 20.0},
            r"COALESCE_WAIT_SECONDS \(20\) plus one Cognito attempt \(connect and read: 2 x "
            r"UPSTREAM_TIMEOUT_SECONDS = 6 s\) do not fit in the 19 s a request has",
        ),
        (
            {"upstream_timeout_seconds": 10.0, "function_timeout_seconds": 15.0},
            r"= 20 s\) do not fit in the 14 s a request has \(FUNCTION_TIMEOUT_SECONDS 15",
        ),
        ({"max_backoff_seconds": 0.5}, "MAX_BACKOFF_SECONDS must be >= 1"),
        ({"unproven_calls_per_minute": -1}, "UNPROVEN_CALLS_PER_MINUTE must be >= 0"),
        ({"proof_days": -1.0}, "PROOF_DAYS must be >= 0"),
    ],
)
def test_settings_that_cannot_fit_in_the_functions_timeout_are_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings(**overrides)


def test_the_template_parameters_extremes_that_cannot_fit_are_refused_at_cold_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the template's largest coalescing wait and Cognito timeout with its defaults
    params = default_template()["Parameters"]
    environ = {
        "TOKEN_TABLE_NAME": "t",
        "COGNITO_TOKEN_URL": "https://auth.example.test/oauth2/token",
        "ORIGIN_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:o",
        "COALESCE_WAIT_SECONDS": str(params["CoalesceWaitSeconds"]["MaxValue"]),
        "UPSTREAM_TIMEOUT_SECONDS": str(params["UpstreamTimeoutSeconds"]["MaxValue"]),
        "FUNCTION_TIMEOUT_SECONDS": str(params["FunctionTimeoutSeconds"]["Default"]),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CACHE_KEY_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:k")
    app.reset()

    # WHEN the first request comes
    result = app.lambda_handler(
        {"version": "2.0", "routeKey": "POST /oauth2/token"}, lambda_context()
    )
    app.reset()

    # THEN the function refuses to run: 500 server_error, and the log names the settings
    assert result["statusCode"] == 500
    with pytest.raises(ConfigurationError, match="do not fit in the 19 s a request has"):
        Settings.from_env(environ)


def test_the_template_gives_the_function_its_timeout_and_the_api_its_maximum_wait() -> None:
    # GIVEN the token proxy function as the template declares it
    function = resource("TokenProxyFunction")["Properties"]
    parameter = default_template()["Parameters"]["FunctionTimeoutSeconds"]

    # THEN its Timeout and FUNCTION_TIMEOUT_SECONDS are the same parameter (Lambda does not
    # tell a function its timeout before an invocation), which stays under the HTTP API's 30 s
    assert function["Timeout"] == {"Ref": "FunctionTimeoutSeconds"}
    assert function["Environment"]["Variables"]["FUNCTION_TIMEOUT_SECONDS"] == {
        "Ref": "FunctionTimeoutSeconds"
    }
    assert parameter["MaxValue"] == MAX_FUNCTION_TIMEOUT_SECONDS == 29
    assert (
        float(parameter["Default"])
        == Settings.__dataclass_fields__["function_timeout_seconds"].default
    )
    # AND the HTTP API's route waits its maximum for the function, which answers first
    paths = resource("TokenApi")["Properties"]["Body"]["paths"]
    integration = paths["/oauth2/token"]["post"]["x-amazon-apigateway-integration"]
    assert integration["timeoutInMillis"] == 30_000
