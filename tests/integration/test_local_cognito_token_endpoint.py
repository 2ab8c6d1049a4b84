"""The local issuer over real HTTP on loopback, behind the web ACL held by a moto server."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import Client

from local.cloudformation_resources import LocalAwsResources, bootstrap
from local.cloudformation_template import resource
from local.cognito_token_endpoint import (
    DEMO_CLIENTS_PATH,
    ClientRegistration,
    LocalIssuer,
    RunningIssuer,
    WebAclSource,
    load_clients,
)
from local.moto_server import RunningMotoServer, aws_client
from tests.integration.issuer_behind_waf import serve_behind_web_acl

REGION = "eu-west-1"
ORIGIN = "OriginValue0123456789abcdefABCDEF"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ORDERS = ClientRegistration(
    "orders-client", "orders-secret-0123456789", ("orders/read", "orders/write"), 900
)
REPORTS = ClientRegistration("reports-client", "reports-secret-abcdef", ("orders/read",), 300)
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(moto: RunningMotoServer) -> LocalAwsResources:
    return bootstrap(
        moto.endpoint_url,
        cognito_token_url="http://127.0.0.1:9/oauth2/token",
        stack_name="issuer",
        origin_secret_value=ORIGIN,
    )


@pytest.fixture(scope="module")
def served(moto: RunningMotoServer, stack: LocalAwsResources) -> Iterator[RunningIssuer]:
    running = serve_behind_web_acl(moto, stack, [ORDERS, REPORTS])
    yield running
    running.stop()


@pytest.fixture
def issuer_url(served: RunningIssuer) -> Iterator[str]:
    yield served.url
    # No injected fault outlives its test.
    requests.post(f"{served.url}/admin/reset", json={}, timeout=TIMEOUT).raise_for_status()


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def post_token(
    url: str,
    data: dict[str, str] | str,
    headers: dict[str, str] | None = None,
    *,
    origin: str | None = ORIGIN,
    query: str = "",
) -> requests.Response:
    all_headers = {**FORM, **(headers or {})}
    if origin is not None:
        all_headers["x-origin-verify"] = origin
    target = f"{url}/oauth2/token" + (f"?{query}" if query else "")
    return requests.post(target, data=data, headers=all_headers, timeout=TIMEOUT)


def issued(url: str) -> int:
    response = requests.get(f"{url}/stats", timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["issued"]
    return int(body["issued"])


def verified_claims(url: str, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    jwks = requests.get(f"{url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks))
    return dict(decoded.header), dict(decoded.claims)


# ---------------------------------------------------------------------- tokens
def test_basic_auth_gets_a_signed_token_with_cognito_claims(issuer_url: str) -> None:
    # GIVEN a client authenticating with HTTP Basic and asking for no scope
    before = issued(issuer_url)

    # WHEN it asks for a token
    response = post_token(
        issuer_url,
        {"grant_type": "client_credentials"},
        basic("orders-client", ORDERS.client_secret),
    )

    # THEN it gets a Cognito-shaped answer with all its scopes, counted once
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 900
    assert body["token_type"] == "Bearer"
    header, claims = verified_claims(issuer_url, body["access_token"])
    assert header["alg"] == "RS256"
    jwks = requests.get(f"{issuer_url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    assert header["kid"] == jwks["keys"][0]["kid"]
    assert set(claims) == {
        "sub", "client_id", "scope", "token_use", "iss", "exp", "iat", "jti", "auth_time", "version"
    }  # fmt: skip
    assert claims["sub"] == claims["client_id"] == "orders-client"
    assert claims["scope"] == "orders/read orders/write"
    assert claims["token_use"] == "access"
    assert claims["iss"] == issuer_url
    assert claims["exp"] - claims["iat"] == 900
    assert claims["auth_time"] == claims["iat"]
    assert claims["version"] == 2
    assert str(uuid.UUID(claims["jti"])) == claims["jti"]
    assert issued(issuer_url) == before + 1


def test_body_credentials_and_a_scope_subset(issuer_url: str) -> None:
    # GIVEN credentials in the body, a scope repeated, and a resource indicator
    data = {
        "grant_type": "client_credentials",
        "client_id": "orders-client",
        "client_secret": ORDERS.client_secret,
        "scope": "orders/write  orders/write",
        "resource": "https://api.example.com",
    }

    # WHEN it asks for a token
    response = post_token(issuer_url, data)

    # THEN the token carries just that scope and the audience, with the client's lifetime
    assert response.status_code == 200
    _, claims = verified_claims(issuer_url, response.json()["access_token"])
    assert claims["scope"] == "orders/write"
    assert claims["aud"] == "https://api.example.com"
    assert response.json()["expires_in"] == 900


def test_credentials_and_grant_type_in_the_query_string(issuer_url: str) -> None:
    # GIVEN everything in the query string (the WAF rule inspects it too), nothing in the body
    query = "grant_type=client_credentials&client_id=reports-client"
    query += f"&client_secret={REPORTS.client_secret}"

    # WHEN / THEN a token with the other client's lifetime
    response = post_token(issuer_url, "", query=query)
    assert response.status_code == 200
    assert response.json()["expires_in"] == 300


CC = {"grant_type": "client_credentials"}
ORDERS_BASIC = basic("orders-client", ORDERS.client_secret)
REPORTS_BASIC = basic("reports-client", REPORTS.client_secret)
REFUSED = {
    "wrong-secret": (
        {**CC, "client_id": "orders-client", "client_secret": "x"},
        {},
        "invalid_client",
    ),
    "unknown-client": ({**CC, "client_id": "nobody", "client_secret": "x"}, {}, "invalid_client"),
    "no-secret": ({**CC, "client_id": "orders-client"}, {}, "invalid_client"),
    "no-credentials": (CC, {}, "invalid_client"),
    "basic-wrong-secret": (CC, basic("orders-client", "wrong"), "invalid_client"),
    "basic-malformed": (CC, {"Authorization": "Basic %%%"}, "invalid_client"),
    "not-basic": (CC, {"Authorization": "Bearer abc"}, "invalid_client"),
    "two-methods": ({**CC, "client_secret": "x"}, ORDERS_BASIC, "invalid_request"),
    "no-grant-type": ({"scope": "orders/read"}, ORDERS_BASIC, "invalid_request"),
    "scope-not-allowed": ({**CC, "scope": "orders/admin"}, ORDERS_BASIC, "invalid_scope"),
    "scope-of-another": ({**CC, "scope": "orders/write"}, REPORTS_BASIC, "invalid_scope"),
    "jwt-bearer": ({"grant_type": "urn:x:jwt-bearer"}, ORDERS_BASIC, "unsupported_grant_type"),
    "authorization-code": (
        {"grant_type": "authorization_code", "code": "abc"},
        ORDERS_BASIC,
        "unauthorized_client",
    ),
}


@pytest.mark.parametrize(("data", "headers", "error"), REFUSED.values(), ids=REFUSED.keys())
def test_errors_are_cognito_shaped(
    issuer_url: str, data: dict[str, str], headers: dict[str, str], error: str
) -> None:
    # GIVEN a request the issuer must refuse, carrying the accepted origin value
    before = issued(issuer_url)

    # WHEN it is sent
    response = post_token(issuer_url, data, headers)

    # THEN Cognito's 400 with just the error code, and nothing is counted as issued
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert response.headers["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" not in response.headers
    assert issued(issuer_url) == before


def test_repeated_parameters_and_wrong_content_type_are_invalid_requests(issuer_url: str) -> None:
    # GIVEN a grant type both in the query string and the body, and a JSON body
    creds = basic("orders-client", ORDERS.client_secret)
    repeated = post_token(
        issuer_url,
        {"grant_type": "client_credentials"},
        creds,
        query="grant_type=client_credentials",
    )
    as_json = requests.post(
        f"{issuer_url}/oauth2/token",
        json={"grant_type": "client_credentials"},
        headers={**creds, "x-origin-verify": ORIGIN},
        timeout=TIMEOUT,
    )

    # WHEN / THEN both are refused as invalid_request
    assert (repeated.status_code, repeated.json()) == (400, {"error": "invalid_request"})
    assert (as_json.status_code, as_json.json()) == (400, {"error": "invalid_request"})


def test_stats_count_successful_token_responses_only(issuer_url: str) -> None:
    # GIVEN the current count
    before = issued(issuer_url)
    creds = basic("reports-client", REPORTS.client_secret)

    # WHEN two tokens are issued, one request fails and one is blocked by the WAF
    assert post_token(issuer_url, {"grant_type": "client_credentials"}, creds).status_code == 200
    assert post_token(issuer_url, {"grant_type": "client_credentials"}, creds).status_code == 200
    assert post_token(issuer_url, {"grant_type": "password"}, creds).status_code == 400
    blocked = post_token(issuer_url, {"grant_type": "client_credentials"}, creds, origin=None)
    assert blocked.status_code == 403

    # THEN exactly the two successes were counted
    assert issued(issuer_url) == before + 2


def test_jwks_publishes_only_the_public_key(issuer_url: str) -> None:
    # GIVEN / WHEN the JWKS is fetched
    response = requests.get(f"{issuer_url}/.well-known/jwks.json", timeout=TIMEOUT)

    # THEN one RS256 signing key without private parts
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


def test_discovery_describes_the_issuer_as_a_user_pool_does(
    issuer_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the issuer's OIDC discovery document, at {issuer}/.well-known/openid-configuration
    response = requests.get(f"{issuer_url}/.well-known/openid-configuration", timeout=TIMEOUT)

    # THEN it has a user pool's fields, with this issuer's URLs
    assert response.status_code == 200
    document = response.json()
    assert document == {
        "authorization_endpoint": f"{issuer_url}/oauth2/authorize",
        "end_session_endpoint": f"{issuer_url}/logout",
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": issuer_url,
        "jwks_uri": f"{issuer_url}/.well-known/jwks.json",
        "response_types_supported": ["code", "token"],
        "revocation_endpoint": f"{issuer_url}/oauth2/revoke",
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint": f"{issuer_url}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{issuer_url}/oauth2/userInfo",
    }
    # AND authlib validates it as OpenID provider metadata (plain http on loopback is allowed)
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    OpenIDProviderMetadata(document).validate()

    # WHEN a client gets a token from its token_endpoint (through the web ACL's door)
    token = requests.post(
        document["token_endpoint"],
        data={"grant_type": "client_credentials"},
        headers={**FORM, **basic("orders-client", ORDERS.client_secret), "x-origin-verify": ORIGIN},
        timeout=TIMEOUT,
    ).json()["access_token"]

    # THEN the token validates against the jwks_uri, issued by the document's issuer
    keys = KeySet.import_key_set(requests.get(document["jwks_uri"], timeout=TIMEOUT).json())
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": document["issuer"]},
        token_use={"essential": True, "value": "access"},
        client_id={"essential": True, "value": "orders-client"},
    ).validate(claims)


# ---------------------------------------------------------------------- the web ACL
def test_client_credentials_without_the_header_is_blocked_with_the_custom_body(
    issuer_url: str,
) -> None:
    # GIVEN a valid client_credentials request that did not come through the proxy
    creds = basic("orders-client", ORDERS.client_secret)

    # WHEN it reaches the issuer without x-origin-verify, or with a wrong value
    missing = post_token(issuer_url, {"grant_type": "client_credentials"}, creds, origin=None)
    wrong = post_token(issuer_url, {"grant_type": "client_credentials"}, creds, origin="nope")

    # THEN the origin rule answers 403 with its custom response body (the rule group's)
    custom = resource("OriginRuleGroup")["Properties"]["CustomResponseBodies"]
    for response in (missing, wrong):
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json"
        assert response.content == custom["origin_verify_required"]["Content"].encode()


def test_upper_case_encoded_grant_type_is_blocked_too(issuer_url: str) -> None:
    # GIVEN the grant type disguised as CLIENT%5FCREDENTIALS in a raw body
    body = "grant_type=CLIENT%5FCREDENTIALS&client_id=orders-client&client_secret=x"

    # WHEN / THEN the WAF still recognises it
    assert post_token(issuer_url, body, origin=None).status_code == 403


def test_human_flows_and_other_paths_are_not_blocked(issuer_url: str) -> None:
    # GIVEN an authorization_code request and a sign-in page request, both without the header
    code = post_token(
        issuer_url,
        {"grant_type": "authorization_code", "code": "abc", "redirect_uri": "https://app/cb"},
        basic("orders-client", ORDERS.client_secret),
        origin=None,
    )
    login = requests.get(f"{issuer_url}/login?client_id=orders-client", timeout=TIMEOUT)

    # WHEN / THEN the rule lets them through to the issuer's own answers
    assert (code.status_code, code.json()) == (400, {"error": "unauthorized_client"})
    assert (login.status_code, login.json()) == (404, {"error": "not_found"})


def test_the_rule_follows_the_pattern_set(
    issuer_url: str, moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN the pattern set moved to a new value, as a rotation would
    wafv2 = aws_client("wafv2", moto.endpoint_url, REGION)
    ident = {"Name": stack.pattern_set_name, "Scope": "REGIONAL", "Id": stack.pattern_set_id}
    current = wafv2.get_regex_pattern_set(**ident)
    wafv2.update_regex_pattern_set(
        **ident,
        RegularExpressionList=[{"RegexString": "^NewValue42$"}],
        LockToken=current["LockToken"],
    )
    creds = basic("orders-client", ORDERS.client_secret)
    try:
        # WHEN requests carry the old and the new value
        old = post_token(issuer_url, {"grant_type": "client_credentials"}, creds, origin=ORIGIN)
        new = post_token(
            issuer_url, {"grant_type": "client_credentials"}, creds, origin="NewValue42"
        )
    finally:
        restored = wafv2.get_regex_pattern_set(**ident)
        wafv2.update_regex_pattern_set(
            **ident,
            RegularExpressionList=current["RegexPatternSet"]["RegularExpressionList"],
            LockToken=restored["LockToken"],
        )

    # THEN the issuer enforces the set as it is now
    assert old.status_code == 403
    assert new.status_code == 200


def test_the_web_acl_source_keeps_what_it_read_for_its_max_age(
    moto: RunningMotoServer, stack: LocalAwsResources
) -> None:
    # GIVEN a source with a 10 s max age on a controllable clock
    now = [1000.0]
    source = WebAclSource(
        moto.endpoint_url,
        REGION,
        web_acl_name=stack.web_acl_name,
        web_acl_id=stack.web_acl_id,
        max_age_seconds=10,
        clock=lambda: now[0],
    )
    first = source()

    # WHEN asked again within and after the max age
    now[0] += 9.9
    within = source()
    now[0] += 0.2
    after = source()

    # THEN the same evaluator is reused within it and re-read after it
    assert within is first
    assert after is not first


# ---------------------------------------------------------------------- test hooks
def test_injected_failures_are_answered_then_stop(issuer_url: str) -> None:
    # GIVEN two injected 503s
    state = requests.post(
        f"{issuer_url}/admin/fail", json={"status": 503, "count": 2}, timeout=TIMEOUT
    )
    assert state.status_code == 200
    assert state.json()["fail"] == {"status": 503, "remaining": 2}
    creds = basic("orders-client", ORDERS.client_secret)
    before = issued(issuer_url)

    # WHEN three token requests follow
    answers = [
        post_token(issuer_url, {"grant_type": "client_credentials"}, creds) for _ in range(3)
    ]

    # THEN the first two get the failure, the third a token
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"error": "temporarily_unavailable"}
    assert issued(issuer_url) == before + 1


def test_a_blocked_request_does_not_consume_an_injected_failure(issuer_url: str) -> None:
    # GIVEN one injected 429 with a custom body
    requests.post(
        f"{issuer_url}/admin/fail",
        json={"status": 429, "count": 1, "body": {"error": "slow_down"}},
        timeout=TIMEOUT,
    ).raise_for_status()
    creds = basic("orders-client", ORDERS.client_secret)

    # WHEN a request without the header comes first, then one with it
    blocked = post_token(issuer_url, {"grant_type": "client_credentials"}, creds, origin=None)
    failed = post_token(issuer_url, {"grant_type": "client_credentials"}, creds)

    # THEN WAF answered the first; the injected failure went to the second
    assert blocked.status_code == 403
    assert (failed.status_code, failed.json()) == (429, {"error": "slow_down"})


def test_admin_hooks_validate_their_input(issuer_url: str) -> None:
    # GIVEN / WHEN invalid or unknown admin calls
    bad_status = requests.post(f"{issuer_url}/admin/fail", json={"status": 200}, timeout=TIMEOUT)
    unknown = requests.post(f"{issuer_url}/admin/explode", json={}, timeout=TIMEOUT)
    delay = requests.post(
        f"{issuer_url}/admin/delay", json={"seconds": 0.01, "count": 1}, timeout=TIMEOUT
    )

    # THEN they are refused or acknowledged with the resulting state
    assert bad_status.status_code == 400
    assert bad_status.json()["error"] == "invalid_request"
    assert unknown.status_code == 404
    assert delay.status_code == 200
    assert delay.json()["delay"] == {"seconds": 0.01, "remaining": 1}


# ---------------------------------------------------------------------- without sockets
def test_admin_hooks_refuse_non_loopback_peers() -> None:
    # GIVEN the app reached from a non-loopback address
    client = Client(LocalIssuer([ORDERS], web_acl=None))

    # WHEN it asks to inject a failure
    response = client.post(
        "/admin/fail", json={"status": 503}, environ_base={"REMOTE_ADDR": "192.0.2.10"}
    )

    # THEN the hook does not exist for it, and no failure was injected
    assert response.status_code == 404
    token = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic("orders-client", ORDERS.client_secret),
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert token.status_code == 200


def test_an_unreadable_web_acl_fails_closed() -> None:
    # GIVEN a web ACL provider that cannot reach the AWS endpoint
    def unreachable() -> Any:
        raise ConnectionError("endpoint down")

    client = Client(LocalIssuer([ORDERS], web_acl=unreachable))

    # WHEN a token request arrives
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic("orders-client", ORDERS.client_secret),
    )

    # THEN 503 rather than an unchecked token
    assert response.status_code == 503
    assert response.get_json() == {"error": "waf_unavailable"}


def test_oversize_bodies_are_refused_before_parsing() -> None:
    # GIVEN a body over the issuer's 64 KiB bound
    client = Client(LocalIssuer([ORDERS], web_acl=None))

    # WHEN / THEN 413
    response = client.post("/oauth2/token", data=b"a=" + b"x" * 70000, headers=FORM)
    assert response.status_code == 413
    assert response.get_json() == {"error": "invalid_request"}


def test_the_demo_clients_file_loads(tmp_path: Any) -> None:
    # GIVEN the shipped demo file and a file with a duplicate client
    duplicate = tmp_path / "dup.json"
    entry = {"client_id": "a", "client_secret": "s", "scopes": [], "token_lifetime": 60}
    duplicate.write_text(json.dumps([entry, entry]))

    # WHEN / THEN the demo file gives two clients with secrets, scopes and lifetimes
    demo = load_clients(DEMO_CLIENTS_PATH)
    assert [c.client_id for c in demo] == ["demo-inventory-service", "demo-reporting-job"]
    assert [c.token_lifetime for c in demo] == [3600, 300]
    assert all(c.client_secret and c.scopes for c in demo)
    assert "client_secret" not in repr(demo[0]) or demo[0].client_secret not in repr(demo[0])
    with pytest.raises(ValueError, match="duplicate"):
        load_clients(duplicate)


def test_an_absolute_form_request_target_is_inspected_by_its_path(served: RunningIssuer) -> None:
    # GIVEN a raw HTTP request whose target is in absolute form, without the header
    body = b"grant_type=client_credentials"
    request = (
        f"POST http://127.0.0.1:{served.port}/oauth2/token HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{served.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    # WHEN it is sent
    with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        status_line = sock.makefile("rb").readline()

    # THEN the rule sees /oauth2/token and blocks it
    assert status_line.split()[1] == b"403"


def test_with_origin_rule_action_count_direct_requests_pass_while_clients_move_over(
    moto: RunningMotoServer,
) -> None:
    # GIVEN the stack deployed with OriginRuleAction=Count (the migration setting)
    counting = bootstrap(
        moto.endpoint_url,
        cognito_token_url="http://127.0.0.1:9/oauth2/token",
        stack_name="issuer-count",
        origin_secret_value=ORIGIN,
        parameters={"OriginRuleAction": "Count"},
    )
    assert counting.rule_group_arn is not None
    rule = aws_client("wafv2", moto.endpoint_url, REGION).get_rule_group(
        ARN=counting.rule_group_arn
    )["RuleGroup"]["Rules"][0]
    running = serve_behind_web_acl(moto, counting, [ORDERS])
    try:
        # WHEN a client still asks Cognito directly, without the origin-verify header
        form = {"grant_type": "client_credentials", "scope": "orders/read"}
        direct = post_token(
            running.url, form, basic(ORDERS.client_id, ORDERS.client_secret), origin=None
        )
    finally:
        running.stop()

    # THEN the rule only counts it: the client still gets its token
    assert rule["Action"] == {"Count": {}}
    assert direct.status_code == 200
    assert direct.json()["token_type"] == "Bearer"
