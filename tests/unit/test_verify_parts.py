"""`make verify`'s parts that need no network: reading answers without keeping secrets,
judging pattern set entries, samconfig.toml, the stack line and the report lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verify.checks import Verification
from verify.direct_checks import _refused_by_rule
from verify.origin_checks import _entry_problem
from verify.probes import BASIC, Credentials, Prober, read_answer
from verify.report import CheckResult, cannot_check, failed, passed, summary
from verify.stack import Deployment, samconfig_defaults
from verify.waf import OriginRule

CURRENT = "Current0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
PREVIOUS = "Previous0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"


def test_an_answer_keeps_a_digest_of_the_token_never_the_token() -> None:
    # GIVEN a token response
    token = "eyJhbGciOiJSUzI1NiJ9.payload.signature"
    body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).encode()

    # WHEN it is read
    answer = read_answer(200, body)

    # THEN the printable parts are kept, the token only as a digest, and nothing printable
    # (repr, description) holds it
    assert (answer.status, answer.token_type, answer.expires_in) == (200, "Bearer", 3600)
    assert answer.token_digest and token not in answer.token_digest
    assert token not in repr(answer)
    assert answer.describe() == "200"
    # AND an error's code is kept only when it is printable text
    assert read_answer(400, b'{"error": "invalid_client"}').describe() == "400 invalid_client"
    assert read_answer(400, b'{"error": "bad\\nline"}').error is None
    assert read_answer(502, b"<html>").describe() == "502"


def test_each_probe_names_itself_and_the_run_in_its_user_agent() -> None:
    prober = Prober(run_id="abc123")
    assert prober.user_agent(BASIC) == (
        "cognito-token-proxy-verify/1 (client_credentials HTTP Basic; run abc123)"
    )
    assert "secret" not in repr(Credentials("id", "s3cr3t-value"))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (f"^{CURRENT}$", None),
        (f"^{PREVIOUS}$", None),
        (".*", "accepts any value (it matched a random one)"),
        ("^.*$", "accepts any value (it matched a random one)"),
        (f"{CURRENT}|", "accepts any value (it matched a random one)"),
        (
            f"^{CURRENT}",
            "is not ^<a current, previous or pending origin value>$ (a retired or foreign value?)",
        ),
        (
            "^OldRetiredValue0123456789$",
            "is not ^<a current, previous or pending origin value>$ (a retired or foreign value?)",
        ),
        ("^(unclosed$", "is not a regular expression this check can read"),
    ],
    ids=[
        "current",
        "previous",
        "dot-star",
        "anchored-dot-star",
        "alternation",
        "no-end-anchor",
        "retired",
        "broken",
    ],
)
def test_a_pattern_set_entry_must_be_exactly_one_value_of_the_origin_secret(
    entry: str, problem: str | None
) -> None:
    values = {"AWSCURRENT": CURRENT, "AWSPREVIOUS": PREVIOUS}
    assert _entry_problem(entry, values) == problem


def test_a_refusal_is_the_rules_own_response() -> None:
    # GIVEN the rule's custom 403 body, and answers that look alike but are not it
    body = b'{"error":"access_denied","error_description":"go through the token proxy"}'
    rule = OriginRule("r", "BLOCK", "m", None, (), 403, body)

    # WHEN / THEN only the rule's own status and body count as its refusal
    assert _refused_by_rule(read_answer(403, body), rule)
    assert not _refused_by_rule(read_answer(403, b'{"error":"access_denied"}'), rule)
    assert not _refused_by_rule(read_answer(400, body), rule)
    # AND without the rule's definition, a 403 access_denied is taken for it
    assert _refused_by_rule(read_answer(403, b'{"error":"access_denied"}'), None)


def test_samconfig_gives_the_stack_name_and_region(tmp_path: Path) -> None:
    # GIVEN samconfig.toml as `sam deploy --guided` saves it, and the repository's own
    saved = tmp_path / "samconfig.toml"
    saved.write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "a"\n'
        '[default.deploy.parameters]\nstack_name = "b"\nregion = "eu-west-1"\n',
        encoding="utf-8",
    )

    # WHEN / THEN the deploy section wins over global; a missing or broken file gives nothing
    assert samconfig_defaults(saved) == ("b", "eu-west-1")
    assert samconfig_defaults(Path(__file__).parents[2] / "samconfig.toml") == (
        "cognito-token-proxy",
        None,
    )
    assert samconfig_defaults(tmp_path / "missing.toml") == (None, None)
    (tmp_path / "broken.toml").write_text("[default", encoding="utf-8")
    assert samconfig_defaults(tmp_path / "broken.toml") == (None, None)


def deployment(status: str, **outputs: str) -> Deployment:
    return Deployment(
        name="s",
        region="eu-west-1",
        status=status,
        origin="test",
        parameters={"OriginRuleAction": "Count", "OriginRuleCoverage": "ClientCredentials"},
        outputs=outputs,
        resources=(),
        pool_token_url="https://pool.example/oauth2/token",
        client=lambda service: None,
    )


FULL = {
    "TokenEndpoint": "https://x/oauth2/token",
    "UserPoolArn": "arn:pool",
    "OriginSecretArn": "arn:secret",
    "OriginPatternSetId": "id",
}


@pytest.mark.parametrize(
    ("status", "outputs", "expected"),
    [
        ("CREATE_COMPLETE", FULL, "pass"),
        ("UPDATE_ROLLBACK_COMPLETE", FULL, "pass"),
        ("UPDATE_IN_PROGRESS", FULL, "skip"),
        ("ROLLBACK_COMPLETE", FULL, "FAIL"),
        ("UPDATE_FAILED", FULL, "FAIL"),
        ("CREATE_COMPLETE", {"TokenEndpoint": "x"}, "FAIL"),
    ],
)
def test_the_stack_line(status: str, outputs: dict[str, str], expected: str) -> None:
    result = Verification(deployment(status, **outputs), None).check_stack()
    assert result.status == expected
    assert result.detail.removeprefix("cannot check here: ").startswith(("s ", "s, "))
    if status == "UPDATE_ROLLBACK_COMPLETE":
        assert result.detail.endswith("(its last update was rolled back)")


def test_the_lines_and_the_summary() -> None:
    results: list[CheckResult] = [
        passed("a", "fine"),
        failed("b", "broken"),
        cannot_check("c", "no client"),
    ]
    assert [r.line() for r in results] == [
        "pass  a: fine",
        "FAIL  b: broken",
        "skip  c: cannot check here: no client",
    ]
    assert summary(results) == (
        "make verify: 1 pass, 1 FAIL, 1 cannot be checked here (see the FAIL lines)"
    )
    assert summary(results[:1]).endswith("(the stack does what it promises)")
    assert summary([results[0], results[2]]).endswith(
        "(nothing failed; the skipped lines say what could not be checked)"
    )
