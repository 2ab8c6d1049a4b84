"""The web ACL's two rules over real HTTP on loopback, in both coverage modes: the local issuer
(standing in for the user pool, its token endpoint and its GetClientToken API operation) behind
the web ACL that bootstrap created in moto from template.yaml.

Requests to GetClientToken go through boto3's own cognito-idp client, so they carry exactly what
the SDKs send (AWS JSON 1.1, X-Amz-Target).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from joserfc import jwt
from joserfc.jwk import KeySet

from local.cloudformation_resources import bootstrap
from local.cognito_token_endpoint import ClientRegistration, RunningIssuer
from local.moto_server import RunningMotoServer
from local.waf_web_acl import COGNITO_BODY_INSPECTION_LIMIT
from tests.integration.issuer_behind_waf import serve_behind_web_acl

REGION = "eu-west-1"
ORIGIN = "OriginValue0123456789abcdefABCDEF"
MACHINE = ClientRegistration("machine-client", "machine-secret-0123456789", ("api/read",), 600)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TIMEOUT = 10


def serve(moto: RunningMotoServer, coverage: str) -> RunningIssuer:
    stack = bootstrap(
        moto.endpoint_url,
        cognito_token_url="http://127.0.0.1:9/oauth2/token",
        stack_name=f"coverage-{coverage}",
        origin_secret_value=ORIGIN,
        parameters={"OriginRuleCoverage": coverage},
    )
    return serve_behind_web_acl(moto, stack, [MACHINE])


@pytest.fixture(scope="module", params=["ClientCredentials", "AllTokenRequests"])
def issuer(request: pytest.FixtureRequest, moto: RunningMotoServer) -> Iterator[tuple[str, str]]:
    running = serve(moto, request.param)
    yield running.url, request.param
    running.stop()


def post_token(url: str, body: dict[str, str] | bytes, *, origin: str | None) -> requests.Response:
    headers = dict(FORM)
    if origin is not None:
        headers["x-origin-verify"] = origin
    return requests.post(f"{url}/oauth2/token", data=body, headers=headers, timeout=TIMEOUT)


def basic(who: ClientRegistration) -> str:
    return "Basic " + base64.b64encode(f"{who.client_id}:{who.client_secret}".encode()).decode()


def api_client(url: str, origin: str | None) -> Any:
    """boto3's cognito-idp client pointed at the local issuer, adding x-origin-verify if given."""
    client = boto3.client(
        "cognito-idp",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    if origin is not None:

        def add_header(request: Any, **_: Any) -> None:
            request.headers["x-origin-verify"] = origin

        client.meta.events.register("before-send.cognito-idp.GetClientToken", add_header)
    return client


# ---------------------------------------------------------------------- /oauth2/token
def test_a_direct_client_credentials_request_is_refused_under_either_coverage(
    issuer: tuple[str, str],
) -> None:
    url, _ = issuer
    # GIVEN a client asking the pool directly, by Basic and by body credentials
    form = {"grant_type": "client_credentials", "scope": "api/read"}
    by_body = {**form, "client_id": MACHINE.client_id, "client_secret": MACHINE.client_secret}
    basic_headers = {**FORM, "Authorization": basic(MACHINE)}

    # WHEN it sends no origin value / THEN the web ACL refuses both with its 403 body
    for response in (
        requests.post(f"{url}/oauth2/token", data=form, headers=basic_headers, timeout=TIMEOUT),
        post_token(url, by_body, origin=None),
    ):
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {
            "error": "access_denied",
            "error_description": "token requests must go through the token proxy",
        }
    # AND with the accepted value (the proxy's) the pool issues the token
    accepted = post_token(url, by_body, origin=ORIGIN)
    assert accepted.status_code == 200
    assert accepted.json()["token_type"] == "Bearer"


def test_other_grants_are_refused_only_when_every_token_request_is_covered(
    issuer: tuple[str, str],
) -> None:
    url, coverage = issuer
    # GIVEN a human flow's code exchange sent to the pool directly, without the header
    code_exchange = {"grant_type": "authorization_code", "code": "abc", "client_id": "web"}

    # WHEN it reaches the web ACL
    response = post_token(url, code_exchange, origin=None)

    # THEN ClientCredentials coverage lets it through to the pool (which answers it), and
    # AllTokenRequests refuses it at the web ACL
    if coverage == "ClientCredentials":
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_client"}
    else:
        assert response.status_code == 403
        assert response.json()["error"] == "access_denied"


def test_bodies_up_to_cognitos_16_kb_are_inspected_and_larger_ones_count_as_a_match(
    issuer: tuple[str, str],
) -> None:
    url, coverage = issuer
    # GIVEN authorization_code requests padded beyond ALB's 8 KB, within and beyond 16 KB
    head = b"grant_type=authorization_code&code=abc&client_id=web&pad="
    within = head + b"a" * (12 * 1024 - len(head))
    beyond = head + b"a" * (COGNITO_BODY_INSPECTION_LIMIT + 1 - len(head))

    # WHEN they reach the web ACL without the header
    inspected = post_token(url, within, origin=None)
    oversize = post_token(url, beyond, origin=None)

    # THEN the 12 KB body is inspected whole (no client_credentials: not the rule's, unless
    # every token request is covered) and the oversize one is refused either way
    assert inspected.status_code == (400 if coverage == "ClientCredentials" else 403)
    assert oversize.status_code == 403


# ---------------------------------------------------------------------- GetClientToken
def test_get_client_token_without_an_accepted_value_is_refused_under_either_coverage(
    issuer: tuple[str, str],
) -> None:
    url, _ = issuer
    for origin in (None, "WrongValue0123456789"):
        # GIVEN an SDK calling GetClientToken directly, without the proxy's value
        client = api_client(url, origin)

        # WHEN it asks for a token
        with pytest.raises(ClientError) as refused:
            client.get_client_token(
                ClientId=MACHINE.client_id, Secret=MACHINE.client_secret, Scopes=["api/read"]
            )

        # THEN the web ACL's second rule refuses it, as the SDKs report a block
        assert refused.value.response["Error"]["Code"] == "ForbiddenException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_get_client_token_with_the_accepted_value_reaches_the_pool(
    issuer: tuple[str, str],
) -> None:
    url, _ = issuer
    # GIVEN the accepted origin value on an SDK's GetClientToken request
    client = api_client(url, ORIGIN)

    # WHEN it asks for a token, then with a wrong secret
    answer = client.get_client_token(
        ClientId=MACHINE.client_id, Secret=MACHINE.client_secret, Scopes=["api/read"]
    )
    with pytest.raises(ClientError) as wrong:
        client.get_client_token(ClientId=MACHINE.client_id, Secret="not-the-secret-0123456789abcd")

    # THEN the pool answers as the API does: a signed access token for the client and scope,
    # and NotAuthorizedException for the wrong secret
    result = answer["ClientAuthenticationResult"]
    assert set(result) == {"AccessToken", "ExpiresIn", "TokenType"}
    assert (result["ExpiresIn"], result["TokenType"]) == (600, "Bearer")
    jwks = requests.get(f"{url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    claims = jwt.decode(result["AccessToken"], KeySet.import_key_set(jwks)).claims
    assert (claims["client_id"], claims["scope"], claims["token_use"]) == (
        MACHINE.client_id,
        "api/read",
        "access",
    )
    assert wrong.value.response["Error"]["Code"] == "NotAuthorizedException"


def test_other_api_operations_are_not_the_rules_business(issuer: tuple[str, str]) -> None:
    url, _ = issuer
    # GIVEN another user pools API operation, without the header
    response = requests.post(
        url + "/",
        data=b'{"AuthFlow":"USER_PASSWORD_AUTH","ClientId":"web","AuthParameters":{}}',
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        timeout=TIMEOUT,
    )

    # WHEN / THEN no rule refuses it (the local pool emulates only GetClientToken)
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"


def test_a_spoofed_operation_name_header_does_not_hide_get_client_token(
    issuer: tuple[str, str],
) -> None:
    url, _ = issuer
    # GIVEN a GetClientToken request claiming another operation in Cognito's header
    response = requests.post(
        url + "/",
        json={"ClientId": MACHINE.client_id, "Secret": MACHINE.client_secret},
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityProviderService.GetClientToken",
            "x-amzn-cognito-operation-name": "InitiateAuth",
        },
        timeout=TIMEOUT,
    )

    # WHEN / THEN WAF sees the operation Cognito names, and refuses it
    assert response.status_code == 403
    assert response.json()["__type"] == "ForbiddenException"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"ClientId": 1, "Secret": "x"}',
        b'{"ClientId": "a", "Secret": "b", "Scopes": "s"}',
    ],
    ids=["not-json", "not-an-object", "wrong-type", "scopes-not-a-list"],
)
def test_a_malformed_get_client_token_request_gets_the_apis_error(
    issuer: tuple[str, str], body: bytes
) -> None:
    url, _ = issuer
    # GIVEN a malformed GetClientToken body that passed the web ACL (accepted origin value)
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.GetClientToken",
        "x-origin-verify": ORIGIN,
    }

    # WHEN / THEN the pool answers InvalidParameterException, never a 5xx
    response = requests.post(url + "/", data=body, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert response.json() == {
        "__type": "InvalidParameterException",
        "message": "InvalidParameterException",
    }
