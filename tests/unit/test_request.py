"""parse_token_request: the token endpoint contract (DESIGN.md section 2) on HTTP API events."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.token_requests import KEYS
from token_proxy.errors import OAuthError
from token_proxy.model import TokenRequest
from token_proxy.request import parse_token_request

CLIENT_ID = "1example23456789"
SECRET = "example-secret-not-real"
FORM = "application/x-www-form-urlencoded"
GRANT = "grant_type=client_credentials"
BODY_CREDENTIALS = f"{GRANT}&client_id={CLIENT_ID}&client_secret={SECRET}"


def basic(client_id: str = CLIENT_ID, secret: str = SECRET, scheme: str = "Basic") -> str:
    raw = f"{client_id}:{secret}".encode()
    return f"{scheme} {base64.b64encode(raw).decode()}"


def make_event(
    body: str | None = None,
    *,
    headers: dict[str, Any] | None = None,
    query: str = "",
    method: str = "POST",
    path: str = "/oauth2/token",
    is_base64: bool = False,
    content_type: str | None = FORM,
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event as API Gateway sends it."""
    all_headers: dict[str, Any] = {"host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    if content_type is not None:
        all_headers["content-type"] = content_type
    all_headers.update(headers or {})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} /oauth2/token",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "requestId": "id-1",
        },
        "isBase64Encoded": is_base64,
    }
    if body is not None:
        event["body"] = body
    return event


def refusal(event: dict[str, Any], **kwargs: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers of the error parse_token_request raises for ``event``."""
    with pytest.raises(OAuthError) as caught:
        parse_token_request(event, **kwargs)
    response = caught.value.to_response()
    return response.status, json.loads(response.body), response.headers


def expect_error(
    event: dict[str, Any], status: int, error: str, description: str, **kwargs: Any
) -> dict[str, str]:
    got_status, body, headers = refusal(event, **kwargs)
    assert (got_status, body) == (status, {"error": error, "error_description": description})
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"
    return headers


TWO_METHODS = (
    "use exactly one client authentication method: HTTP Basic, or client_id and "
    "client_secret in the body, or both in the query string"
)
NO_CREDENTIALS = (
    "client authentication is required: HTTP Basic, or client_id and client_secret "
    "in the body or in the query string"
)
CHALLENGE = 'Basic realm="oauth2/token"'


# ------------------------------------------------------------------ the three methods


def test_body_credentials() -> None:
    # GIVEN client_id and client_secret in the form body
    event = make_event(BODY_CREDENTIALS)
    # WHEN parsed
    request = parse_token_request(event)
    # THEN the request carries them, authenticated by the body method
    assert request == TokenRequest(CLIENT_ID, SECRET, auth_method="body")


def test_basic_credentials_keep_the_raw_header() -> None:
    # GIVEN HTTP Basic credentials and only the grant type in the body
    header = basic()
    event = make_event(GRANT, headers={"authorization": header})
    # WHEN parsed
    request = parse_token_request(event)
    # THEN the credentials are decoded and the raw header kept for forwarding
    assert request == TokenRequest(
        CLIENT_ID, SECRET, auth_method="basic", basic_authorization=header
    )
    assert request.upstream_headers() == {"Authorization": header}


def test_query_credentials() -> None:
    # GIVEN the credentials in the query string
    event = make_event(GRANT, query=f"client_id={CLIENT_ID}&client_secret={SECRET}")
    # WHEN parsed
    request = parse_token_request(event)
    # THEN the query method authenticated the client
    assert request == TokenRequest(CLIENT_ID, SECRET, auth_method="query")


def test_everything_in_the_query_string_without_a_body() -> None:
    # GIVEN no body at all (and so no Content-Type), everything in the query string
    event = make_event(
        None, query=f"{GRANT}&{BODY_CREDENTIALS[len(GRANT) + 1 :]}", content_type=None
    )
    # WHEN parsed
    request = parse_token_request(event)
    # THEN the request is valid
    assert request == TokenRequest(CLIENT_ID, SECRET, auth_method="query")


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_basic_scheme_is_case_insensitive(scheme: str) -> None:
    # GIVEN a Basic header whose scheme is not capitalised the usual way
    header = basic(scheme=scheme)
    # WHEN parsed
    request = parse_token_request(make_event(GRANT, headers={"authorization": header}))
    # THEN it is accepted
    assert (request.client_id, request.client_secret, request.auth_method) == (
        CLIENT_ID,
        SECRET,
        "basic",
    )


@pytest.mark.parametrize(
    ("raw", "client_id", "secret"),
    [
        ("id+with+plus:s3cr3t+x", "id+with+plus", "s3cr3t+x"),  # Cognito allows [\w+]+
        ("id%3Aa:s%3Dcr%25t+%2Bx", "id%3Aa", "s%3Dcr%25t+%2Bx"),  # RFC 6749 encoding: kept
        ("id:a%00b", "id", "a%00b"),  # no decoding, so no control character either
    ],
)
def test_basic_credentials_are_taken_exactly_as_sent_and_forwarded(
    raw: str, client_id: str, secret: str
) -> None:
    # GIVEN Basic credentials with '+' and '%' (Cognito documents the header as
    # Base64Encode(client_id:client_secret) and takes it as it is)
    header = "Basic " + base64.b64encode(raw.encode()).decode()
    # WHEN parsed
    request = parse_token_request(make_event(GRANT, headers={"authorization": header}))
    # THEN the credentials of the cache key are exactly those of the header forwarded to
    # Cognito: nothing is form-decoded
    assert (request.client_id, request.client_secret) == (client_id, secret)
    assert request.upstream_headers() == {"Authorization": header}
    assert "client_secret" not in request.upstream_form()


def test_an_rfc_encoded_and_a_raw_basic_secret_are_different_keys() -> None:
    # GIVEN the same secret sent raw and RFC 6749-encoded (a%41 decodes to aA)
    raw = parse_token_request(make_event(GRANT, headers={"authorization": basic(secret="xA")}))
    encoded = parse_token_request(
        make_event(GRANT, headers={"authorization": basic(secret="x%41")})
    )
    # THEN they are different credentials, as they are for Cognito: never one cache key
    assert KEYS.key_for(raw) != KEYS.key_for(encoded)


def test_basic_secret_may_contain_a_colon() -> None:
    # GIVEN a secret with a literal ':' (the id cannot contain one unencoded)
    header = basic(secret="abc:def")
    # WHEN parsed
    request = parse_token_request(make_event(GRANT, headers={"authorization": header}))
    # THEN the id ends at the first colon
    assert (request.client_id, request.client_secret) == (CLIENT_ID, "abc:def")


# ------------------------------------------------------------------ broken Basic


@pytest.mark.parametrize(
    ("header", "description"),
    [
        ("Bearer abc.def.ghi", "the Authorization header must use the Basic scheme"),
        ("Digest username=x", "the Authorization header must use the Basic scheme"),
        ("", "the Authorization header must use the Basic scheme"),
        ("Basic", "the Basic credentials must be client_id:client_secret"),
        (
            "Basic " + base64.b64encode(b"no-colon-here").decode(),
            "the Basic credentials must be client_id:client_secret",
        ),
        ("Basic !!!notbase64!!!", "the Basic credentials are not valid base64 of UTF-8 text"),
        ("Basic YWJjOmRlZg", "the Basic credentials are not valid base64 of UTF-8 text"),
        ("Basic YWJj\nOmRlZg==", "the Basic credentials are not valid base64 of UTF-8 text"),
        ("Basic YWJjOmRlZg==é", "the Basic credentials are not valid base64 of UTF-8 text"),
        (
            "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
            "the Basic credentials are not valid base64 of UTF-8 text",
        ),
        ("Basic " + base64.b64encode(b":secret").decode(), "client_id is missing"),
        ("Basic " + base64.b64encode(b"id:").decode(), "client_secret is missing"),
        (
            "Basic " + base64.b64encode(b"id:a\x00b").decode(),
            "client_secret contains control characters",
        ),
        (
            "Basic " + base64.b64encode(b"id:" + b"x" * 513).decode(),
            "client_secret is longer than 512 characters",
        ),
    ],
)
def test_broken_basic_is_invalid_client_with_a_challenge(header: str, description: str) -> None:
    # GIVEN a broken Authorization header and otherwise a valid request
    event = make_event(GRANT, headers={"authorization": header})
    # WHEN parsed, THEN invalid_client 401 with WWW-Authenticate: Basic
    headers = expect_error(event, 401, "invalid_client", description)
    assert headers["WWW-Authenticate"] == CHALLENGE


def test_repeated_authorization_headers_joined_by_api_gateway_are_refused() -> None:
    # GIVEN two Authorization headers, which HTTP API joins with a comma
    event = make_event(GRANT, headers={"authorization": f"{basic()},{basic()}"})
    # WHEN parsed, THEN it is broken Basic
    headers = expect_error(
        event, 401, "invalid_client", "the Basic credentials are not valid base64 of UTF-8 text"
    )
    assert headers["WWW-Authenticate"] == CHALLENGE


# ------------------------------------------------------------------ exactly one method


@pytest.mark.parametrize(
    ("body", "query", "with_basic"),
    [
        (f"{GRANT}&client_id={CLIENT_ID}&client_secret={SECRET}", "", True),
        (GRANT, f"client_id={CLIENT_ID}&client_secret={SECRET}", True),
        (BODY_CREDENTIALS, f"client_id={CLIENT_ID}&client_secret={SECRET}", False),
        (f"{GRANT}&client_secret={SECRET}", f"client_secret={SECRET}", False),
        (f"{GRANT}&client_secret=other", "", True),
    ],
    ids=["basic+body", "basic+query", "body+query", "secrets-only", "basic+body-secret"],
)
def test_two_authentication_methods_are_refused(body: str, query: str, with_basic: bool) -> None:
    # GIVEN credentials presented by two methods
    headers = {"authorization": basic()} if with_basic else {}
    event = make_event(body, headers=headers, query=query)
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", TWO_METHODS)


@pytest.mark.parametrize(
    ("body", "query", "with_basic", "method"),
    [
        (f"{GRANT}&client_id={CLIENT_ID}", "", True, "basic"),
        (GRANT, f"client_id={CLIENT_ID}", True, "basic"),
        (BODY_CREDENTIALS, f"client_id={CLIENT_ID}", False, "body"),
        (
            f"{GRANT}&client_id={CLIENT_ID}",
            f"client_id={CLIENT_ID}&client_secret={SECRET}",
            False,
            "query",
        ),
    ],
)
def test_a_matching_client_id_without_a_secret_elsewhere_is_tolerated(
    body: str, query: str, with_basic: bool, method: str
) -> None:
    # GIVEN one authentication method plus the same client_id, without a secret, elsewhere
    headers = {"authorization": basic()} if with_basic else {}
    # WHEN parsed
    request = parse_token_request(make_event(body, headers=headers, query=query))
    # THEN the request is accepted, authenticated by the one method
    assert (request.client_id, request.client_secret, request.auth_method) == (
        CLIENT_ID,
        SECRET,
        method,
    )


@pytest.mark.parametrize(
    ("body", "query", "with_basic"),
    [
        (f"{GRANT}&client_id=someone-else", "", True),
        (BODY_CREDENTIALS, "client_id=someone-else", False),
    ],
)
def test_a_different_client_id_elsewhere_is_refused(
    body: str, query: str, with_basic: bool
) -> None:
    # GIVEN credentials plus another client's id elsewhere
    headers = {"authorization": basic()} if with_basic else {}
    event = make_event(body, headers=headers, query=query)
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "client_id does not match the authenticated client")


@pytest.mark.parametrize(
    ("body", "query"),
    [
        (f"{GRANT}&client_id={CLIENT_ID}", ""),
        (GRANT, f"client_id={CLIENT_ID}"),
        (f"{GRANT}&client_id={CLIENT_ID}&client_secret=", ""),
    ],
    ids=["body", "query", "empty-secret"],
)
def test_a_missing_secret_is_invalid_client_without_a_challenge(body: str, query: str) -> None:
    # GIVEN a client_id without a secret (an empty value counts as omitted, RFC 6749 3.1)
    event = make_event(body, query=query)
    # WHEN parsed, THEN invalid_client 401, without WWW-Authenticate (Basic was not tried)
    headers = expect_error(event, 401, "invalid_client", "client_secret is missing")
    assert "WWW-Authenticate" not in headers


def test_no_credentials_at_all_is_invalid_client_with_a_challenge() -> None:
    # GIVEN no credentials anywhere
    event = make_event(GRANT)
    # WHEN parsed, THEN invalid_client 401 with a Basic challenge
    headers = expect_error(event, 401, "invalid_client", NO_CREDENTIALS)
    assert headers["WWW-Authenticate"] == CHALLENGE


def test_client_ids_disagreeing_without_any_secret_are_refused() -> None:
    # GIVEN two different client_ids and no secret
    event = make_event(f"{GRANT}&client_id=a", query="client_id=b")
    # WHEN parsed, THEN invalid_request
    expect_error(
        event,
        400,
        "invalid_request",
        "client_id has different values in the body and the query string",
    )


@pytest.mark.parametrize(
    ("body", "query", "description"),
    [
        (
            f"{GRANT}&client_secret={SECRET}",
            "",
            "client_id is missing from the body, next to client_secret",
        ),
        (
            f"{GRANT}&client_secret={SECRET}",
            f"client_id={CLIENT_ID}",
            "client_id is missing from the body, next to client_secret",
        ),
        (
            GRANT,
            f"client_secret={SECRET}",
            "client_id is missing from the query string, next to client_secret",
        ),
        (
            f"{GRANT}&client_id=%01x&client_secret={SECRET}",
            "",
            "client_id contains control characters",
        ),
        (
            f"{GRANT}&client_id={'x' * 513}&client_secret={SECRET}",
            "",
            "client_id is longer than 512 characters",
        ),
        (
            f"{GRANT}&client_id={CLIENT_ID}&client_secret=a%7Fb",
            "",
            "client_secret contains control characters",
        ),
    ],
)
def test_malformed_form_credentials_are_invalid_client(
    body: str, query: str, description: str
) -> None:
    # GIVEN credentials that cannot be valid
    event = make_event(body, query=query)
    # WHEN parsed, THEN invalid_client without a challenge
    headers = expect_error(event, 401, "invalid_client", description)
    assert "WWW-Authenticate" not in headers


def test_credentials_of_512_characters_are_accepted() -> None:
    # GIVEN an id and a secret right at the bound
    client_id, secret = "i" * 512, "s" * 512
    event = make_event(f"{GRANT}&client_id={client_id}&client_secret={secret}")
    # WHEN parsed, THEN accepted
    assert parse_token_request(event) == TokenRequest(client_id, secret)


# ------------------------------------------------------------------ route


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "post", "OPTIONS"])
def test_methods_other_than_post_are_refused(method: str) -> None:
    # GIVEN a valid request sent with another method
    event = make_event(BODY_CREDENTIALS, method=method)
    # WHEN parsed, THEN 405 with Allow: POST
    headers = expect_error(event, 405, "invalid_request", "the token endpoint accepts POST only")
    assert headers["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/", "/oauth2/authorize", "/oauth2/token/", "/oauth2/tokens", ""])
def test_other_paths_are_not_found(path: str) -> None:
    # GIVEN a request for another path
    event = make_event(BODY_CREDENTIALS, path=path)
    # WHEN parsed, THEN 404
    expect_error(event, 404, "invalid_request", "no such endpoint; use POST /oauth2/token")


def test_a_stage_prefix_is_accepted() -> None:
    # GIVEN the path of a named stage
    event = make_event(BODY_CREDENTIALS, path="/prod/oauth2/token")
    # WHEN parsed, THEN accepted
    assert parse_token_request(event).client_id == CLIENT_ID


def test_a_stage_prefix_is_one_path_segment() -> None:
    # GIVEN a routed event whose path has more than a stage before the token path
    event = make_event(BODY_CREDENTIALS, path="/prod/extra/oauth2/token")
    # WHEN parsed, THEN 404
    expect_error(event, 404, "invalid_request", "no such endpoint; use POST /oauth2/token")


def function_url_event(body: str | None, *, method: str = "POST", path: str) -> dict[str, Any]:
    """A function URL event: payload 2.0 with the ``$default`` route key placeholder."""
    event = make_event(body, method=method, path=path)
    event["routeKey"] = "$default"
    event["requestContext"]["routeKey"] = "$default"
    event["requestContext"]["stage"] = "$default"
    return event


def test_a_function_url_token_request_is_parsed() -> None:
    # GIVEN a token request through a function URL (nothing in front of it routed it)
    event = function_url_event(BODY_CREDENTIALS, path="/oauth2/token")
    # WHEN parsed, THEN accepted
    assert parse_token_request(event).client_id == CLIENT_ID


@pytest.mark.parametrize(
    "path", ["/", "/favicon.ico", "/prod/oauth2/token", "/oauth2/token/", "/x/oauth2/token", ""]
)
def test_a_function_url_request_for_any_other_path_is_not_found(path: str) -> None:
    # GIVEN a function URL request for another path (a function URL sends every path on, and
    # has no stage to put before the token path)
    event = function_url_event(BODY_CREDENTIALS, path=path)
    # WHEN parsed, THEN 404 in RFC 6749 JSON
    expect_error(event, 404, "invalid_request", "no such endpoint; use POST /oauth2/token")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"])
def test_a_function_url_request_with_another_method_is_not_allowed(method: str) -> None:
    # GIVEN a function URL request for the token path with another method
    event = function_url_event(None, method=method, path="/oauth2/token")
    # WHEN parsed, THEN 405 with Allow: POST
    headers = expect_error(event, 405, "invalid_request", "the token endpoint accepts POST only")
    assert headers["Allow"] == "POST"


def test_a_missing_request_context_is_method_not_allowed() -> None:
    # GIVEN an event without requestContext (no method known)
    event = make_event(BODY_CREDENTIALS)
    del event["requestContext"]
    # WHEN parsed, THEN 405
    expect_error(event, 405, "invalid_request", "the token endpoint accepts POST only")


# ------------------------------------------------------------------ body and content type


@pytest.mark.parametrize(
    "content_type",
    [
        FORM,
        f"{FORM}; charset=UTF-8",
        f"{FORM};charset=utf-8",
        "Application/X-WWW-Form-URLEncoded",
    ],
)
def test_form_content_types_are_accepted(content_type: str) -> None:
    # GIVEN a form body with a form content type (parameters allowed, case-insensitive)
    event = make_event(BODY_CREDENTIALS, content_type=content_type)
    # WHEN parsed, THEN accepted
    assert parse_token_request(event) == TokenRequest(CLIENT_ID, SECRET)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain", "multipart/form-data; boundary=x", f"{FORM},{FORM}"],
)
def test_other_content_types_are_refused(content_type: str | None) -> None:
    # GIVEN a body with a missing or wrong content type
    event = make_event(BODY_CREDENTIALS, content_type=content_type)
    # WHEN parsed, THEN invalid_request
    expect_error(
        event, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
    )


def test_header_names_are_matched_case_insensitively() -> None:
    # GIVEN a hand-written event with capitalised header names
    event = make_event(
        GRANT, content_type=None, headers={"Content-Type": FORM, "Authorization": basic()}
    )
    # WHEN parsed, THEN the headers are found
    assert parse_token_request(event).auth_method == "basic"


def test_a_base64_body_is_decoded() -> None:
    # GIVEN the body base64-encoded by API Gateway
    encoded = base64.b64encode(f"{BODY_CREDENTIALS}&scope=a%2Fb".encode()).decode()
    event = make_event(encoded, is_base64=True)
    # WHEN parsed, THEN it reads as the plain body would
    assert parse_token_request(event) == TokenRequest(CLIENT_ID, SECRET, scopes=("a/b",))


@pytest.mark.parametrize(
    "encoded",
    ["not base64!", "Z3JhbnQ", "Z3Jh\nbnQ=", "Z3JhbnQ=Z3JhbnQ=", "Z3JhbnRf-_8="],
    ids=["symbols", "no-padding", "newline", "padding-inside", "urlsafe-alphabet"],
)
def test_a_broken_base64_body_is_refused(encoded: str) -> None:
    # GIVEN a body flagged base64 that is not strict standard base64
    event = make_event(encoded, is_base64=True)
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "the request body is not valid base64")


@pytest.mark.parametrize(
    "raw", [b"grant_type=client_credentials&scope=\xff", b"\xc3\x28", b"\xed\xa0\x80"]
)
def test_a_body_that_is_not_utf8_is_refused(raw: bytes) -> None:
    # GIVEN a base64 body whose bytes are not UTF-8
    event = make_event(base64.b64encode(raw).decode(), is_base64=True)
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "the request body is not valid UTF-8")


def test_a_lone_surrogate_in_a_plain_body_is_refused() -> None:
    # GIVEN a plain body holding a lone surrogate (only possible from broken JSON)
    event = make_event(GRANT + "\ud800")
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "the request body is not valid UTF-8")


def padded_body(size: int) -> str:
    """A valid body of exactly ``size`` bytes (the padding goes into a long resource value)."""
    body = f"{BODY_CREDENTIALS}&resource="
    return body + "r" * (size - len(body))


def test_a_body_of_exactly_the_bound_is_accepted() -> None:
    # GIVEN a body of max_body_bytes bytes
    event = make_event(padded_body(2048), is_base64=False)
    # WHEN parsed with that bound, THEN accepted
    assert parse_token_request(event, max_body_bytes=2048).client_id == CLIENT_ID


@pytest.mark.parametrize("is_base64", [False, True])
def test_an_oversize_body_is_payload_too_large(is_base64: bool) -> None:
    # GIVEN a body one byte over the bound (plain or base64)
    body = padded_body(8193)
    encoded = base64.b64encode(body.encode()).decode() if is_base64 else body
    # WHEN parsed with the default bound, THEN 413
    expect_error(
        make_event(encoded, is_base64=is_base64),
        413,
        "invalid_request",
        "the request body is larger than 8192 bytes",
    )


def test_oversize_multibyte_body_is_measured_in_bytes() -> None:
    # GIVEN a body under the bound in characters but over it in UTF-8 bytes
    body = f"{BODY_CREDENTIALS}&resource=" + "é" * 50
    # WHEN parsed with a bound between the two, THEN 413
    expect_error(
        make_event(body),
        413,
        "invalid_request",
        "the request body is larger than 100 bytes",
        max_body_bytes=100,
    )


def test_a_huge_base64_body_is_refused_before_decoding() -> None:
    # GIVEN an enormous base64 body that is not even valid base64
    event = make_event("!" * 1_000_000, is_base64=True)
    # WHEN parsed, THEN 413 (the length check comes first)
    expect_error(event, 413, "invalid_request", "the request body is larger than 8192 bytes")


@pytest.mark.parametrize(
    ("event_update", "description"),
    [
        ({"headers": ["content-type"]}, "the request headers are malformed"),
        ({"headers": {"content-type": 5}}, "the request headers are malformed"),
        ({"body": {"grant_type": "client_credentials"}}, "the request body is malformed"),
        ({"rawQueryString": 12}, "the query string is malformed"),
    ],
)
def test_malformed_event_shapes_are_invalid_request(
    event_update: dict[str, Any], description: str
) -> None:
    # GIVEN an event whose parts have the wrong JSON types
    event = {**make_event(BODY_CREDENTIALS), **event_update}
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", description)


def test_decoded_query_parameters_are_used_without_a_raw_query_string() -> None:
    # GIVEN a hand-written event with queryStringParameters only
    event = make_event(GRANT)
    del event["rawQueryString"]
    event["queryStringParameters"] = {"client_id": CLIENT_ID, "client_secret": "a+b=c"}
    # WHEN parsed, THEN the decoded values are taken as they are
    assert parse_token_request(event) == TokenRequest(CLIENT_ID, "a+b=c", auth_method="query")


def test_an_overlong_query_string_is_refused() -> None:
    # GIVEN a query string longer than the body bound
    event = make_event(BODY_CREDENTIALS, query="scope=" + "a" * 9000)
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "the query string is longer than 8192 characters")


# ------------------------------------------------------------------ form parameters


def test_special_characters_in_values_survive_intact() -> None:
    # GIVEN values with '=', '+', '%', spaces and non-ASCII, form-encoded
    secret = "a=b+c%d e/é"
    metadata = '{"k":"v=1+2%"}'
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "aws_client_metadata": metadata,
        }
    )
    # WHEN parsed
    request = parse_token_request(make_event(body))
    # THEN every value is exactly what the client meant
    assert request == TokenRequest(CLIENT_ID, secret, extras=(("aws_client_metadata", metadata),))


def test_an_unencoded_equals_sign_in_a_value_is_kept() -> None:
    # GIVEN a raw '=' inside a value (only the first '=' separates name and value)
    event = make_event(f"{GRANT}&client_id={CLIENT_ID}&client_secret=abc==")
    # WHEN parsed, THEN the value keeps it
    assert parse_token_request(event).client_secret == "abc=="


def test_plus_is_a_space() -> None:
    # GIVEN '+' between scopes and inside a percent-encoded name
    event = make_event(f"{BODY_CREDENTIALS}&scop%65=b+a")
    # WHEN parsed, THEN '+' decodes as a space and names are decoded too
    assert parse_token_request(event).scopes == ("a", "b")


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (
            f"{BODY_CREDENTIALS}&scope=%zz",
            "parameter scope in the body is not valid percent-encoding",
        ),
        (
            f"{BODY_CREDENTIALS}&scope=abc%4",
            "parameter scope in the body is not valid percent-encoding",
        ),
        (
            f"{BODY_CREDENTIALS}&scope=%ff",
            "parameter scope in the body is not valid percent-encoding",
        ),
        (
            f"{BODY_CREDENTIALS}&scope=%C3%28",
            "parameter scope in the body is not valid percent-encoding",
        ),
        (
            f"{BODY_CREDENTIALS}&sc%ope=x",
            "the name of parameter #4 of the body is not valid percent-encoding",
        ),
    ],
)
def test_broken_percent_encoding_is_refused(body: str, description: str) -> None:
    # GIVEN a malformed escape or one that is not UTF-8
    # WHEN parsed, THEN invalid_request naming the parameter, not the value
    expect_error(make_event(body), 400, "invalid_request", description)


@pytest.mark.parametrize(
    ("body", "query", "description"),
    [
        (f"{BODY_CREDENTIALS}&scope=a&scope=b", "", "parameter scope is repeated in the body"),
        (f"{BODY_CREDENTIALS}&{GRANT}", "", "parameter grant_type is repeated in the body"),
        (f"{BODY_CREDENTIALS}&scope=&scope=", "", "parameter scope is repeated in the body"),
        (BODY_CREDENTIALS, "scope=a&scope=a", "parameter scope is repeated in the query string"),
        (
            f"{GRANT}&client_id={CLIENT_ID}&client_id={CLIENT_ID}&client_secret={SECRET}",
            "",
            "parameter client_id is repeated in the body",
        ),
    ],
)
def test_repeated_parameters_are_refused(body: str, query: str, description: str) -> None:
    # GIVEN a parameter included twice in one location (RFC 6749 3.2)
    # WHEN parsed, THEN invalid_request
    expect_error(make_event(body, query=query), 400, "invalid_request", description)


def test_the_same_value_in_body_and_query_is_fine() -> None:
    # GIVEN grant_type and scope in both places with the same values
    event = make_event(f"{BODY_CREDENTIALS}&scope=x", query=f"{GRANT}&scope=x")
    # WHEN parsed, THEN accepted
    assert parse_token_request(event) == TokenRequest(CLIENT_ID, SECRET, scopes=("x",))


@pytest.mark.parametrize(
    ("name", "body", "query"),
    [
        ("scope", f"{BODY_CREDENTIALS}&scope=one", "scope=two"),
        ("resource", f"{BODY_CREDENTIALS}&resource=one", "resource=two"),
        ("grant_type", BODY_CREDENTIALS, "grant_type=password"),
        ("scope", f"{BODY_CREDENTIALS}&scope=a+b", "scope=b+a"),
    ],
)
def test_different_values_in_body_and_query_are_refused(name: str, body: str, query: str) -> None:
    # GIVEN one parameter in both places with different values (even the same set of scopes)
    event = make_event(body, query=query)
    # WHEN parsed, THEN invalid_request
    expect_error(
        event,
        400,
        "invalid_request",
        f"parameter {name} has different values in the body and the query string",
    )


UNKNOWN_4TH = (
    "unsupported parameter #4 of the body: this endpoint accepts "
    "grant_type, scope, client_id, client_secret, resource and aws_client_metadata"
)


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        ("username=bob", UNKNOWN_4TH),
        ("redirect_uri=https%3A%2F%2Fx", UNKNOWN_4TH),
        ("x" * 40 + "=1", UNKNOWN_4TH),
        ("na%22me%0A<b>=1", UNKNOWN_4TH),
        ("=value", UNKNOWN_4TH),
        ("a-secret-value-without-equals", "parameter #4 of the body is not a name=value pair"),
    ],
)
def test_unknown_parameters_are_refused_by_position_never_by_their_text(
    extra: str, description: str
) -> None:
    # GIVEN a parameter the proxy does not forward
    event = make_event(f"{BODY_CREDENTIALS}&{extra}")
    # WHEN parsed, THEN invalid_request naming its position and what is accepted, never its
    # name or value (an unknown "name" may be part of a secret)
    expect_error(event, 400, "invalid_request", description)


def test_a_secret_sent_without_form_encoding_never_reaches_the_description() -> None:
    # GIVEN a client secret holding '&' and then '=' sent without form-encoding, so that its
    # tail parses as a parameter of its own
    event = make_event(f"{GRANT}&client_id={CLIENT_ID}&client_secret=Ab1&Cd2=Ef3")
    # WHEN parsed, THEN the refusal (the whole body) names a position only: no part of it
    expect_error(event, 400, "invalid_request", UNKNOWN_4TH)


def test_unknown_parameters_in_the_query_are_refused() -> None:
    # GIVEN an unknown query parameter
    event = make_event(BODY_CREDENTIALS, query="debug=1")
    # WHEN parsed, THEN invalid_request naming its position in the query string
    expect_error(
        event,
        400,
        "invalid_request",
        "unsupported parameter #1 of the query string: this endpoint accepts "
        "grant_type, scope, client_id, client_secret, resource and aws_client_metadata",
    )


def test_empty_segments_are_ignored() -> None:
    # GIVEN stray '&' separators
    event = make_event(f"&&{BODY_CREDENTIALS}&&", query="&")
    # WHEN parsed, THEN accepted
    assert parse_token_request(event) == TokenRequest(CLIENT_ID, SECRET)


# ------------------------------------------------------------------ grant type


def test_a_missing_grant_type_is_invalid_request() -> None:
    # GIVEN credentials but no grant_type
    event = make_event(f"client_id={CLIENT_ID}&client_secret={SECRET}")
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", "grant_type is required")


@pytest.mark.parametrize(
    "grant",
    [
        "authorization_code",
        "refresh_token",
        "password",
        "Client_Credentials",
        "client_credentials ",
    ],
)
def test_other_grant_types_are_unsupported(grant: str) -> None:
    # GIVEN another grant type
    event = make_event(f"grant_type={quote(grant)}&client_id={CLIENT_ID}&client_secret={SECRET}")
    # WHEN parsed, THEN unsupported_grant_type
    expect_error(
        event,
        400,
        "unsupported_grant_type",
        "this endpoint supports grant_type=client_credentials only",
    )


def test_another_grant_with_its_own_parameters_is_unsupported_grant_type() -> None:
    # GIVEN a refresh_token request (with a parameter this endpoint would not accept)
    event = make_event(f"grant_type=refresh_token&refresh_token=abc&client_id={CLIENT_ID}")
    # WHEN parsed, THEN the grant type is named as the problem, not the parameter
    expect_error(
        event,
        400,
        "unsupported_grant_type",
        "this endpoint supports grant_type=client_credentials only",
    )


def test_an_unknown_parameter_with_an_empty_value_is_still_refused() -> None:
    # GIVEN an unknown parameter without a value
    event = make_event(f"{BODY_CREDENTIALS}&audience=")
    # WHEN parsed, THEN it is refused by its position
    expect_error(event, 400, "invalid_request", UNKNOWN_4TH)


def test_a_repeated_unknown_parameter_is_named_safely() -> None:
    # GIVEN an unknown parameter twice
    event = make_event(f"{BODY_CREDENTIALS}&a%3Cb=1&a%3Cb=2")
    # WHEN parsed, THEN the repetition is reported by position, never by its text
    expect_error(
        event,
        400,
        "invalid_request",
        "parameter #5 of the body repeats an earlier parameter's name",
    )


# ------------------------------------------------------------------ scope and extras


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("b/write a/read", ("a/read", "b/write")),
        ("  a/read   a/read  b  ", ("a/read", "b")),
        ("", ()),
        ("   ", ()),
        ("https://api.example.com/orders.read", ("https://api.example.com/orders.read",)),
        ("!#[]~", ("!#[]~",)),
    ],
)
def test_scopes_are_a_sorted_set(scope: str, expected: tuple[str, ...]) -> None:
    # GIVEN a scope string with any order, runs of spaces and duplicates
    event = make_event(f"{BODY_CREDENTIALS}&scope={quote(scope, safe='')}")
    # WHEN parsed
    request = parse_token_request(event)
    # THEN the scopes are normalised, so equivalent requests share a cache key
    assert request.scopes == expected
    assert KEYS.key_for(request) == KEYS.key_for(TokenRequest(CLIENT_ID, SECRET, scopes=expected))


@pytest.mark.parametrize("scope", ['a"b', "a\\b", "a\tb", "caf\u00e9", "a\x7fb", "a\nb"])
def test_scope_tokens_outside_the_rfc_characters_are_invalid_scope(scope: str) -> None:
    # GIVEN a scope token with a character RFC 6749 3.3 excludes
    event = make_event(f"{BODY_CREDENTIALS}&scope={quote(scope, safe='')}")
    # WHEN parsed, THEN invalid_scope
    expect_error(
        event,
        400,
        "invalid_scope",
        'scope must be space-separated tokens of printable ASCII characters except " and \\',
    )


def test_scope_may_come_from_the_query_string() -> None:
    # GIVEN the scope only in the query string
    event = make_event(BODY_CREDENTIALS, query="scope=z+y")
    # WHEN parsed, THEN it is used
    assert parse_token_request(event).scopes == ("y", "z")


def test_resource_and_client_metadata_become_sorted_extras() -> None:
    # GIVEN both extra parameters, in either location
    event = make_event(
        f"{BODY_CREDENTIALS}&resource=https%3A%2F%2Fapi.example.com",
        query="aws_client_metadata=%7B%22tenant%22%3A%22t1%22%7D",
    )
    # WHEN parsed, THEN they are carried sorted by name
    assert parse_token_request(event).extras == (
        ("aws_client_metadata", '{"tenant":"t1"}'),
        ("resource", "https://api.example.com"),
    )


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        ("resource=" + "r" * 2049, "parameter resource is longer than 2048 characters"),
        (
            "aws_client_metadata=" + "m" * 4097,
            "parameter aws_client_metadata is longer than 4096 characters",
        ),
        ("resource=a%00b", "parameter resource contains control characters"),
    ],
)
def test_extras_are_bounded(extra: str, description: str) -> None:
    # GIVEN an extra parameter over its bound or with control characters
    event = make_event(f"{BODY_CREDENTIALS}&{extra}")
    # WHEN parsed, THEN invalid_request
    expect_error(event, 400, "invalid_request", description)


# ------------------------------------------------------------------ properties

header_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["Basic ", "basic", "Bearer x", FORM, f"{FORM}; charset=utf-8"]).flatmap(
        lambda prefix: st.text(max_size=30).map(lambda tail: prefix + tail)
    ),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
)
names = st.sampled_from(
    [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "aws_client_metadata",
        "x",
        "",
    ]
)
form_strings = st.lists(st.tuples(names, st.text(max_size=20), st.booleans()), max_size=8).map(
    lambda pairs: "&".join(
        f"{quote(n)}={quote(v)}" if encode else f"{n}={v}" for n, v, encode in pairs
    )
)
bodies = st.one_of(st.none(), st.text(max_size=60), form_strings)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    query=st.one_of(st.text(max_size=40), form_strings),
    headers=st.dictionaries(
        st.sampled_from(["content-type", "authorization", "Authorization", "x-other"]),
        header_values,
        max_size=3,
    ),
    as_base64=st.booleans(),
    method=st.sampled_from(["POST", "POST", "GET"]),
)
def test_parse_raises_nothing_but_oauth_errors(
    body: str | None, query: str, headers: dict[str, str], as_base64: bool, method: str
) -> None:
    # GIVEN arbitrary bodies, query strings and headers
    if as_base64 and body is not None:
        body = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    event = make_event(body, headers=headers, query=query, is_base64=as_base64, method=method)
    # WHEN parsed
    try:
        request = parse_token_request(event)
    except OAuthError as exc:
        # THEN a refusal is a well-formed RFC 6749 error
        response = exc.to_response()
        assert response.status in {400, 401, 404, 405, 413}
        assert set(json.loads(response.body)) == {"error", "error_description"}
    else:
        # THEN an accepted request is complete and normalised
        assert request.client_id and request.client_secret
        assert list(request.scopes) == sorted(set(request.scopes))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "headers",
                "body",
                "rawQueryString",
                "queryStringParameters",
                "isBase64Encoded",
                "rawPath",
                "requestContext",
            ]
        ),
        json_values,
        max_size=4,
    )
)
def test_any_event_shape_raises_nothing_but_oauth_errors(overrides: dict[str, Any]) -> None:
    # GIVEN a valid event with parts replaced by arbitrary JSON values
    event = {**make_event(BODY_CREDENTIALS), **overrides}
    # WHEN parsed, THEN it either parses or raises an OAuthError (never anything else)
    with contextlib.suppress(OAuthError):
        parse_token_request(event)


# A marker prefix keeps a generated secret from being a substring of a fixed description.
secrets_ = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=40
).map(lambda text: "Zq9~" + text)


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets_,
    tail=st.sampled_from(
        ["&scope=%zz", '&scope=a"b', "&junk", "&grant_type=x", "&client_secret=again", "&bad=1", ""]
    ),
    method=st.sampled_from(["body", "query", "basic"]),
)
def test_error_descriptions_never_contain_the_secret(secret: str, tail: str, method: str) -> None:
    # GIVEN a request carrying a secret by some method, made invalid in some way
    encoded = quote(secret, safe="")
    if method == "basic":
        event = make_event(
            GRANT + tail, headers={"authorization": basic(secret=encoded)}, query="x=1"
        )
    elif method == "query":
        event = make_event(GRANT + tail, query=f"client_id=c&client_secret={encoded}&unknown=1")
    else:
        event = make_event(f"{GRANT}&client_id=c&client_secret={encoded}{tail}&{secret}")
    # WHEN parsed
    try:
        parse_token_request(event)
    except OAuthError as exc:
        # THEN the error names no credential
        response = exc.to_response()
        assert secret not in response.body
        assert encoded not in response.body
