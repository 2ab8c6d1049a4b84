"""The function URL adapter of the local stack (``FRONTEND=FunctionUrl``): every request, on any
path and with any method, becomes the event Lambda documents for function URLs, and the result
becomes the response (no sockets: werkzeug's test client drives the WSGI app)."""

from __future__ import annotations

import base64
import json
import re

from werkzeug.test import Client

from local.function_url import MAX_PAYLOAD_BYTES, FunctionUrlAdapter, FunctionUrlIdentity
from tests.fakes.proxy_function import load_event
from tests.fakes.recording_function import RecordingFunction

FIXED_TIME = 1_710_270_238.5
URL = FunctionUrlIdentity.for_function("token-proxy-local-TokenProxyFunction", "eu-west-1")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def adapter(function: RecordingFunction) -> Client:
    return Client(FunctionUrlAdapter(function, url=URL, clock=lambda: FIXED_TIME))


def test_a_function_url_id_looks_like_lambdas_and_stays_the_same() -> None:
    # GIVEN the local function's URL identity / THEN 32 lowercase letters and digits, stable
    assert re.fullmatch(r"[a-z0-9]{32}", URL.url_id)
    again = FunctionUrlIdentity.for_function("token-proxy-local-TokenProxyFunction", "eu-west-1")
    assert again == URL
    assert URL.domain_name == f"{URL.url_id}.lambda-url.eu-west-1.on.aws"


def test_a_form_post_becomes_a_function_url_event() -> None:
    # GIVEN a client posting a form with Basic auth and a query string
    function = RecordingFunction()
    body = b"grant_type=client_credentials&scope=a%2Fread"

    # WHEN it reaches the adapter
    response = adapter(function).post(
        "/oauth2/token?x=1&x=2",
        data=body,
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", "Basic dGVzdDp0ZXN0"),
            ("User-Agent", "unit-test/1.0"),
        ],
        environ_base={"REMOTE_ADDR": "127.0.0.9"},
    )

    # THEN the function got the event a function URL sends: payload 2.0 with the $default
    # placeholders, the URL's id and domain, no authorizer (auth type NONE), a UUID request id
    assert response.status_code == 204
    (event,) = function.events
    request_id = response.headers["x-amzn-RequestId"]
    assert UUID.match(request_id)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/oauth2/token"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["authorization"] == "Basic dGVzdDp0ZXN0"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["requestContext"] == {
        "accountId": "anonymous",
        "apiId": URL.url_id,
        "authentication": None,
        "authorizer": None,
        "domainName": URL.domain_name,
        "domainPrefix": URL.url_id,
        "http": {
            "method": "POST",
            "path": "/oauth2/token",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.9",
            "userAgent": "unit-test/1.0",
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2024:19:03:58 +0000",
        "timeEpoch": 1710270238500,
    }


def test_the_local_event_has_the_shape_of_the_events_files() -> None:
    # GIVEN a request like the one events/token_function_url.json describes
    function = RecordingFunction()
    adapter(function).post(
        "/oauth2/token",
        data=b"grant_type=client_credentials",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    (event,) = function.events
    documented = load_event("token_function_url.json")

    # THEN both have the same keys, at the top and in the request context
    assert set(event) - {"queryStringParameters"} == set(documented)
    assert set(event["requestContext"]) == set(documented["requestContext"])
    assert set(event["requestContext"]["http"]) == set(documented["requestContext"]["http"])


def test_every_path_and_method_reaches_the_function() -> None:
    # GIVEN requests a function URL does not route (other paths, other methods)
    function = RecordingFunction()
    client = adapter(function)

    # WHEN they arrive
    statuses = [
        client.get("/").status_code,
        client.get("/oauth2/token").status_code,
        client.delete("/favicon.ico").status_code,
        client.options("/oauth2/token").status_code,
    ]

    # THEN each one invoked the function, which answers them (here: 204)
    assert statuses == [204] * 4
    assert [(e["requestContext"]["http"]["method"], e["rawPath"]) for e in function.events] == [
        ("GET", "/"),
        ("GET", "/oauth2/token"),
        ("DELETE", "/favicon.ico"),
        ("OPTIONS", "/oauth2/token"),
    ]
    assert all("body" not in e and e["isBase64Encoded"] is False for e in function.events)


def test_a_function_result_is_mapped_as_a_payload_2_response() -> None:
    # GIVEN a function answering with a status, headers and a JSON body
    result = {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps({"error": "invalid_request"}),
        "isBase64Encoded": False,
    }

    # WHEN a request comes
    response = adapter(RecordingFunction(result)).get("/nowhere")

    # THEN the client gets exactly that answer
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"error": "invalid_request"}


def test_a_function_error_is_a_bad_gateway() -> None:
    # GIVEN a function that fails / WHEN a request comes / THEN 502 Internal Server Error
    response = adapter(RecordingFunction(ok=False)).post("/oauth2/token", data=b"x=1")
    assert response.status_code == 502
    assert response.get_data(as_text=True) == "Internal Server Error"


def test_a_body_over_lambdas_payload_quota_is_refused_before_the_function() -> None:
    # GIVEN a request announcing a body over 6 MB
    function = RecordingFunction()
    response = adapter(function).post(
        "/oauth2/token",
        data=b"",
        environ_overrides={"CONTENT_LENGTH": str(MAX_PAYLOAD_BYTES + 1)},
    )
    # THEN 413, and the function never ran
    assert response.status_code == 413
    assert function.events == []
