"""The HTTP API adapter of the local stack: requests become payload 2.0 events as API Gateway
builds them, and function results become responses as HTTP API maps them (no sockets: the
WSGI app is driven by werkzeug's test client)."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from werkzeug.test import Client

from local.cloudformation_template import default_template
from local.http_api import HttpApiAdapter, is_text_media_type, template_routes
from tests.fakes.recording_function import RecordingFunction

FIXED_TIME = 1_710_270_238.5


def adapter(function: RecordingFunction) -> Client:
    app = HttpApiAdapter(function, routes=template_routes(), clock=lambda: FIXED_TIME)
    return Client(app)


def test_the_template_routes_only_post_oauth2_token() -> None:
    # GIVEN template.yaml / WHEN its HTTP API's routes are read / THEN there is the token one only
    assert template_routes() == (("POST", "/oauth2/token"),)


def test_the_routes_are_read_from_the_apis_openapi_body() -> None:
    # GIVEN the template with the token route's path changed in the HTTP API's OpenAPI body
    template = copy.deepcopy(default_template())
    paths = template["Resources"]["TokenApi"]["Properties"]["Body"]["paths"]
    paths["/v2/token"] = paths.pop("/oauth2/token")

    # WHEN its routes are read, THEN they are the body's
    assert template_routes(template=template) == (("POST", "/v2/token"),)


def test_a_form_post_becomes_a_payload_2_event_with_a_base64_body() -> None:
    # GIVEN a client posting a form with Basic auth, a repeated header, cookies and a query
    function = RecordingFunction()
    body = b"grant_type=client_credentials&scope=a%2Fread+b"

    # WHEN it reaches the adapter
    client = adapter(function)
    client.set_cookie("a", "1")
    client.set_cookie("b", "2")
    response = client.post(
        "/oauth2/token?x=1&x=2&y=%2F",
        data=body,
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", "Basic dGVzdDp0ZXN0"),
            ("User-Agent", "unit-test/1.0"),
        ],
        # As werkzeug's HTTP server hands repeated headers over: joined with commas.
        environ_base={
            "REMOTE_ADDR": "127.0.0.9",
            "HTTP_X_REPEATED": "one,two",
            "HTTP_COOKIE": "a=1; b=2",
        },
    )

    # THEN the function got the event API Gateway would send
    assert response.status_code == 204
    (event,) = function.events
    request_id = response.headers["apigw-requestid"]
    headers = event["headers"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /oauth2/token"
    assert event["rawPath"] == "/oauth2/token"
    assert event["rawQueryString"] == "x=1&x=2&y=%2F"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "/"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in headers
    assert headers["x-repeated"] == "one,two"
    assert headers["authorization"] == "Basic dGVzdDp0ZXN0"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["x-forwarded-for"] == "127.0.0.9"
    assert all(name == name.lower() for name in headers)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert event["requestContext"] == {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {
            "method": "POST",
            "path": "/oauth2/token",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.9",
            "userAgent": "unit-test/1.0",
        },
        "requestId": request_id,
        "routeKey": "POST /oauth2/token",
        "stage": "$default",
        "time": "12/Mar/2024:19:03:58 +0000",
        "timeEpoch": 1710270238500,
    }


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_which_bodies_http_api_passes_as_text(content_type: str | None, text: bool) -> None:
    # GIVEN a content type / WHEN classified / THEN as HTTP API does
    assert is_text_media_type(content_type) is text


def test_a_json_body_arrives_as_text_and_no_body_has_no_body_field() -> None:
    # GIVEN two requests: a JSON body, and none at all
    function = RecordingFunction()
    client = adapter(function)

    # WHEN both reach the adapter
    client.post("/oauth2/token", data='{"a": 1}', content_type="application/json")
    client.post("/oauth2/token")

    # THEN the JSON is passed as text, and the empty request has no body
    with_json, empty = function.events
    assert (with_json["body"], with_json["isBase64Encoded"]) == ('{"a": 1}', False)
    assert "body" not in empty
    assert empty["isBase64Encoded"] is False
    assert "queryStringParameters" not in empty


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/oauth2/token"), ("POST", "/oauth2/token/"), ("POST", "/")]
)
def test_other_routes_get_not_found_without_invoking_the_function(method: str, path: str) -> None:
    # GIVEN the adapter / WHEN a request matches no route
    function = RecordingFunction()
    response = adapter(function).open(path, method=method)

    # THEN HTTP API's 404 answers, and the function never runs
    assert response.status_code == 404
    assert response.get_json() == {"message": "Not Found"}
    assert function.events == []


def test_a_function_result_is_mapped_to_the_http_response() -> None:
    # GIVEN a function answering with headers, a cookie and a base64-encoded body
    function = RecordingFunction(
        {
            "statusCode": 401,
            "headers": {"Content-Type": "application/json", "WWW-Authenticate": "Basic"},
            "cookies": ["c=1; Path=/"],
            "body": base64.b64encode(b'{"error":"invalid_client"}').decode(),
            "isBase64Encoded": True,
        }
    )

    # WHEN a request is answered
    client = adapter(function)
    client.set_cookie("a", "1")
    client.set_cookie("b", "2")
    response = client.post("/oauth2/token")

    # THEN the status, headers, cookie and decoded body are the function's
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["WWW-Authenticate"] == "Basic"
    assert response.headers.getlist("Set-Cookie") == ["c=1; Path=/"]
    assert response.get_data() == b'{"error":"invalid_client"}'


def test_a_result_without_status_code_is_a_200_json_body() -> None:
    # GIVEN a function returning a plain JSON object
    function = RecordingFunction({"hello": "world"})

    # WHEN a request is answered / THEN HTTP API's inference applies
    client = adapter(function)
    client.set_cookie("a", "1")
    client.set_cookie("b", "2")
    response = client.post("/oauth2/token")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_data()) == {"hello": "world"}


def test_a_function_error_is_an_internal_server_error() -> None:
    # GIVEN a function that fails / WHEN invoked through the adapter
    response = adapter(RecordingFunction(ok=False)).post("/oauth2/token")

    # THEN the client sees HTTP API's 500, nothing of the error
    assert response.status_code == 500
    assert response.get_json() == {"message": "Internal Server Error"}
