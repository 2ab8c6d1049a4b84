"""CognitoTokenClient: the request Cognito receives, retries, backoff, and the 403 origin refresh.

HTTP is stubbed with `responses` (no socket is opened); sleeps are recorded, not slept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

import token_proxy.cognito_client as cognito_client_module
from function_setup.metrics import RecordingMetrics
from tests.fakes.origin_secret import ORIGIN_V1, ORIGIN_V2, FakeOriginSecret
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.errors import OriginSecretUnavailable, UpstreamUnavailable
from token_proxy.model import TokenRequest, UpstreamResponse
from token_proxy.telemetry import (
    ORIGIN_REFRESH,
    UPSTREAM_CALL,
    UPSTREAM_ERROR,
    UPSTREAM_LATENCY,
    UPSTREAM_RETRY,
)
from token_proxy.upstream_retries import parse_retry_after

TOKEN_URL = "https://auth.example.test/oauth2/token"
USER_AGENT = "cognito-token-proxy/test"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "s3cr3t=+%&value"
BASIC = "Basic Y2xpZW50LWFiYzpzM2NyM3Q9KyUmdmFsdWU="
TOKEN_BODY = b'{"access_token":"eyJ.tok.en","token_type":"Bearer","expires_in":3600}'
NOW_EPOCH = 1_700_000_000.0
RAND = 0.5  # every jittered backoff is half its ceiling


class Harness:
    def __init__(self, **overrides: Any) -> None:
        self.sleeps: list[float] = []
        self.metrics = RecordingMetrics()
        self.origin: FakeOriginSecret = overrides.pop("origin", FakeOriginSecret())
        kwargs: dict[str, Any] = {
            "token_url": TOKEN_URL,
            "origin": self.origin,
            "timeout_seconds": 2.5,
            "max_attempts": 3,
            "user_agent": USER_AGENT,
            "sleep": self.sleeps.append,
            "rand": lambda: RAND,
            "wall_clock": lambda: NOW_EPOCH,
            "metrics": self.metrics,
        }
        kwargs.update(overrides)
        self.issuer = CognitoTokenClient(**kwargs)


def body_request(**overrides: Any) -> TokenRequest:
    fields: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ("api/read", "api/x=1+2%3&y"),
        "extras": (
            ("aws_client_metadata", '{"k":"a=b&c+d%e"}'),
            ("resource", "https://api.example.test/p?a=b&c=d+e%2Ff"),
        ),
        "auth_method": "body",
    }
    fields.update(overrides)
    return TokenRequest(**fields)


def basic_request() -> TokenRequest:
    return body_request(auth_method="basic", basic_authorization=BASIC)


def form_of(call: Any) -> list[tuple[str, str]]:
    body = call.request.body
    text = body.decode("ascii") if isinstance(body, bytes) else body
    return parse_qsl(text, keep_blank_values=True, strict_parsing=True)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


# ------------------------------------------------------------------ the request Cognito receives


def test_body_credentials_request_reaches_cognito_exactly(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito answers 200 and a client that sent its credentials in the body
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches a token
    result = h.issuer.fetch(body_request())

    # THEN Cognito got one form POST with our headers and every field intact
    assert len(rsps.calls) == 1
    sent = rsps.calls[0].request
    assert sent.method == "POST"
    assert sent.url == TOKEN_URL
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert sent.headers["x-origin-verify"] == ORIGIN_V1
    assert "Authorization" not in sent.headers
    assert form_of(rsps.calls[0]) == [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "api/read api/x=1+2%3&y"),
        ("aws_client_metadata", '{"k":"a=b&c+d%e"}'),
        ("resource", "https://api.example.test/p?a=b&c=d+e%2Ff"),
    ]
    # the reserved characters travel percent-encoded, never raw
    assert "%2B" in sent.body and "%26" in sent.body and "%3D" in sent.body
    timeout = sent.req_kwargs["timeout"]  # a urllib3 Timeout: connect and read, no deadline
    assert (timeout.connect_timeout, timeout.read_timeout, timeout.total) == (2.5, 2.5, None)
    # AND Cognito's answer comes back unchanged
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")


def test_basic_header_is_forwarded_unchanged_and_body_has_no_credentials(
    rsps: responses.RequestsMock,
) -> None:
    # GIVEN a client that authenticated with HTTP Basic
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches a token
    h.issuer.fetch(basic_request())

    # THEN the Authorization header is the client's own, and the body carries no credentials
    sent = rsps.calls[0].request
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["x-origin-verify"] == ORIGIN_V1
    assert form_of(rsps.calls[0]) == [
        ("grant_type", "client_credentials"),
        ("scope", "api/read api/x=1+2%3&y"),
        ("aws_client_metadata", '{"k":"a=b&c+d%e"}'),
        ("resource", "https://api.example.test/p?a=b&c=d+e%2Ff"),
    ]


def test_request_without_scope_or_extras_sends_only_grant_and_credentials(
    rsps: responses.RequestsMock,
) -> None:
    # GIVEN a client asking for its default scopes
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches a token
    h.issuer.fetch(body_request(scopes=(), extras=()))

    # THEN the form has no scope field at all
    assert form_of(rsps.calls[0]) == [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]


# ------------------------------------------------------------------ the pooled session


def test_one_pooled_session_is_reused_across_fetches(
    rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an issuer built with its default session, after which no new session may be made
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()
    session = h.issuer.session

    def no_new_session() -> None:
        raise AssertionError("a new requests.Session was created per call")

    monkeypatch.setattr(cognito_client_module.requests, "Session", no_new_session)

    # WHEN it fetches twice
    h.issuer.fetch(body_request())
    h.issuer.fetch(body_request())

    # THEN both calls went through the same session, whose adapter has a small pool and
    # no transport-level retries (the issuer owns retries)
    assert len(rsps.calls) == 2
    assert h.issuer.session is session
    for scheme in ("https://", "http://"):
        adapter = session.get_adapter(scheme + "auth.example.test/")
        assert isinstance(adapter, HTTPAdapter)
        assert adapter.max_retries.total == 0
        assert (
            adapter.poolmanager.connection_pool_kw["maxsize"] == cognito_client_module.POOL_MAXSIZE
        )


def test_an_injected_session_is_used(rsps: responses.RequestsMock) -> None:
    # GIVEN an issuer given its session
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    session = requests.Session()
    h = Harness(session=session)

    # WHEN it fetches
    h.issuer.fetch(body_request())

    # THEN that session is the one it holds
    assert h.issuer.session is session
    assert len(rsps.calls) == 1


# ------------------------------------------------------------------ retries and backoff


def test_429_then_200_retries_once_after_a_jittered_sleep(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito throttles once, then answers
    rsps.post(TOKEN_URL, status=429, json={"error": "too_many_requests"})
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN two calls, one sleep of rand * base, and the token
    assert result.status == 200
    assert result.body == TOKEN_BODY
    assert len(rsps.calls) == 2
    assert h.sleeps == [RAND * 0.1]
    assert h.metrics.counts == {UPSTREAM_CALL: 2, UPSTREAM_ERROR: 1, UPSTREAM_RETRY: 1}
    assert len(h.metrics.values[UPSTREAM_LATENCY]) == 2


def test_retry_after_seconds_is_honoured(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito throttles with Retry-After: 3
    rsps.post(TOKEN_URL, status=429, headers={"Retry-After": "3"})
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it waited what Cognito asked (more than its own backoff)
    assert result.status == 200
    assert h.sleeps == [3.0]


def test_retry_after_shorter_than_backoff_keeps_the_backoff(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito answers 503 with Retry-After: 0, and a backoff ceiling of 1 s
    rsps.post(TOKEN_URL, status=503, headers={"Retry-After": "0"})
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness(backoff_base=1.0)

    # WHEN the issuer fetches
    h.issuer.fetch(body_request())

    # THEN it waited the jittered backoff
    assert h.sleeps == [RAND * 1.0]


def test_retry_after_http_date_is_honoured(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito throttles with Retry-After as an HTTP date 4 s from now
    retry_at = formatdate(NOW_EPOCH + 4, usegmt=True)
    rsps.post(TOKEN_URL, status=429, headers={"Retry-After": retry_at})
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it waited until that date
    assert result.status == 200
    assert h.sleeps == [4.0]


def test_retry_after_beyond_the_limit_gives_up_at_once(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito asks to come back in 30 s, more than the 5 s the issuer may wait
    rsps.post(TOKEN_URL, status=429, headers={"Retry-After": "30"})
    h = Harness(max_attempts=5)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN one call, no sleep, and an error naming the status
    assert len(rsps.calls) == 1
    assert h.sleeps == []
    assert str(caught.value) == (
        "Cognito asked to retry after 30 s, more than the 5 s allowed (last: HTTP 429)"
    )
    assert h.metrics.counts == {UPSTREAM_CALL: 1, UPSTREAM_ERROR: 1}


def test_5xx_storm_makes_exactly_max_attempts_calls(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito answers 503 to everything
    rsps.post(TOKEN_URL, status=503, body=b"Service Unavailable")
    h = Harness(max_attempts=4, backoff_base=1.0, backoff_cap=2.0, rand=lambda: 1.0)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN exactly max_attempts calls, with capped exponential waits between them
    assert len(rsps.calls) == 4
    assert h.sleeps == [1.0, 2.0, 2.0]
    assert str(caught.value) == "Cognito gave no usable answer after 4 attempts (last: HTTP 503)"
    assert h.metrics.counts == {UPSTREAM_CALL: 4, UPSTREAM_ERROR: 4, UPSTREAM_RETRY: 3}


def test_single_attempt_bound_never_retries(rsps: responses.RequestsMock) -> None:
    # GIVEN max_attempts is 1 and Cognito answers 500
    rsps.post(TOKEN_URL, status=500)
    h = Harness(max_attempts=1)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable, match=r"after 1 attempts \(last: HTTP 500\)"):
        h.issuer.fetch(body_request())

    # THEN one call and no sleep
    assert len(rsps.calls) == 1
    assert h.sleeps == []


def test_connection_error_is_retried(rsps: responses.RequestsMock) -> None:
    # GIVEN the first connection fails, then Cognito answers
    rsps.post(TOKEN_URL, body=requests.ConnectionError("connection refused"))
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it retried after one sleep and returned the token
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert len(rsps.calls) == 2
    assert h.sleeps == [RAND * 0.1]
    assert h.metrics.counts == {UPSTREAM_CALL: 2, UPSTREAM_ERROR: 1, UPSTREAM_RETRY: 1}


def test_read_timeouts_exhaust_the_bound_and_name_the_exception(
    rsps: responses.RequestsMock,
) -> None:
    # GIVEN every attempt times out
    rsps.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    h = Harness(max_attempts=3)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN three attempts, two sleeps, and the error names the exception class
    assert len(rsps.calls) == 3
    assert h.sleeps == [RAND * 0.1, RAND * 0.2]
    assert str(caught.value) == "Cognito gave no usable answer after 3 attempts (last: ReadTimeout)"
    assert isinstance(caught.value.__cause__, requests.exceptions.ReadTimeout)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"error":"invalid_scope"}'),
        (401, b'{"error":"invalid_client"}'),
    ],
)
def test_client_errors_are_relayed_without_retry(
    rsps: responses.RequestsMock, status: int, body: bytes
) -> None:
    # GIVEN Cognito rejects the request
    rsps.post(TOKEN_URL, body=body, status=status, content_type="application/json;charset=UTF-8")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN Cognito's answer comes back as sent, after one call and no sleep
    assert result == UpstreamResponse(status, body, "application/json;charset=UTF-8")
    assert len(rsps.calls) == 1
    assert h.sleeps == []
    assert h.metrics.counts == {UPSTREAM_CALL: 1}


def test_missing_content_type_defaults_to_json(rsps: responses.RequestsMock) -> None:
    # GIVEN Cognito answers without a Content-Type
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type=None)
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the response is typed as JSON
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")


def test_request_that_cannot_be_sent_is_not_retried_and_not_echoed(
    rsps: responses.RequestsMock,
) -> None:
    # GIVEN a Basic value requests refuses to send (a header with a line break)
    bad = "Basic abc\r\nX-Injected: 1"
    h = Harness()

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request(auth_method="basic", basic_authorization=bad))

    # THEN nothing was sent, nothing retried, and the header value is nowhere in the error
    assert len(rsps.calls) == 0
    assert h.sleeps == []
    assert str(caught.value) == "the request to Cognito could not be sent (InvalidHeader)"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


# ------------------------------------------------------------------ 403 and the origin secret


def test_403_refreshes_the_origin_secret_once_and_retries(rsps: responses.RequestsMock) -> None:
    # GIVEN WAF blocks the stale origin value, then accepts the fresh one
    rsps.post(TOKEN_URL, status=403, body=b'{"error":"origin_verify_required"}')
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the secret was refreshed once, the retry carried the new value, and no sleep
    assert result.status == 200
    assert h.origin.refreshes == 1
    assert [c.request.headers["x-origin-verify"] for c in rsps.calls] == [ORIGIN_V1, ORIGIN_V2]
    assert h.sleeps == []
    assert h.metrics.counts == {UPSTREAM_CALL: 2, ORIGIN_REFRESH: 1}


def test_second_403_is_returned_and_refresh_happens_once(rsps: responses.RequestsMock) -> None:
    # GIVEN WAF keeps blocking
    blocked = b'{"error":"origin_verify_required"}'
    rsps.post(TOKEN_URL, status=403, body=blocked, content_type="application/json")
    h = Harness(max_attempts=5)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the second 403 is relayed, after exactly two calls and one refresh
    assert result == UpstreamResponse(403, blocked, "application/json")
    assert len(rsps.calls) == 2
    assert h.origin.refreshes == 1
    assert h.sleeps == []


def test_403_retry_is_outside_the_retry_bound(rsps: responses.RequestsMock) -> None:
    # GIVEN max_attempts 2, and WAF blocks once, then Cognito fails once, then answers
    rsps.post(TOKEN_URL, status=403)
    rsps.post(TOKEN_URL, status=503)
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness(max_attempts=2)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN three calls in all: the 403 retry did not use up the bound
    assert result.status == 200
    assert len(rsps.calls) == 3
    assert h.origin.refreshes == 1
    assert h.sleeps == [RAND * 0.1]


def test_origin_secret_unavailable_propagates_before_any_call(
    rsps: responses.RequestsMock,
) -> None:
    # GIVEN the origin secret cannot be read and none is known
    h = Harness(origin=FakeOriginSecret(fail=True))

    # WHEN the issuer fetches
    # THEN the domain error propagates and Cognito is not called
    with pytest.raises(OriginSecretUnavailable):
        h.issuer.fetch(body_request())
    assert len(rsps.calls) == 0
    assert h.metrics.counts == {}


# ------------------------------------------------------------------ logs


def test_logs_carry_no_credential_secret_or_token(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a 429, a 403 and a success, with every log level captured
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    rsps.post(TOKEN_URL, status=429)
    rsps.post(TOKEN_URL, status=403)
    rsps.post(TOKEN_URL, body=TOKEN_BODY, status=200, content_type="application/json")
    h = Harness()

    # WHEN the issuer fetches with Basic credentials
    h.issuer.fetch(basic_request())

    # THEN there were log records, and none of them holds a secret in message or fields
    records = [r for r in caplog.records if r.name.startswith("token_proxy")]
    assert len(records) >= 3
    forbidden = [CLIENT_SECRET, BASIC, ORIGIN_V1, ORIGIN_V2, "eyJ.tok.en", "client_secret"]
    for record in records:
        text = record.getMessage() + repr(sorted(vars(record).items(), key=lambda kv: kv[0]))
        for value in forbidden:
            assert value not in text


# ------------------------------------------------------------------ Retry-After parsing


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  7 ", 7.0),
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        (formatdate(NOW_EPOCH - 60, usegmt=True), 0.0),
        (formatdate(NOW_EPOCH + 90, usegmt=True), 90.0),
        ("Tue, 14 Nov 2023 22:14:20 -0000", 1_700_000_060.0 - NOW_EPOCH),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    # GIVEN a Retry-After value WHEN parsed THEN seconds to wait (None when unusable)
    assert parse_retry_after(header, NOW_EPOCH) == expected


def test_constructor_rejects_unusable_settings() -> None:
    # GIVEN settings that would make the issuer useless WHEN building it THEN it refuses
    for bad in ({"max_attempts": 0}, {"timeout_seconds": 0}, {"user_agent": ""}):
        with pytest.raises(ValueError):
            Harness(**bad)
