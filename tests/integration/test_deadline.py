"""One deadline per request: a Cognito that hangs or answers too late, on a real socket on
loopback, never makes the function outlive its context. The handler runs as in Lambda
(``app.lambda_handler`` on moto, with the template's environment) with a short context
deadline, and always answers with its own 503 in time, never a timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from local.lambda_runtime import LambdaContext
from tests.fakes.lambda_context import TOKEN_PROXY_FUNCTION
from tests.fakes.proxy_function import load_event, proxy_environment
from token_proxy import app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

#: The context's time left when the request arrives (the function's timeout is 20 s). Without
#: a deadline, three attempts of 3 s (UPSTREAM_TIMEOUT_SECONDS' default) plus their backoff
#: would take over 9 s: Lambda would end the invocation first.
CONTEXT_SECONDS = 8.0
MARGIN_SECONDS = 1.0  # DEADLINE_MARGIN_SECONDS' default
ATTEMPT_TIMEOUT_SECONDS = 3.0


class StalledCognito:
    """A token endpoint on loopback that accepts connections and answers after ``delay``
    seconds (or never, with None); counts the requests it read."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.requests = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = int(self._server.getsockname()[1])

    def start(self) -> None:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                if connection.recv(65536):
                    self.requests += 1
            except OSError:
                return
            waited = self._stop.wait(self.delay if self.delay is not None else 60)
            if waited or self.delay is None:
                return
            body = json.dumps({"access_token": "eyJ.late.token", "expires_in": 3600}).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            try:
                connection.sendall(head.encode() + body)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._server.close()


@pytest.fixture(params=[None, 10.0], ids=["hanging", "answering after 10 s"])
def stalled(request: pytest.FixtureRequest) -> Iterator[StalledCognito]:
    server = StalledCognito(request.param)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxy(
    token_table: Any, monkeypatch: pytest.MonkeyPatch, stalled: StalledCognito
) -> Iterator[dict[str, str]]:
    with proxy_environment(monkeypatch) as env:
        monkeypatch.setenv("COGNITO_TOKEN_URL", f"http://127.0.0.1:{stalled.port}/oauth2/token")
        app.reset()
        yield env


def test_a_stalled_cognito_gets_the_proxys_own_503_within_the_context_deadline(
    proxy: dict[str, str], stalled: StalledCognito
) -> None:
    # GIVEN an invocation with 8 s left (the function's timeout is 20 s; each attempt may wait
    # 3 s for an answer, and 3 attempts are allowed)
    context = LambdaContext(replace(TOKEN_PROXY_FUNCTION, timeout_seconds=CONTEXT_SECONDS))

    # WHEN a token request reaches a Cognito that hangs, or answers too late
    started = time.monotonic()
    result = app.lambda_handler(load_event("token_body_credentials.json"), context)
    elapsed = time.monotonic() - started

    # THEN the proxy answered before the context's deadline, less its margin (Lambda would
    # otherwise have ended it, and API Gateway answered its own 5xx)
    assert elapsed < CONTEXT_SECONDS - MARGIN_SECONDS + 0.5
    assert context.get_remaining_time_in_millis() > 0
    # AND with its own RFC 6749 answer: 503 temporarily_unavailable, with a Retry-After
    assert result["statusCode"] == 503
    assert json.loads(result["body"]) == {
        "error": "temporarily_unavailable",
        "error_description": "the token service is temporarily unavailable",
    }
    assert int(result["headers"]["Retry-After"]) >= 1
    # AND it tried Cognito as often as the deadline allowed: two whole attempts, then a third
    # cut to the time left
    assert stalled.requests == 3
    assert elapsed > 2 * ATTEMPT_TIMEOUT_SECONDS


def test_a_request_arriving_with_too_little_time_left_answers_at_once(
    proxy: dict[str, str], stalled: StalledCognito
) -> None:
    # GIVEN an invocation that has less time left than its margin
    context = LambdaContext(replace(TOKEN_PROXY_FUNCTION, timeout_seconds=0.8))

    # WHEN a token request arrives
    started = time.monotonic()
    result = app.lambda_handler(load_event("token_body_credentials.json"), context)

    # THEN it is answered 503 at once, without calling Cognito or waiting on anything
    assert time.monotonic() - started < 0.8
    assert result["statusCode"] == 503
    assert result["headers"]["Retry-After"] == "1"
    assert stalled.requests == 0
