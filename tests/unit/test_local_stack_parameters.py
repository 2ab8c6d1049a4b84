"""The local stack's template parameters from the environment (``make run``): the origin
rules' action and coverage, the web ACL mode and the front end, checked against the template's
AllowedValues."""

from __future__ import annotations

import pytest

from local.stack import PARAMETER_VARIABLES, StackConfig, parameters_from


def test_the_local_stack_takes_the_rules_parameters_from_the_environment() -> None:
    # GIVEN `ORIGIN_RULE_COVERAGE=AllTokenRequests ORIGIN_RULE_ACTION=Count make run`
    environ = {"ORIGIN_RULE_COVERAGE": "AllTokenRequests", "ORIGIN_RULE_ACTION": "Count"}

    # WHEN / THEN the stack is configured with those template parameters
    assert StackConfig.from_env(environ).parameters == {
        "OriginRuleCoverage": "AllTokenRequests",
        "OriginRuleAction": "Count",
    }
    assert StackConfig.from_env({}).parameters == {}
    assert set(PARAMETER_VARIABLES.values()) == {
        "OriginRuleAction",
        "OriginRuleCoverage",
        "WebAcl",
        "Frontend",
    }
    assert StackConfig.from_env({"WEB_ACL": "External"}).parameters == {"WebAcl": "External"}
    # AND a value the template does not allow stops it with a clear message
    with pytest.raises(SystemExit, match="ORIGIN_RULE_COVERAGE='Everything' must be one of"):
        parameters_from({"ORIGIN_RULE_COVERAGE": "Everything"})


def test_the_front_end_is_the_templates_frontend_parameter() -> None:
    # GIVEN `FRONTEND=FunctionUrl make run`, and a plain `make run`
    function_url = StackConfig.from_env({"FRONTEND": "FunctionUrl"})
    default = StackConfig.from_env({})

    # THEN the first serves a function URL, the second the template's default, the HTTP API
    assert function_url.parameters == {"Frontend": "FunctionUrl"}
    assert function_url.frontend == "FunctionUrl"
    assert default.frontend == "HttpApi"
    # AND a front end the template does not offer stops it with a clear message
    with pytest.raises(SystemExit, match="FRONTEND='RestApi' must be one of HttpApi, FunctionUrl"):
        parameters_from({"FRONTEND": "RestApi"})
