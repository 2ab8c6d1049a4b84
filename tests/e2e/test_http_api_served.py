"""The HTTP API adapter over a real loopback socket: what the HTTP server hands over (repeated
headers, cookies, the raw target) reaches the event as API Gateway would put it."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest

from local.http_api import HttpApiAdapter, RunningAdapter, serve_in_thread
from local.lambda_runtime import Invocation

pytestmark = pytest.mark.e2e


class RecordingFunction:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: Any) -> Invocation:
        self.events.append(event)
        return Invocation(
            ok=True, payload={"statusCode": 200, "headers": {"X-Seen": "yes"}, "body": "ok"}
        )


@pytest.fixture
def served() -> Iterator[tuple[RunningAdapter, RecordingFunction]]:
    function = RecordingFunction()
    running = serve_in_thread(HttpApiAdapter(function))
    yield running, function
    running.stop()


def test_repeated_headers_and_cookies_reach_the_event_as_api_gateway_puts_them(
    served: tuple[RunningAdapter, RecordingFunction],
) -> None:
    # GIVEN the adapter on a loopback port
    running, function = served
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)

    # WHEN a request sends a header twice, two Cookie headers and a percent-encoded query
    connection.putrequest("POST", "/oauth2/token?scope=a%20b&scope=c")
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("X-Repeated", "one")
    connection.putheader("X-Repeated", "two")
    connection.putheader("Cookie", "a=1")
    connection.putheader("Cookie", "b=2")
    connection.putheader("Content-Length", "3")
    connection.endheaders(b"x=1")
    response = connection.getresponse()
    body = response.read()
    connection.close()

    # THEN the function's answer came back, and its event had them joined as HTTP API does
    assert (response.status, body, response.getheader("X-Seen")) == (200, b"ok", "yes")
    (event,) = function.events
    assert event["headers"]["x-repeated"] == "one,two"
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["rawQueryString"] == "scope=a%20b&scope=c"
    assert event["queryStringParameters"] == {"scope": "a b,c"}
    assert event["isBase64Encoded"] is True
    assert event["body"] == "eD0x"  # base64 of "x=1"
