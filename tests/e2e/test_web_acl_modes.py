"""Both WebAcl modes over HTTP: the stack's own web ACL (Create) and the pool's own web ACL
that references the stack's rule group (External). Either way a direct client_credentials
request is refused by the origin rules, other grants reach the pool, the proxy gets tokens;
with External the pool's own rule still applies. Stacks in this process, on ephemeral ports."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local.cloudformation_template import resource
from local.cognito_token_endpoint import DEMO_CLIENTS_PATH
from local.stack import LocalStack
from tests.e2e.harness import start_local_stack

pytestmark = pytest.mark.e2e

DEMO = json.loads(DEMO_CLIENTS_PATH.read_text(encoding="utf-8"))[0]
REFUSAL = resource("OriginRuleGroup")["Properties"]["CustomResponseBodies"]
TIMEOUT = 30


@pytest.fixture(scope="module", params=["Create", "External"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    running = start_local_stack(f"modes-{request.param.lower()}", WebAcl=request.param)
    yield running
    running.stop()


def direct(
    stack: LocalStack, form: dict[str, str], user_agent: str = "curl/8"
) -> requests.Response:
    return requests.post(
        stack.issuer_token_url,
        data=form,
        auth=(DEMO["client_id"], DEMO["client_secret"]),
        headers={"User-Agent": user_agent},
        timeout=TIMEOUT,
    )


def test_a_direct_client_credentials_request_is_refused_by_the_origin_rules(
    stack: LocalStack,
) -> None:
    # GIVEN a client that asks the pool directly / WHEN it does
    response = direct(stack, {"grant_type": "client_credentials"})

    # THEN the rule group's rule refuses it with its own 403 body, in either mode
    assert response.status_code == 403
    assert response.content == REFUSAL["origin_verify_required"]["Content"].encode()


def test_the_proxy_and_other_grants_still_reach_the_pool(stack: LocalStack) -> None:
    # GIVEN the same client through the proxy, and a code exchange sent straight to the pool
    token = requests.post(
        stack.proxy_token_url,
        data={"grant_type": "client_credentials", "scope": DEMO["scopes"][0]},
        auth=(DEMO["client_id"], DEMO["client_secret"]),
        timeout=TIMEOUT,
    )
    code = direct(stack, {"grant_type": "authorization_code", "code": "abc"})

    # WHEN / THEN the proxy gets a token and the code exchange reaches the pool (whose M2M
    # client has no such flow), in either mode
    assert token.status_code == 200
    assert token.json()["token_type"] == "Bearer"
    assert (code.status_code, code.json()["error"]) == (400, "unauthorized_client")


def test_the_pools_own_rules_still_apply_with_web_acl_external(stack: LocalStack) -> None:
    # GIVEN a bad bot, which the pool's own web ACL refuses (External only has that rule)
    bot = requests.get(
        f"{stack.issuer_url}/.well-known/jwks.json",
        headers={"User-Agent": "BadBot/2.0"},
        timeout=TIMEOUT,
    )
    code = direct(stack, {"grant_type": "authorization_code", "code": "abc"}, user_agent="BadBot/1")

    # WHEN / THEN with External the pool's rule refuses it, whatever it asks for (WAF's plain
    # 403); with Create there is no such rule
    assert stack.aws is not None
    if stack.aws.parameters["WebAcl"] == "External":
        assert (bot.status_code, code.status_code) == (403, 403)
        assert code.content == b""
    else:
        assert (bot.status_code, code.status_code) == (200, 400)
