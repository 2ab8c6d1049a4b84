"""End to end over HTTP on loopback: clients -> HTTP API adapter -> token proxy containers ->
local issuer behind the web ACL, with moto holding the table, the secret and the WAF set.

The tests of this module share one stack; each uses its own client so cache keys never meet.
The outage test stops the issuer and restarts it before it ends.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from local.cloudformation_template import resource
from local.commands import rotate
from local.lambda_runtime import FunctionContainers
from local.stack import LocalStack
from tests.e2e.harness import (
    E2E_LEASE_SECONDS,
    HTTP_TIMEOUT,
    ORIGIN_SECRET_MAX_AGE_SECONDS,
    accepted_patterns,
    client,
    issued,
    json_body,
    origin_value,
    token_request,
)
from tests.e2e.raw_http import exchange, post_head, wrapped_basic

pytestmark = pytest.mark.e2e

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def waf_block_body() -> str:
    """The custom response body the template's origin rule answers with (the rule group's)."""
    bodies = resource("OriginRuleGroup")["Properties"]["CustomResponseBodies"]
    return str(bodies["origin_verify_required"]["Content"])


def verified_claims(stack: LocalStack, access_token: str) -> dict[str, Any]:
    """The token's claims once its RS256 signature is checked against the issuer's JWKS."""
    jwks = requests.get(f"{stack.issuer_url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
    token = jwt.decode(access_token, KeySet.import_key_set(jwks.json()), algorithms=["RS256"])
    return dict(token.claims)


def direct_issuer_request(
    stack: LocalStack, form: dict[str, str], origin: str | None = None
) -> requests.Response:
    headers = {"User-Agent": "e2e-tests/1.0"}
    if origin is not None:
        headers["x-origin-verify"] = origin
    return requests.post(stack.issuer_token_url, data=form, headers=headers, timeout=HTTP_TIMEOUT)


# ---------------------------------------------------------------------- the contract over HTTP
def test_every_credential_method_gets_the_same_cached_token_through_the_proxy(
    stack: LocalStack,
) -> None:
    # GIVEN a client the proxy has never seen
    who = client("e2e-methods")
    before = issued(stack)

    # WHEN it asks with HTTP Basic, then with body parameters, then in the query string
    responses = {m: token_request(stack, who, method=m) for m in ("basic", "body", "query")}

    # THEN each answer is a Cognito-shaped token response, not to be cached by HTTP caches
    bodies = {}
    for method, response in responses.items():
        assert response.status_code == 200, method
        assert {k: response.headers[k] for k in NO_STORE} == NO_STORE
        bodies[method] = json_body(response)
        assert set(bodies[method]) == {"access_token", "expires_in", "token_type"}
        assert bodies[method]["token_type"] == "Bearer"
        assert 0 < bodies[method]["expires_in"] <= who.token_lifetime
    # AND the credentials are the key however they were presented: one token, one issuance
    assert len({b["access_token"] for b in bodies.values()}) == 1
    assert issued(stack) == before + 1
    # AND the token is the issuer's, signed with its key, for this client
    claims = verified_claims(stack, bodies["basic"]["access_token"])
    assert claims["client_id"] == who.client_id
    assert claims["sub"] == who.client_id
    assert claims["token_use"] == "access"
    assert claims["iss"] == stack.issuer_url
    assert claims["scope"] == "e2e/read"


def test_other_routes_get_http_apis_not_found(stack: LocalStack) -> None:
    # GIVEN the proxy's HTTP API, whose only route is POST /oauth2/token
    base = stack.proxy_url

    # WHEN other methods and paths are requested
    answers = [
        requests.get(f"{base}/oauth2/token", timeout=HTTP_TIMEOUT),
        requests.post(f"{base}/oauth2/authorize", timeout=HTTP_TIMEOUT),
        requests.post(f"{base}/", timeout=HTTP_TIMEOUT),
    ]

    # THEN API Gateway's own 404 answers them; the function is never invoked
    for response in answers:
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


def test_a_refused_request_gets_the_proxys_oauth_error(stack: LocalStack) -> None:
    # GIVEN a client that sends its secret but no grant type it may use here
    who = client("e2e-methods")

    # WHEN it asks for the password grant through the proxy
    response = requests.post(
        stack.proxy_token_url,
        data={"grant_type": "password", "username": "alice", "password": "not-real"},
        auth=(who.client_id, who.client_secret),
        timeout=HTTP_TIMEOUT,
    )

    # THEN the proxy refuses it as RFC 6749 says
    assert response.status_code == 400
    assert json_body(response) == {
        "error": "unsupported_grant_type",
        "error_description": "this endpoint supports grant_type=client_credentials only",
    }


def test_a_malformed_request_is_refused_whole_before_any_function_or_cognito_call(
    stack: LocalStack,
) -> None:
    # GIVEN the AWS sample's Method 1 with Cognito-length credentials: GNU base64 wraps the
    # Basic value, so its end arrives as a line of its own, before Content-Length
    port = int(stack.proxy_url.rsplit(":", 1)[1])
    form = b"grant_type=client_credentials"
    before = issued(stack)

    # WHEN that request, and one whose body stops short of its Content-Length, reach the proxy
    wrapped = exchange(port, post_head(wrapped_basic(), length=len(form)) + form)
    truncated = exchange(port, post_head(length=len(form) + 10) + form)

    # THEN HTTP API's front end refuses each as a whole, naming the problem
    assert wrapped.status == 400
    assert wrapped.json()["message"].startswith(
        "Malformed header: the line after the Authorization header is not a 'Name: value' header"
    )
    assert truncated.status == 400
    assert truncated.json()["message"].startswith("Bad Request: the body ended after 29 bytes")
    # AND nothing reached Cognito
    assert issued(stack) == before


# ---------------------------------------------------------------------- the web ACL at the issuer
def test_the_issuer_blocks_client_credentials_without_the_origin_header(stack: LocalStack) -> None:
    # GIVEN a client going around the proxy, straight to the user pool's token endpoint
    who = client("e2e-waf")
    form = {
        "grant_type": "client_credentials",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }
    before = issued(stack)

    # WHEN it sends no x-origin-verify header, then a wrong one
    missing = direct_issuer_request(stack, form)
    wrong = direct_issuer_request(stack, form, origin="not-the-value")

    # THEN the web ACL's rule answers both with its custom 403 response, and nothing is issued
    for response in (missing, wrong):
        assert response.status_code == 403
        assert response.text == waf_block_body()
    assert issued(stack) == before


def test_the_issuer_serves_client_credentials_with_the_current_origin_value(
    stack: LocalStack,
) -> None:
    # GIVEN the origin-verify value Secrets Manager holds as AWSCURRENT
    who = client("e2e-waf")
    form = {
        "grant_type": "client_credentials",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }
    before = issued(stack)

    # WHEN a request carries it
    response = direct_issuer_request(stack, form, origin=origin_value(stack))

    # THEN the issuer answers with a token
    assert response.status_code == 200
    body = json_body(response)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == who.token_lifetime
    assert verified_claims(stack, body["access_token"])["client_id"] == who.client_id
    assert issued(stack) == before + 1


def test_an_authorization_code_request_is_not_blocked_by_the_rule(stack: LocalStack) -> None:
    # GIVEN a human sign-in flow's code exchange, which never carries x-origin-verify
    who = client("e2e-waf")
    form = {
        "grant_type": "authorization_code",
        "code": "local-code",
        "redirect_uri": "https://app.example.com/callback",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }

    # WHEN it reaches the issuer without the header
    response = direct_issuer_request(stack, form)

    # THEN the rule lets it through: the issuer itself answers (an M2M-only client has no such
    # grant), not the web ACL's block response
    assert response.status_code == 400
    assert json_body(response) == {"error": "unauthorized_client"}


# ---------------------------------------------------------------------- the cache over time
def test_one_issuance_per_key_per_refresh_window(stack: LocalStack) -> None:
    # GIVEN a client whose tokens live 8 s (refreshed ahead after 75% of that, 6 s)
    who = client("e2e-window")
    refresh_after = 0.75 * who.token_lifetime
    before = issued(stack)
    session = requests.Session()

    # WHEN it asks for a token in a loop for longer than one refresh window
    seen: list[tuple[float, float, str, int]] = []  # (sent, answered, token, expires_in)
    started = time.time()
    while time.time() - started < refresh_after + 3:
        sent = time.time()
        response = token_request(stack, who, session=session)
        assert response.status_code == 200
        body = response.json()
        seen.append((sent, time.time(), body["access_token"], body["expires_in"]))
        time.sleep(0.1)
    elapsed = time.time() - started

    # THEN every token the issuer issued was served, and a new one appeared only once the
    # previous one had reached its refresh point (a token's life counts from the whole second
    # it was issued in, as Cognito's iat does, so that point may be up to 1 s early)
    tokens = list(dict.fromkeys(token for _, _, token, _ in seen))
    assert issued(stack) - before == len(tokens)
    assert 2 <= len(tokens) <= math.floor(elapsed / refresh_after) + 1
    first_sent = {token: min(s for s, _, t, _ in seen if t == token) for token in tokens}
    first_answered = {token: min(a for _, a, t, _ in seen if t == token) for token in tokens}
    for older, newer in itertools.pairwise(tokens):
        assert first_answered[newer] - first_sent[older] >= refresh_after - 1
    # AND expires_in is each token's real remaining life, never its original lifetime again
    for token in tokens:
        lives = [e for _, _, t, e in seen if t == token]
        assert all(0 < e <= who.token_lifetime for e in lives)
        assert lives == sorted(lives, reverse=True)
        assert lives[-1] < who.token_lifetime


def test_a_concurrent_burst_on_a_cold_key_costs_one_issuance(stack: LocalStack) -> None:
    # GIVEN 50 callers of one client that has no cached token, released at once
    who = client("e2e-burst")
    callers = 50
    barrier = threading.Barrier(callers)
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    before = issued(stack)

    def call() -> None:
        try:
            barrier.wait(timeout=HTTP_TIMEOUT)
            response = token_request(stack, who, scope="e2e/read")
            token = response.json().get("access_token", "") if response.ok else ""
            with lock:
                results.append((response.status_code, token))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    # WHEN they all ask through the proxy (spread over its containers)
    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HTTP_TIMEOUT * 2)

    # THEN everyone gets the same token, and the issuer was asked once
    assert errors == []
    assert [status for status, _ in results] == [200] * callers
    assert len({token for _, token in results}) == 1
    assert issued(stack) - before == 1


# ---------------------------------------------------------------------- rotation under load
class ClientLoop:
    """A client asking through the proxy in a loop: a cached key, then a new key each time
    (``resource`` differs), so every other request makes the proxy call the issuer."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._who = client("e2e-rotation")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)
        self.outcomes: list[tuple[str, int]] = []  # (kind, status or -1 for a transport error)

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(HTTP_TIMEOUT * 2)

    def _run(self) -> None:
        session = requests.Session()
        i = 0
        while not self._stop.is_set():
            i += 1
            kind = "cold" if i % 2 else "warm"
            resource_url = f"https://rotation.e2e.example/{i}" if kind == "cold" else None
            try:
                status = token_request(
                    self._stack, self._who, resource=resource_url, session=session
                ).status_code
            except requests.RequestException:
                status = -1
            self.outcomes.append((kind, status))

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.outcomes if k == kind)

    def failures(self) -> list[tuple[str, int]]:
        return [(k, s) for k, s in self.outcomes if s != 200]


def test_rotate_then_prune_while_clients_request_fails_no_request(stack: LocalStack) -> None:
    # GIVEN a client loop through the proxy, and the value the proxies send before the rotation
    old_value = origin_value(stack)
    state = stack.state()
    grace_zero = {"PRUNE_GRACE_SECONDS": "0"}  # prune right away: the hardest case for proxies
    # The rotator in its own container process, with its environment from the start.
    rotator = FunctionContainers(rotate.rotator_spec(state, grace_zero), prewarm=1)
    rotator.start()

    try:
        with ClientLoop(stack) as loop:
            time.sleep(0.5)
            # WHEN the rotator runs the four steps as Secrets Manager calls them, then the prune
            steps = rotate.rotate(state, grace_zero, out=lambda line: None, function=rotator)
            cold_at_rotation = loop.count("cold")
            pruned = rotate.prune(state, grace_zero, out=lambda line: None, function=rotator)
            # ... and the loop goes on past the proxies' secret max age
            time.sleep(ORIGIN_SECRET_MAX_AGE_SECONDS + 1.5)
    finally:
        rotator.close()
    new_value = origin_value(stack)

    # THEN the rotation went through every step and the prune left only the new value
    assert [s["outcome"] for s in steps] == ["already-created", "set", "tested", "finished"]
    assert pruned["outcome"] == "pruned"
    assert new_value != old_value
    assert accepted_patterns(stack) == [f"^{new_value}$"]
    # AND no client request failed, while the proxy kept calling the issuer throughout
    assert loop.failures() == []
    assert loop.count("cold") - cold_at_rotation >= 3
    # AND afterwards the old value is refused at the issuer, the new one accepted
    who = client("e2e-rotation")
    form = {
        "grant_type": "client_credentials",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }
    refused = direct_issuer_request(stack, form, origin=old_value)
    assert refused.status_code == 403
    assert refused.text == waf_block_body()
    assert direct_issuer_request(stack, form, origin=new_value).status_code == 200


# ---------------------------------------------------------------------- issuer outage
def test_cached_tokens_keep_being_served_while_the_issuer_is_down(stack: LocalStack) -> None:
    # GIVEN a client holding a cached token
    who = client("e2e-outage")
    warm = token_request(stack, who)
    assert warm.status_code == 200
    token = warm.json()["access_token"]

    # WHEN the issuer goes away
    stack.stop_issuer()
    try:
        during = [token_request(stack, who, method=m) for m in ("basic", "body", "query") * 4]
        cold = token_request(stack, who, resource="https://outage.e2e.example/cold")
    finally:
        stack.start_issuer()

    # THEN every request for the cached key still gets the cached token (from any container)
    assert [r.status_code for r in during] == [200] * len(during)
    assert {r.json()["access_token"] for r in during} == {token}
    # AND a key with nothing cached gets a clear, retryable error instead
    assert cold.status_code == 503
    assert 1 <= int(cold.headers["Retry-After"]) <= E2E_LEASE_SECONDS
    assert json_body(cold)["error"] == "temporarily_unavailable"
    # AND once the issuer is back, the same request succeeds after the Retry-After it was told
    # (the container that saw the issuer fail leaves it alone until then)
    time.sleep(int(cold.headers["Retry-After"]))
    again = token_request(stack, who, resource="https://outage.e2e.example/cold")
    assert again.status_code == 200


def test_cached_tokens_keep_being_served_through_an_issuer_error_storm(
    stack: LocalStack,
) -> None:
    # GIVEN a client holding a cached token, and an issuer answering 503 to the next 50 calls
    who = client("e2e-outage")
    token = token_request(stack, who, scope=None).json()["access_token"]
    storm = requests.post(
        f"{stack.issuer_url}/admin/fail", json={"status": 503, "count": 50}, timeout=HTTP_TIMEOUT
    )
    assert storm.status_code == 200

    try:
        # WHEN the client keeps asking, and another key needs the issuer
        during = [token_request(stack, who) for _ in range(10)]
        cold = token_request(stack, who, resource="https://storm.e2e.example/cold")
    finally:
        requests.post(f"{stack.issuer_url}/admin/reset", json={}, timeout=HTTP_TIMEOUT)

    # THEN the cached token is served throughout; the uncached key gets a retryable error
    assert [r.status_code for r in during] == [200] * 10
    assert {r.json()["access_token"] for r in during} == {token}
    assert cold.status_code == 503
    assert json_body(cold)["error"] == "temporarily_unavailable"
