"""The suite-wide log guard (tests/log_guard.py) can fail: its checker, and a pytest run in a
subprocess whose test logs a secret on purpose."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes.cognito_client import jwt_like
from tests.log_guard import (
    REGISTRY,
    LeakCheckingHandler,
    SecretRegistry,
    event_secrets,
    find_leaks,
    record_text,
)

ROOT = Path(__file__).resolve().parents[2]
PLANTED_SECRET = "planted-secret-for-the-guard-0123"


def test_the_checker_finds_registered_secrets_in_any_spelling() -> None:
    # GIVEN a registry with one secret
    registry = SecretRegistry()
    registry.add("a b+c/d=e", "short")
    # WHEN/THEN the value itself and its form-urlencoded spellings are found; short values ignored
    assert find_leaks("x a b+c/d=e y", registry.values()) == ["a registered secret value"]
    assert find_leaks("client_secret=a+b%2Bc%2Fd%3De", registry.values())
    assert find_leaks("a%20b%2Bc%2Fd%3De", registry.values())
    assert "short" not in registry
    assert find_leaks("nothing to see: client_id=abc status=200", registry.values()) == []


def test_the_checker_finds_tokens_and_basic_values_it_was_never_told_about() -> None:
    basic = "Basic " + base64.b64encode(b"client:secret").decode()
    # WHEN/THEN JWT-shaped strings and Basic credentials are found without registration
    assert find_leaks(f"token={jwt_like(7)}", ()) == ["a JWT-shaped string"]
    assert find_leaks(f"header {basic}", ()) == ["an HTTP Basic credentials value"]
    # AND the proxy's own descriptions that mention Basic are not
    assert find_leaks("the Basic credentials are not valid base64 of UTF-8 text", ()) == []
    assert find_leaks('WWW-Authenticate: Basic realm="oauth2/token"', ()) == []


def test_a_record_is_checked_in_its_message_arguments_extras_and_exception() -> None:
    registry = SecretRegistry()
    registry.add(PLANTED_SECRET)
    handler = LeakCheckingHandler(registry)
    logger = logging.getLogger("tests.log_guard.probe")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # WHEN a secret goes out as an argument, an extra field and an exception message
        logger.warning("value %s", PLANTED_SECRET)
        logger.warning("fine", extra={"detail": {"nested": PLANTED_SECRET}})
        try:
            raise ValueError(PLANTED_SECRET)
        except ValueError:
            logger.exception("failed")
        logger.warning("clean", extra={"client_id": "abc"})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    # THEN the first three are leaks, reported without the value
    assert [leak.kinds for leak in handler.leaks] == [("a registered secret value",)] * 3
    assert all(PLANTED_SECRET not in leak.describe() for leak in handler.leaks)
    assert handler.checked == 4


def test_record_text_survives_a_broken_format_string() -> None:
    record = logging.makeLogRecord({"msg": "%s %s", "args": (PLANTED_SECRET,)})
    assert PLANTED_SECRET in record_text(record)


def test_the_events_secrets_are_registered() -> None:
    # GIVEN the Basic event file (its Authorization value and the secret inside it)
    # THEN the suite's registry holds both
    secrets = list(event_secrets({"headers": {"authorization": "Basic YTpzM2NyM3QtdmFsdWU="}}))
    assert secrets == ["Basic YTpzM2NyM3QtdmFsdWU=", "YTpzM2NyM3QtdmFsdWU=", "s3cr3t-value"]
    assert "example-secret-not-real" in REGISTRY


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("test", "holds a registered secret value"),
        ("session", "a record outside any test leaked a secret"),
    ],
)
def test_a_run_whose_code_logs_a_secret_fails(
    where: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a test file that logs, in a test, a secret its module names as one, or, at import
    # (before any test), a JWT-shaped token
    value = PLANTED_SECRET if where == "test" else jwt_like(3)
    leak = f'logging.getLogger("probe").warning("oops", extra={{"value": {value!r}}})'
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent(
            f"""
            import logging
            PLANTED_SECRET = {PLANTED_SECRET!r}
            {leak if where == "session" else ""}

            def test_logs_a_secret():
                {leak if where == "test" else "pass"}
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # WHEN pytest runs it with the log guard plugin
    run = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.log_guard",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN the run fails, says why, and never prints the value
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert expected in run.stdout
    assert value not in run.stdout
