"""The README's client examples, taken from README.md itself and run against a local stack with
the shipped demo clients: curl, Authlib, requests-oauthlib (with the variable the README says
it needs, and without it), Node's fetch, and a resource server using OIDC discovery.

Each example is the fenced block after a ``<!-- example: NAME -->`` line; a ``NAME-run`` block
is the command line the README gives for it. The only change made to an example is the URL:
the README's default ports become this stack's ephemeral ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.stack import LocalStack, StackConfig

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
README_PROXY = "http://127.0.0.1:3000"
README_ISSUER = "http://127.0.0.1:9001"
EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
RUN_TIMEOUT = 60
DEMO_CLIENT = "demo-inventory-service"


def readme_examples() -> dict[str, tuple[str, str]]:
    """``{name: (language, code)}`` of the README's marked examples."""
    text = README.read_text(encoding="utf-8")
    return {name: (lang, code) for name, lang, code in EXAMPLE.findall(text)}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """A local stack with the shipped demo clients, on ephemeral ports."""
    config = StackConfig(
        moto_port=0,
        issuer_port=0,
        proxy_port=0,
        stack_name="readme",
        containers=1,
        prewarm=1,
        state_file=None,
        function_log=None,
    )
    with LocalStack(config) as running:
        yield running


def example(name: str, stack: LocalStack) -> str:
    """The README's example ``name``, pointed at ``stack`` instead of the default ports."""
    _, code = readme_examples()[name]
    assert README_PROXY in code or README_ISSUER in code, name
    return code.replace(README_PROXY, stack.proxy_url).replace(README_ISSUER, stack.issuer_url)


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed programs, the README's own code
        args,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def run_python(code: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run ``code`` with this interpreter (the venv that requirements/dev.txt installs)."""
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = run([sys.executable, str(script)], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def assert_token_line(line: str) -> None:
    """What the client examples print: the token type and its remaining lifetime."""
    token_type, expires_in = line.split()
    assert token_type == "Bearer"
    assert 0 < int(expires_in) <= 3600


def test_the_readme_marks_every_client_example() -> None:
    # GIVEN README.md / WHEN its marked examples are read
    # THEN each client the README promises is there, in its language
    assert {name: lang for name, (lang, _) in readme_examples().items()} == {
        "curl": "bash",
        "authlib": "python",
        "requests-oauthlib": "python",
        "requests-oauthlib-run": "bash",
        "node": "js",
        "discovery": "python",
    }


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_example_gets_a_token(stack: LocalStack) -> None:
    # GIVEN the README's curl line / WHEN run by bash
    result = run(["bash", "-c", example("curl", stack)])

    # THEN it prints the proxy's token response
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"


def test_the_authlib_example_gets_a_token(stack: LocalStack, tmp_path: Path) -> None:
    # GIVEN the README's Authlib example / WHEN run
    # THEN it prints the token type and lifetime
    assert_token_line(run_python(example("authlib", stack), tmp_path))


def test_the_requests_oauthlib_example_needs_exactly_what_the_readme_says(
    stack: LocalStack, tmp_path: Path
) -> None:
    # GIVEN the README's requests-oauthlib example and the command line it gives for it
    code = example("requests-oauthlib", stack)
    _, command = readme_examples()["requests-oauthlib-run"]
    words = shlex.split(command)
    env = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S*", word))
    assert env == {"OAUTHLIB_INSECURE_TRANSPORT": "1"}
    assert words[len(env)] == "python"

    # WHEN it runs as the README says / THEN it gets a token
    assert_token_line(run_python(code, tmp_path, env))

    # AND without that variable oauthlib refuses the http URL, as the README warns
    script = tmp_path / "example.py"
    plain = {k: v for k, v in os.environ.items() if k != "OAUTHLIB_INSECURE_TRANSPORT"}
    result = subprocess.run(  # noqa: S603 - this interpreter, the README's own code
        [sys.executable, str(script)],
        env=plain,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "InsecureTransportError" in result.stderr


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_example_gets_a_token(stack: LocalStack, tmp_path: Path) -> None:
    # GIVEN the README's Node example, saved as client.mjs as the README says
    script = tmp_path / "client.mjs"
    script.write_text(example("node", stack), encoding="utf-8")

    # WHEN node runs it (no npm package: fetch is built in)
    result = run(["node", str(script)])

    # THEN it prints the token type and lifetime
    assert result.returncode == 0, result.stderr
    assert_token_line(result.stdout.strip())


def test_the_discovery_example_validates_a_proxy_token_against_the_issuers_keys(
    stack: LocalStack, tmp_path: Path
) -> None:
    # GIVEN the README's resource-server example / WHEN run
    output = run_python(example("discovery", stack), tmp_path)

    # THEN the token the proxy served validated against the keys found by discovery
    assert output == f"valid token of {DEMO_CLIENT} for demo-api/read"


def test_the_discovered_token_endpoint_is_the_pools_which_the_web_acl_guards(
    stack: LocalStack,
) -> None:
    # GIVEN the local issuer's discovery document
    document = requests.get(
        f"{stack.issuer_url}/.well-known/openid-configuration", timeout=RUN_TIMEOUT
    ).json()
    assert document["token_endpoint"] == stack.issuer_token_url

    # WHEN a client follows it for client_credentials, around the proxy
    response = requests.post(
        document["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(DEMO_CLIENT, "demo-secret-inventory-not-for-production-0001"),
        timeout=RUN_TIMEOUT,
    )

    # THEN the web ACL refuses it, as on Cognito (which is why the README says to give client
    # libraries the proxy's URL)
    assert response.status_code == 403
