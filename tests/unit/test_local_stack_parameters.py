"""The local stack's template parameters from the environment (``make run``): the origin
rules' action and coverage and the web ACL mode, checked against the template's AllowedValues."""

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
    assert set(PARAMETER_VARIABLES.values()) == {"OriginRuleAction", "OriginRuleCoverage", "WebAcl"}
    assert StackConfig.from_env({"WEB_ACL": "External"}).parameters == {"WebAcl": "External"}
    # AND a value the template does not allow stops it with a clear message
    with pytest.raises(SystemExit, match="ORIGIN_RULE_COVERAGE='Everything' must be one of"):
        parameters_from({"ORIGIN_RULE_COVERAGE": "Everything"})
