"""The X-Ray SDK is loaded only when SDK tracing is on (it costs cold-start time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.cloudformation_template import default_template
from local.lambda_artifact import powertools_pin
from token_proxy.app import sdk_tracing_enabled

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys, token_proxy.app as app; "
    "print(app.tracer is not None, 'aws_xray_sdk.core' in sys.modules)"
)


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("true", False), ("TRUE", False), ("1", False), ("false", True), ("", True), ("0", True)],
)
def test_the_switch_follows_powertools(value: str, enabled: bool) -> None:
    assert sdk_tracing_enabled({"POWERTOOLS_TRACE_DISABLED": value}) is enabled
    assert sdk_tracing_enabled({}) is True


@pytest.mark.parametrize(
    ("disabled", "expected"), [("true", "False False"), ("false", "True True")]
)
def test_the_tracer_and_the_sdk_exist_only_when_tracing_is_on(disabled: str, expected: str) -> None:
    # GIVEN a fresh interpreter with the switch set as the template sets it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "POWERTOOLS_TRACE_DISABLED": disabled}
    env.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

    # WHEN it imports the handler module
    out = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()

    # THEN a Tracer (and the X-Ray SDK) exists exactly when tracing is on
    assert out == expected


def test_the_tracing_layer_is_the_powertools_release_the_artifact_ships() -> None:
    # GIVEN the proxy function in template.yaml and the Powertools pin of its requirements
    template = default_template()
    props = template["Resources"]["TokenProxyFunction"]["Properties"]
    globals_ = template["Globals"]["Function"]
    (arch,) = props.get("Architectures") or globals_["Architectures"]
    runtime = props.get("Runtime") or globals_["Runtime"]
    version = powertools_pin().partition("==")[2]

    # WHEN its layers are read
    condition, layers, otherwise = props["Layers"]["Fn::If"]

    # THEN XRaySdkTracing=true, and only it, attaches the AWS-published Powertools layer of the
    # same release, architecture and Python, resolved from Powertools' public SSM parameter
    assert (condition, otherwise) == ("SdkTracingOn", {"Ref": "AWS::NoValue"})
    assert layers == [
        f"{{{{resolve:ssm:/aws/service/powertools/python/{arch}/{runtime}/{version}}}}}"
    ]
    # AND the same condition turns the Tracer on
    assert props["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["SdkTracingOn", "false", "true"]
    }
