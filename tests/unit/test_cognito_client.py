"""CognitoTokenClient over real HTTP on loopback: the request Cognito receives, the pool of
keep-alive connections, retries, backoff, the 403 origin refresh, the deadline, and the
transport's failures (a refused connection, an answer too late, a connection dropped with no
answer or halfway through one, a header that cannot be sent).

Cognito is :class:`~tests.fakes.http_endpoint.LoopbackEndpoint` answering a script of replies;
backoff sleeps are recorded, not slept.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import certifi
import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

import token_proxy.cognito_client as cognito_client_module
from function_setup.metrics import RecordingMetrics
from tests.fakes.clock import FakeClock
from tests.fakes.http_endpoint import DROP, LoopbackEndpoint, Received, Reply
from tests.fakes.origin_secret import ORIGIN_V1, ORIGIN_V2, FakeOriginSecret
from token_proxy.cognito_client import CognitoTokenClient
from token_proxy.deadline import Deadline
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
from token_proxy.upstream_trace import XRayAttempts

USER_AGENT = "cognito-token-proxy/test"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "s3cr3t=+%&value"
BASIC = "Basic Y2xpZW50LWFiYzpzM2NyM3Q9KyUmdmFsdWU="
TOKEN_BODY = b'{"access_token":"eyJ.tok.en","token_type":"Bearer","expires_in":3600}'
NOW_EPOCH = 1_700_000_000.0
RAND = 0.5  # every jittered backoff is half its ceiling
JSON = {"Content-Type": "application/json"}
TOKEN = Reply(200, TOKEN_BODY, JSON)
#: The headers the client sends, beside those urllib3 and http.client add.
SENT_HEADERS = {"content-type", "accept", "user-agent", "x-origin-verify"}
ADDED_HEADERS = {"host", "accept-encoding", "content-length"}


class Cognito:
    """The loopback endpoint answering a script: each request the next reply, the last one
    repeated."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [TOKEN]
        self.endpoint = LoopbackEndpoint(self._next)

    def answer(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def _next(self, request: Received) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    @property
    def url(self) -> str:
        return self.endpoint.url()

    @property
    def calls(self) -> list[Received]:
        return self.endpoint.calls


class RecordingPool(urllib3.PoolManager):
    """The client's own kind of pool, remembering the timeout of each request it sends."""

    def __init__(self) -> None:
        super().__init__(num_pools=1, retries=False)
        self.timeouts: list[Any] = []

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        self.timeouts.append(kw["timeout"])
        return super().urlopen(method, url, redirect=redirect, **kw)


@pytest.fixture
def cognito() -> Iterator[Cognito]:
    fake = Cognito()
    try:
        yield fake
    finally:
        fake.endpoint.close()


class Harness:
    def __init__(self, cognito: Cognito, **overrides: Any) -> None:
        self.sleeps: list[float] = []
        self.metrics = RecordingMetrics()
        self.origin: FakeOriginSecret = overrides.pop("origin", FakeOriginSecret())
        kwargs: dict[str, Any] = {
            "token_url": cognito.url,
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


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ the request Cognito receives


def test_body_credentials_request_reaches_cognito_exactly(cognito: Cognito) -> None:
    # GIVEN Cognito answers 200 and a client that sent its credentials in the body
    pool = RecordingPool()
    h = Harness(cognito, pool=pool)

    # WHEN the issuer fetches a token
    result = h.issuer.fetch(body_request())

    # THEN Cognito got one form POST with our headers, and no others than HTTP's own
    assert len(cognito.calls) == 1
    sent = cognito.calls[0]
    assert (sent.method, sent.path) == ("POST", "/oauth2/token")
    assert {name.lower() for name in sent.headers} == SENT_HEADERS | ADDED_HEADERS
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"] == USER_AGENT
    assert sent.headers["x-origin-verify"] == ORIGIN_V1
    assert sent.headers["Host"] == f"127.0.0.1:{cognito.endpoint.port}"
    assert sent.headers["Accept-Encoding"] == "identity"
    assert sent.headers["Content-Length"] == str(len(sent.body))
    # AND every field intact, in order, the reserved characters percent-encoded, never raw,
    # and spaces as "+" (as requests encoded a dict)
    assert sent.form == [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "api/read api/x=1+2%3&y"),
        ("aws_client_metadata", '{"k":"a=b&c+d%e"}'),
        ("resource", "https://api.example.test/p?a=b&c=d+e%2Ff"),
    ]
    assert sent.text.startswith(
        "grant_type=client_credentials&client_id=client-abc&client_secret=s3cr3t%3D%2B%25%26value"
        "&scope=api%2Fread+api%2Fx%3D1%2B2%253%26y&"
    )
    # AND the attempt's timeout is the configured connect and read timeout, with no deadline
    (timeout,) = pool.timeouts
    assert (timeout.connect_timeout, timeout.read_timeout, timeout.total) == (2.5, 2.5, None)
    # AND Cognito's answer comes back unchanged
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")


def test_basic_header_is_forwarded_unchanged_and_body_has_no_credentials(
    cognito: Cognito,
) -> None:
    # GIVEN a client that authenticated with HTTP Basic
    h = Harness(cognito)

    # WHEN the issuer fetches a token
    result = h.issuer.fetch(basic_request())

    # THEN the Authorization header is the client's own, and the body carries no credentials
    sent = cognito.calls[0]
    assert {name.lower() for name in sent.headers} == SENT_HEADERS | ADDED_HEADERS | {
        "authorization"
    }
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["x-origin-verify"] == ORIGIN_V1
    assert sent.form == [
        ("grant_type", "client_credentials"),
        ("scope", "api/read api/x=1+2%3&y"),
        ("aws_client_metadata", '{"k":"a=b&c+d%e"}'),
        ("resource", "https://api.example.test/p?a=b&c=d+e%2Ff"),
    ]
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")


def test_request_without_scope_or_extras_sends_only_grant_and_credentials(
    cognito: Cognito,
) -> None:
    # GIVEN a client asking for its default scopes
    h = Harness(cognito)

    # WHEN the issuer fetches a token
    h.issuer.fetch(body_request(scopes=(), extras=()))

    # THEN the form has no scope field at all
    assert cognito.calls[0].text == (
        "grant_type=client_credentials&client_id=client-abc&client_secret=s3cr3t%3D%2B%25%26value"
    )


# ------------------------------------------------------------------ the pool


def test_one_pool_and_one_keep_alive_connection_serve_every_fetch(cognito: Cognito) -> None:
    # GIVEN an issuer built with its default pool
    h = Harness(cognito)
    pool = h.issuer.pool

    # WHEN it fetches twice
    first = h.issuer.fetch(body_request())
    second = h.issuer.fetch(body_request())

    # THEN both answers are the token, sent over the same TCP connection of the same pool
    assert first == second == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert len(cognito.calls) == 2
    assert cognito.calls[0].client_port == cognito.calls[1].client_port
    assert h.issuer.pool is pool
    assert len(pool.pools) == 1
    host_pool = pool.connection_from_url(cognito.url)  # the one already there
    assert len(pool.pools) == 1
    assert host_pool.num_connections == 1
    assert host_pool.pool is not None
    assert host_pool.pool.qsize() == cognito_client_module.POOL_MAXSIZE
    # AND the pool is small, never waits for a connection, retries and redirects nothing, and
    # verifies certificates against certifi's bundle
    settings = dict(pool.connection_pool_kw)
    retries = settings.pop("retries")
    assert (retries.total, retries.redirect, retries.raise_on_redirect) == (False, 0, False)
    assert settings == {
        "maxsize": cognito_client_module.POOL_MAXSIZE,
        "block": False,
        "cert_reqs": "CERT_REQUIRED",
        "ca_certs": certifi.where(),
    }
    assert h.sleeps == []


def test_an_injected_pool_is_used(cognito: Cognito) -> None:
    # GIVEN an issuer given its pool
    pool = urllib3.PoolManager(num_pools=1, retries=False)
    h = Harness(cognito, pool=pool)

    # WHEN it fetches
    result = h.issuer.fetch(body_request())

    # THEN that pool is the one it holds, and the request went through it
    assert result.status == 200
    assert h.issuer.pool is pool
    assert len(pool.pools) == 1
    assert len(cognito.calls) == 1


def test_close_closes_the_pools_connections(cognito: Cognito) -> None:
    # GIVEN an issuer that has fetched once
    h = Harness(cognito)
    h.issuer.fetch(body_request())

    # WHEN it is closed
    h.issuer.close()

    # THEN its pool holds no host pool (their connections closed), and a next fetch connects anew
    assert len(h.issuer.pool.pools) == 0
    assert h.issuer.fetch(body_request()).status == 200
    assert cognito.calls[0].client_port != cognito.calls[1].client_port


# ------------------------------------------------------------------ retries and backoff


@pytest.mark.parametrize(
    "failure",
    [
        Reply(429, b'{"error":"too_many_requests"}', JSON),
        DROP,
        Reply(200, TOKEN_BODY, JSON, cut=True),
    ],
    ids=["throttled", "closed-without-an-answer", "closed-halfway-through-the-body"],
)
def test_one_failure_then_the_token_retries_once_after_a_jittered_sleep(
    cognito: Cognito, failure: Reply
) -> None:
    # GIVEN Cognito throttles once, or the connection is closed before a whole answer came,
    # then Cognito answers
    cognito.answer(failure, TOKEN)
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN two calls, one sleep of rand * base, and the whole token
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert len(cognito.calls) == 2
    assert h.sleeps == [RAND * 0.1]
    assert h.metrics.counts == {UPSTREAM_CALL: 2, UPSTREAM_ERROR: 1, UPSTREAM_RETRY: 1}
    assert len(h.metrics.values[UPSTREAM_LATENCY]) == 2


def test_retry_after_seconds_is_honoured(cognito: Cognito) -> None:
    # GIVEN Cognito throttles with Retry-After: 3
    cognito.answer(Reply(429, headers={"Retry-After": "3"}), TOKEN)
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it waited what Cognito asked (more than its own backoff)
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert h.sleeps == [3.0]


def test_retry_after_shorter_than_backoff_keeps_the_backoff(cognito: Cognito) -> None:
    # GIVEN Cognito answers 503 with Retry-After: 0, and a backoff ceiling of 1 s
    cognito.answer(Reply(503, headers={"Retry-After": "0"}), TOKEN)
    h = Harness(cognito, backoff_base=1.0)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it waited the jittered backoff
    assert result.status == 200
    assert h.sleeps == [RAND * 1.0]


def test_retry_after_http_date_is_honoured(cognito: Cognito) -> None:
    # GIVEN Cognito throttles with Retry-After as an HTTP date 4 s from now
    retry_at = formatdate(NOW_EPOCH + 4, usegmt=True)
    cognito.answer(Reply(429, headers={"Retry-After": retry_at}), TOKEN)
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it waited until that date
    assert result.status == 200
    assert h.sleeps == [4.0]


def test_retry_after_beyond_the_limit_gives_up_at_once(cognito: Cognito) -> None:
    # GIVEN Cognito asks to come back in 30 s, more than the 5 s the issuer may wait
    cognito.answer(Reply(429, headers={"Retry-After": "30"}))
    h = Harness(cognito, max_attempts=5)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN one call, no sleep, and an error naming the status and carrying the wait
    assert len(cognito.calls) == 1
    assert h.sleeps == []
    assert str(caught.value) == (
        "Cognito asked to retry after 30 s, more than the 5 s allowed (last: HTTP 429)"
    )
    assert caught.value.retry_after == 30.0
    assert h.metrics.counts == {UPSTREAM_CALL: 1, UPSTREAM_ERROR: 1}


def test_5xx_storm_makes_exactly_max_attempts_calls(cognito: Cognito) -> None:
    # GIVEN Cognito answers 503 to everything
    cognito.answer(Reply(503, b"Service Unavailable"))
    h = Harness(cognito, max_attempts=4, backoff_base=1.0, backoff_cap=2.0, rand=lambda: 1.0)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN exactly max_attempts calls, with capped exponential waits between them
    assert len(cognito.calls) == 4
    assert h.sleeps == [1.0, 2.0, 2.0]
    assert str(caught.value) == "Cognito gave no usable answer after 4 attempts (last: HTTP 503)"
    assert caught.value.__cause__ is None
    assert h.metrics.counts == {UPSTREAM_CALL: 4, UPSTREAM_ERROR: 4, UPSTREAM_RETRY: 3}


def test_single_attempt_bound_never_retries(cognito: Cognito) -> None:
    # GIVEN max_attempts is 1 and Cognito answers 500
    cognito.answer(Reply(500))
    h = Harness(cognito, max_attempts=1)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN one call and no sleep
    assert str(caught.value) == "Cognito gave no usable answer after 1 attempts (last: HTTP 500)"
    assert len(cognito.calls) == 1
    assert h.sleeps == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"error":"invalid_scope"}'),
        (401, b'{"error":"invalid_client"}'),
        (302, b""),  # a redirect is relayed, never followed
    ],
)
def test_client_errors_are_relayed_without_retry(
    cognito: Cognito, status: int, body: bytes
) -> None:
    # GIVEN Cognito rejects the request
    headers = {"Content-Type": "application/json;charset=UTF-8", "Location": "/elsewhere"}
    cognito.answer(Reply(status, body, headers))
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN Cognito's answer comes back as sent, after one call and no sleep
    assert result == UpstreamResponse(status, body, "application/json;charset=UTF-8")
    assert len(cognito.calls) == 1
    assert h.sleeps == []
    assert h.metrics.counts == {UPSTREAM_CALL: 1}


def test_missing_content_type_defaults_to_json(cognito: Cognito) -> None:
    # GIVEN Cognito answers without a Content-Type
    cognito.answer(Reply(200, TOKEN_BODY))
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the response is typed as JSON
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")


# ------------------------------------------------------------------ the transport failing


def test_a_refused_connection_is_retried_then_reported() -> None:
    # GIVEN a loopback port nobody listens on
    sleeps: list[float] = []
    issuer = CognitoTokenClient(
        token_url=f"http://127.0.0.1:{unused_port()}/oauth2/token",
        origin=FakeOriginSecret(),
        timeout_seconds=2.5,
        max_attempts=2,
        user_agent=USER_AGENT,
        sleep=sleeps.append,
        rand=lambda: RAND,
    )

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        issuer.fetch(body_request())

    # THEN it tried twice, slept once, and names the exception class, chained
    assert str(caught.value) == (
        "Cognito gave no usable answer after 2 attempts (last: NewConnectionError)"
    )
    assert isinstance(caught.value.__cause__, urllib3.exceptions.NewConnectionError)
    assert sleeps == [RAND * 0.1]


def test_connections_dropped_mid_response_exhaust_the_bound(cognito: Cognito) -> None:
    # GIVEN every answer stops halfway through its body
    cognito.answer(Reply(200, TOKEN_BODY, JSON, cut=True))
    h = Harness(cognito, max_attempts=2)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN two attempts, and the error names urllib3's ProtocolError (never a half token)
    assert (
        str(caught.value) == "Cognito gave no usable answer after 2 attempts (last: ProtocolError)"
    )
    assert isinstance(caught.value.__cause__, ProtocolError)
    assert len(cognito.calls) == 2


def test_read_timeouts_exhaust_the_bound_and_name_the_exception(cognito: Cognito) -> None:
    # GIVEN every answer comes later than the read timeout
    cognito.answer(Reply(200, TOKEN_BODY, JSON, delay=0.6))
    h = Harness(cognito, timeout_seconds=0.15, max_attempts=3)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request())

    # THEN three attempts, two sleeps, and the error names the exception class
    assert len(cognito.calls) == 3
    assert h.sleeps == [RAND * 0.1, RAND * 0.2]
    assert str(caught.value) == (
        "Cognito gave no usable answer after 3 attempts (last: ReadTimeoutError)"
    )
    assert isinstance(caught.value.__cause__, ReadTimeoutError)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("Basic abc\r\nX-Injected: 1", "ValueError"),  # a line break: header injection
        ("Basic abc\u20ac", "UnicodeEncodeError"),  # not Latin-1
    ],
)
def test_request_that_cannot_be_sent_is_not_retried_and_not_echoed(
    cognito: Cognito, value: str, error: str
) -> None:
    # GIVEN a Basic value HTTP cannot carry
    h = Harness(cognito)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request(auth_method="basic", basic_authorization=value))

    # THEN nothing was sent, nothing retried, and the header value is nowhere in the error
    assert cognito.calls == []
    assert h.sleeps == []
    assert str(caught.value) == f"the request to Cognito could not be sent ({error})"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True
    assert h.metrics.counts == {UPSTREAM_CALL: 1, UPSTREAM_ERROR: 1}
    # AND the pool still serves the next request
    assert h.issuer.fetch(basic_request()).status == 200


# ------------------------------------------------------------------ the deadline


def test_each_attempt_is_cut_to_the_time_the_deadline_leaves(cognito: Cognito) -> None:
    # GIVEN a deadline 1.5 s away on a clock that moves only with the backoff, and a 503 first
    clock = FakeClock()
    pool = RecordingPool()
    cognito.answer(Reply(503), TOKEN)
    h = Harness(cognito, pool=pool, clock=clock, sleep=clock.sleep)

    # WHEN the issuer fetches within it
    result = h.issuer.fetch(body_request(), Deadline.within(1.5, clock))

    # THEN each attempt's connect and read timeouts and its total are the time left
    assert result.status == 200
    assert clock.sleeps == [RAND * 0.1]
    cuts = [(t.connect_timeout, t.read_timeout, t.total) for t in pool.timeouts]
    assert cuts == [(1.5, 1.5, 1.5), pytest.approx((1.45, 1.45, 1.45))]


def test_a_late_answer_ends_the_attempt_at_the_deadline(cognito: Cognito) -> None:
    # GIVEN Cognito answers after 1.5 s, and a request with 0.5 s left (timeouts of 2.5 s)
    cognito.answer(Reply(200, TOKEN_BODY, JSON, delay=1.5))
    h = Harness(cognito, clock=time.monotonic)
    started = time.monotonic()

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request(), Deadline.within(0.5, time.monotonic))

    # THEN the one attempt ended at the deadline, and no other was made
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.2
    assert len(cognito.calls) == 1
    assert str(caught.value).endswith("(last: ReadTimeoutError)")
    assert h.sleeps == []


def test_no_attempt_is_made_when_the_deadline_leaves_too_little_time(cognito: Cognito) -> None:
    # GIVEN a request with 0.1 s left
    clock = FakeClock()
    h = Harness(cognito, clock=clock)

    # WHEN the issuer fetches
    with pytest.raises(UpstreamUnavailable) as caught:
        h.issuer.fetch(body_request(), Deadline.within(0.1, clock))

    # THEN Cognito was not called
    assert str(caught.value) == "no time left for a Cognito attempt after 0 (last: no attempt)"
    assert cognito.calls == []
    assert h.metrics.counts == {}


# ------------------------------------------------------------------ 403 and the origin secret


def test_403_refreshes_the_origin_secret_once_and_retries(cognito: Cognito) -> None:
    # GIVEN WAF blocks the stale origin value, then accepts the fresh one
    cognito.answer(Reply(403, b'{"error":"origin_verify_required"}'), TOKEN)
    h = Harness(cognito)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the secret was refreshed once, the retry carried the new value, and no sleep
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert h.origin.refreshes == 1
    assert [c.headers["x-origin-verify"] for c in cognito.calls] == [ORIGIN_V1, ORIGIN_V2]
    assert h.sleeps == []
    assert h.metrics.counts == {UPSTREAM_CALL: 2, ORIGIN_REFRESH: 1}


def test_second_403_is_returned_and_refresh_happens_once(cognito: Cognito) -> None:
    # GIVEN WAF keeps blocking
    blocked = b'{"error":"origin_verify_required"}'
    cognito.answer(Reply(403, blocked, JSON))
    h = Harness(cognito, max_attempts=5)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN the second 403 is relayed, after exactly two calls and one refresh
    assert result == UpstreamResponse(403, blocked, "application/json")
    assert len(cognito.calls) == 2
    assert h.origin.refreshes == 1
    assert h.sleeps == []


def test_403_retry_is_outside_the_retry_bound(cognito: Cognito) -> None:
    # GIVEN max_attempts 2, and WAF blocks once, then Cognito fails once, then answers
    cognito.answer(Reply(403), Reply(503), TOKEN)
    h = Harness(cognito, max_attempts=2)

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN three calls in all: the 403 retry did not use up the bound
    assert result.status == 200
    assert len(cognito.calls) == 3
    assert h.origin.refreshes == 1
    assert h.sleeps == [RAND * 0.1]


def test_origin_secret_unavailable_propagates_before_any_call(cognito: Cognito) -> None:
    # GIVEN the origin secret cannot be read and none is known
    h = Harness(cognito, origin=FakeOriginSecret(fail=True))

    # WHEN the issuer fetches
    # THEN the domain error propagates and Cognito is not called
    with pytest.raises(OriginSecretUnavailable):
        h.issuer.fetch(body_request())
    assert cognito.calls == []
    assert h.metrics.counts == {}


# ------------------------------------------------------------------ logs


def test_logs_carry_no_credential_secret_or_token(
    cognito: Cognito, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a 429, a 403 and a success, with every log level captured
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    cognito.answer(Reply(429), Reply(403), TOKEN)
    h = Harness(cognito)

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


def test_constructor_rejects_unusable_settings(cognito: Cognito) -> None:
    # GIVEN settings that would make the issuer useless WHEN building it THEN it refuses
    for bad in ({"max_attempts": 0}, {"timeout_seconds": 0}, {"user_agent": ""}):
        with pytest.raises(ValueError):
            Harness(cognito, **bad)


# ------------------------------------------------------------------ X-Ray (SDK tracing on)


class KeptSegments:
    """An X-Ray emitter that keeps the segments it is given instead of sending them."""

    def __init__(self) -> None:
        self.segments: list[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.segments.append(entity)

    def set_daemon_address(self, address: str) -> None:
        return None


@pytest.fixture
def xray(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, KeptSegments]]:
    """An X-Ray recorder of its own (not the SDK's global one) that keeps what it would send,
    with the SDK enabled while inside (Powertools turns it off process-wide when tracing is
    disabled, as the handler tests' environment has it)."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    monkeypatch.delenv("AWS_XRAY_SDK_ENABLED", raising=False)
    was = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    emitter = KeptSegments()
    recorder = AWSXRayRecorder()
    recorder.configure(sampling=False, emitter=emitter, context_missing="IGNORE_ERROR")
    try:
        yield recorder, emitter
    finally:
        global_sdk_config.set_sdk_enabled(was)


def test_with_a_tracer_each_attempt_is_a_remote_subsegment_without_secrets(
    cognito: Cognito, xray: tuple[Any, KeptSegments]
) -> None:
    # GIVEN a recorder inside a segment, and Cognito answering 503, then dropping the
    # connection, then the token
    recorder, emitter = xray
    cognito.answer(Reply(503), DROP, TOKEN)
    h = Harness(cognito, trace=XRayAttempts(recorder))

    # WHEN the issuer fetches with Basic credentials within the segment
    recorder.begin_segment("token-proxy-test")
    result = h.issuer.fetch(basic_request())
    recorder.end_segment()

    # THEN the token, and one remote subsegment per attempt, named after the host, with the
    # method, URL and status (a fault for the 503 and for the dropped connection)
    assert result.status == 200
    (segment,) = emitter.segments
    recorded = [
        (s.name, s.namespace, s.http, getattr(s, "fault", False), s.annotations)
        for s in segment.subsegments
    ]
    request = {"method": "POST", "url": cognito.url}
    assert recorded == [
        ("127.0.0.1", "remote", {"request": request, "response": {"status": 503}}, True, {}),
        ("127.0.0.1", "remote", {"request": request}, True, {"error_type": "ProtocolError"}),
        ("127.0.0.1", "remote", {"request": request, "response": {"status": 200}}, False, {}),
    ]
    # AND nothing the client sent, nor the token, is in the segment
    document = segment.serialize()
    for value in (BASIC, ORIGIN_V1, CLIENT_SECRET, "eyJ.tok.en"):
        assert value not in document


def test_a_tracer_outside_any_segment_records_nothing_and_the_fetch_goes_on(
    cognito: Cognito, xray: tuple[Any, KeptSegments]
) -> None:
    # GIVEN a recorder with no segment open
    recorder, emitter = xray
    h = Harness(cognito, trace=XRayAttempts(recorder))

    # WHEN the issuer fetches
    result = h.issuer.fetch(body_request())

    # THEN it gets the token, and nothing was recorded
    assert result == UpstreamResponse(200, TOKEN_BODY, "application/json")
    assert emitter.segments == []
