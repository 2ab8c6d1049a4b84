"""The local stand-ins' HTTP front end over real loopback sockets: requests HTTP/1.1 does not
allow are refused as a whole by the HTTP API adapter and by the local Cognito issuer, with one
JSON answer and one log line, never a half-read request, a 500 page or a traceback.

Malformed requests are written on raw sockets (HTTP libraries refuse to send them).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
import requests

from local.cognito_token_endpoint import ClientRegistration, LocalIssuer
from local.cognito_token_endpoint import serve_in_thread as serve_issuer
from local.http_api import HttpApiAdapter, RunningAdapter
from local.http_api import serve_in_thread as serve_adapter
from local.http_front_end import FrontEnd
from local.moto_server import aws_client, start_moto_server
from local.wsgi_serving import make_wsgi_server, serve_in_thread
from tests.e2e.raw_http import LONG_ID, LONG_SECRET, exchange, post_head, wrapped_basic
from tests.fakes.recording_function import RecordingFunction

pytestmark = pytest.mark.e2e

TIMEOUT = 10
FORM_BODY = b"grant_type=client_credentials&scope=demo-api%2Fread"
CLIENT = ClientRegistration(LONG_ID, LONG_SECRET, ("demo-api/read",), 600)


@pytest.fixture
def api() -> Iterator[tuple[RunningAdapter, RecordingFunction]]:
    function = RecordingFunction({"statusCode": 200, "body": "ok"})
    running = serve_adapter(HttpApiAdapter(function))
    yield running, function
    running.stop()


@pytest.fixture
def issuer() -> Iterator[tuple[int, LocalIssuer]]:
    app = LocalIssuer([CLIENT], web_acl=None)
    running = serve_issuer(app)
    yield running.port, app
    running.stop()


def lines_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record of the test at INFO and above, as ``logger: message``; none may carry a
    traceback."""
    assert not [r for r in caplog.records if r.exc_info or r.exc_text], "a traceback was logged"
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]


# ---------------------------------------------------------------------- the HTTP API


def test_a_wrapped_basic_header_is_refused_as_a_whole_by_the_http_api(
    api: tuple[RunningAdapter, RecordingFunction], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the HTTP API on loopback
    running, function = api
    caplog.set_level(logging.INFO)

    # WHEN a client sends the Basic value GNU base64 wrapped at 76 characters, then its form
    answer = exchange(running.port, post_head(wrapped_basic(), length=len(FORM_BODY)) + FORM_BODY)

    # THEN the whole request is refused with a 400 naming the header problem and the fix
    assert answer.status == 400
    assert answer.json() == {
        "message": "Malformed header: the line after the Authorization header is not a "
        "'Name: value' header; a header value cannot continue on a new line; send each header "
        "on one line (for HTTP Basic use curl -u ID:SECRET, or base64 -w0: GNU base64 wraps at "
        "76 characters)"
    }
    assert answer.headers["connection"] == "close"
    # AND the function never ran (no half-read request reached it)
    assert function.events == []
    # AND the terminal gets one line, naming the kind of problem only
    assert lines_logged(caplog) == [
        "local.http_api: request refused: 400 header line without a colon"
    ]


def test_a_truncated_body_gets_a_400_and_one_log_line(
    api: tuple[RunningAdapter, RecordingFunction], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the HTTP API on loopback
    running, function = api
    caplog.set_level(logging.INFO)

    # WHEN a client announces 100 bytes, sends 17 and half-closes the connection
    answer = exchange(running.port, post_head(length=100) + b"grant_type=client")

    # THEN it gets a 400 JSON answer saying so, not a 500 page
    assert (answer.status, answer.json()) == (
        400,
        {
            "message": "Bad Request: the body ended after 17 bytes, before the 100 its "
            "Content-Length announced (the client closed its side of the connection early)"
        },
    )
    # AND the function never ran, and one line (no traceback) was logged
    assert function.events == []
    assert lines_logged(caplog) == ["local.http_api: request refused: 400 truncated body"]


def test_a_refused_head_gets_no_100_continue(
    api: tuple[RunningAdapter, RecordingFunction],
) -> None:
    # GIVEN a client that waits for "100 Continue" before sending its body (curl does for
    # larger bodies), with a wrapped Authorization value
    running, function = api
    head = post_head(wrapped_basic(), b"Expect: 100-continue\r\n", length=len(FORM_BODY))

    # WHEN it sends the head only
    answer = exchange(running.port, head, half_close=False)

    # THEN the refusal comes first, without inviting the body
    assert (answer.status, answer.interim, function.events) == (400, [], [])


def test_a_chunked_body_reaches_the_function_whole(
    api: tuple[RunningAdapter, RecordingFunction],
) -> None:
    # GIVEN the HTTP API on loopback
    running, function = api

    # WHEN requests sends the form as a chunked body (a generator has no length)
    response = requests.post(
        running.url + "/oauth2/token",
        data=(part for part in (FORM_BODY[:10], FORM_BODY[10:])),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )

    # THEN the function got the whole form, base64-encoded as HTTP API passes forms
    assert (response.status_code, response.text) == (200, "ok")
    (event,) = function.events
    assert base64.b64decode(event["body"]) == FORM_BODY


def test_a_head_over_http_apis_quota_is_refused(
    api: tuple[RunningAdapter, RecordingFunction],
) -> None:
    # GIVEN the HTTP API's 10240 bytes for the request line and header values
    running, function = api

    # WHEN a client sends an 11000-byte header
    response = requests.post(
        running.url + "/oauth2/token",
        data=FORM_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Big": "a" * 11000},
        timeout=TIMEOUT,
    )

    # THEN it is refused with a 431 saying by how much, and the function never ran
    assert response.status_code == 431
    assert response.json()["message"].startswith(
        "Request Header Fields Too Large: the request line and header values add up to "
    )
    assert function.events == []


def test_a_malformed_request_line_gets_json_with_a_status_line(
    api: tuple[RunningAdapter, RecordingFunction], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the HTTP API on loopback
    running, _ = api
    caplog.set_level(logging.INFO)

    # WHEN the request line has no HTTP version, or is garbage
    answers = [exchange(running.port, line) for line in (b"GET /\r\n\r\n", b"GARBAGE\r\n\r\n")]

    # THEN each is an HTTP/1.1 400 in JSON, not an HTML page, never echoing the line
    assert [(a.status, a.json()) for a in answers] == [
        (400, {"message": "Bad Request: the request line must end with the HTTP version"}),
        (400, {"message": "Bad Request: Bad request syntax"}),
    ]
    assert lines_logged(caplog) == [
        "local.http_api: request refused: 400 HTTP/0.9 request",
        "local.http_api: request refused: 400 bad request syntax",
    ]


def test_a_body_that_stops_arriving_is_refused_after_the_read_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a front end that waits half a second for a silent client
    function = RecordingFunction()
    front_end = FrontEnd(logger=logging.getLogger("local.http_api"), read_timeout_seconds=0.5)
    served = serve_in_thread(
        make_wsgi_server(HttpApiAdapter(function), front_end=front_end), thread_name="test"
    )
    caplog.set_level(logging.INFO)
    try:
        # WHEN a client sends part of its body and then nothing (without closing)
        answer = exchange(served.port, post_head(length=100) + b"grant", half_close=False)
    finally:
        served.stop()

    # THEN it gets a 408 and one log line
    assert (answer.status, answer.json()) == (
        408,
        {"message": "Request Timeout: the body did not arrive within 0.5 s"},
    )
    assert function.events == []
    assert lines_logged(caplog) == ["local.http_api: request refused: 408 body timed out"]


# ---------------------------------------------------------------------- the Cognito stand-in


def test_the_local_issuer_refuses_the_same_requests_in_its_error_shape(
    issuer: tuple[int, LocalIssuer], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the local issuer on loopback
    port, app = issuer
    caplog.set_level(logging.INFO)

    # WHEN a wrapped Basic value, then a truncated body reach it
    wrapped = exchange(port, post_head(wrapped_basic(), length=len(FORM_BODY)) + FORM_BODY)
    truncated = exchange(port, post_head(length=100) + b"grant_type=client")

    # THEN both are refused as RFC 6749 invalid_request errors naming the problem
    assert wrapped.status == 400
    assert wrapped.json()["error"] == "invalid_request"
    assert wrapped.json()["error_description"].startswith(
        "Malformed header: the line after the Authorization header is not a 'Name: value'"
    )
    assert (truncated.status, truncated.json()["error"]) == (400, "invalid_request")
    assert truncated.json()["error_description"].startswith(
        "Bad Request: the body ended after 17 bytes"
    )
    # AND no token was issued, and one line each (no traceback) was logged
    assert app.issued == 0
    assert lines_logged(caplog) == [
        "local.cognito_token_endpoint: request refused: 400 header line without a colon",
        "local.cognito_token_endpoint: request refused: 400 truncated body",
    ]


def test_the_local_issuer_still_serves_the_same_credentials_on_one_line(
    issuer: tuple[int, LocalIssuer],
) -> None:
    # GIVEN the same long credentials, sent as curl -u sends them (one line)
    port, _ = issuer

    # WHEN they ask for a token
    response = requests.post(
        f"http://127.0.0.1:{port}/oauth2/token",
        data=FORM_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(LONG_ID, LONG_SECRET),
        timeout=TIMEOUT,
    )

    # THEN they get one
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


# ---------------------------------------------------------------------- moto's server


def test_moto_answers_what_it_cannot_handle_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the local stack's moto server
    moto = start_moto_server()
    caplog.set_level(logging.INFO)
    try:
        # WHEN an SDK uses it, then a request no AWS service would route and a truncated body
        # reach it
        tables = aws_client("dynamodb", moto.endpoint_url, "eu-west-1").list_tables()
        unroutable = exchange(moto.port, post_head(length=len(FORM_BODY)) + FORM_BODY)
        truncated = exchange(moto.port, post_head(length=100) + b"{")
    finally:
        moto.stop()

    # THEN the SDK is served, the unroutable request gets AWS's InternalFailure, and the
    # truncated one the front end's 400
    assert tables["TableNames"] == []
    assert (unroutable.status, unroutable.json()) == (
        500,
        {"__type": "InternalFailure", "message": "moto could not handle the request"},
    )
    assert truncated.status == 400
    # AND each left one log line, without a traceback
    assert [line for line in lines_logged(caplog) if line.startswith("local.")] == [
        "local.moto_server: moto failed on POST /oauth2/token: KeyError",
        "local.moto_server: request refused: 400 truncated body",
    ]
