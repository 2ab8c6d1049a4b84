"""The README's "Pools that already have a web ACL", run: its reference rule is the one the
local stack adds in External mode, and its jq program turns GetWebACL's answer into an
UpdateWebACL request that keeps everything of the web ACL and puts the reference first, against
moto's WAFv2 (the AWS CLI's JSON is boto3's, with blobs as base64 text)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.existing_web_acl import OWN_RULE, reference_rule
from local.moto_server import RunningMotoServer, aws_client

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
REGION = "eu-west-1"
RULE_GROUP_ARN = "arn:aws:wafv2:eu-west-1:123456789012:regional/rulegroup/stack/abc"


def block(name: str) -> str:
    match = re.search(
        rf"<!-- {name}: begin.*?-->\n```\w+\n(?P<body>.*?)```\n<!-- {name}: end -->",
        README.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    assert match, f"the README has no {name} block"
    return match["body"]


def jq_program() -> str:
    script = block("rule-group-cli")
    match = re.search(r"jq --arg arn \"\$ARN\" '(?P<program>.*?)' web-acl\.json", script, re.DOTALL)
    assert match, "the README's CLI steps have no jq program"
    return match["program"]


def as_cli_json(node: Any) -> Any:
    """What the AWS CLI prints for a boto3 answer: no nulls, blobs as base64 text."""
    if isinstance(node, dict):
        return {k: as_cli_json(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [as_cli_json(item) for item in node]
    if isinstance(node, bytes):
        return base64.b64encode(node).decode()
    return node


def from_cli_json(node: Any, key: str = "") -> Any:
    """What the AWS CLI sends for --cli-input-json: base64 text back to blobs."""
    if isinstance(node, dict):
        return {k: from_cli_json(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [from_cli_json(item) for item in node]
    if key == "SearchString" and isinstance(node, str):
        return base64.b64decode(node)
    return node


def test_the_readme_rule_is_the_one_the_local_stack_adds() -> None:
    # GIVEN the README's JSON with the output's value in place of its placeholder
    rule = json.loads(block("rule-group-reference").replace("<OriginRuleGroupArn>", RULE_GROUP_ARN))

    # WHEN / THEN it is the rule the local stack's External mode puts in the pool's web ACL
    assert rule == reference_rule(RULE_GROUP_ARN)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_readme_jq_program_adds_the_reference_first_and_keeps_the_web_acl(
    moto: RunningMotoServer, tmp_path: Path
) -> None:
    # GIVEN a web ACL of the user's with a rule, a description and a custom response body
    waf = aws_client("wafv2", moto.endpoint_url, REGION)
    bodies = {"denied": {"ContentType": "TEXT_PLAIN", "Content": "no"}}
    summary = waf.create_web_acl(
        Name="users-acl",
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        Description="the user's own",
        VisibilityConfig={
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": "users-acl",
        },
        Rules=[{**OWN_RULE, "Priority": 0}],
        CustomResponseBodies=bodies,
    )["Summary"]
    fetched = waf.get_web_acl(Name="users-acl", Scope="REGIONAL", Id=summary["Id"])
    (tmp_path / "web-acl.json").write_text(json.dumps(as_cli_json(fetched)), encoding="utf-8")

    # WHEN the README's jq program turns it into an update, which is sent as the CLI sends it
    update = subprocess.run(  # noqa: S603 - jq with the README's program
        ["jq", "--arg", "arn", RULE_GROUP_ARN, jq_program(), "web-acl.json"],  # noqa: S607
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    waf.update_web_acl(**from_cli_json(json.loads(update.stdout)))
    after = waf.get_web_acl(Name="users-acl", Scope="REGIONAL", Id=summary["Id"])["WebACL"]

    # THEN the reference runs first, the user's rule after it, and nothing else changed
    rules = sorted(as_cli_json(after["Rules"]), key=lambda rule: rule["Priority"])
    assert rules[0] == reference_rule(RULE_GROUP_ARN)
    assert rules[1]["Name"] == OWN_RULE["Name"]
    assert rules[1]["Priority"] == 1
    assert after["Description"] == "the user's own"
    assert after["CustomResponseBodies"] == bodies
    assert after["DefaultAction"] == {"Allow": {}}
