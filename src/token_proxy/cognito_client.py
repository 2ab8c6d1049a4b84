"""The Cognito token endpoint client: one pool of keep-alive connections, bounded retries.

This is the only module of the proxy that sends HTTP itself, with ``urllib3`` (shipped in the
artifact; botocore uses it too). ``requests`` is not used: it would add its own imports and
``charset_normalizer`` to every cold start for a single form POST. It sends the client's
client_credentials request to Cognito with the ``x-origin-verify`` header the web ACL expects,
retries what is worth retrying (429, 5xx, connection errors, timeouts) after the pauses of
:mod:`token_proxy.upstream_retries`, re-reads the origin secret once when WAF answers 403, and
hands back any other answer as Cognito sent it. It raises :class:`UpstreamUnavailable` when the
retry bound is reached, carrying Cognito's last ``Retry-After``;
:class:`OriginSecretUnavailable` from the secret source propagates.

Everything spends the request's deadline (:mod:`token_proxy.deadline`) and nothing more: each
attempt's connect and read timeouts are cut to the time left (a urllib3 ``Timeout`` with a
``total``), a retry whose backoff or ``Retry-After`` would end too late is not made, and the
origin secret is re-read after a 403 only while a Secrets Manager call still fits.

Logs carry status codes, attempt numbers and timings only: never the form body, a header, a
credential, a token or the origin secret. With SDK tracing on, each attempt is an X-Ray
subsegment (``trace``: :mod:`token_proxy.upstream_trace`) with the method, URL and status.

TLS: certificates are verified (``CERT_REQUIRED``, host names checked) against certifi's CA
bundle, the trust store ``requests`` used here before, and shipped in the artifact with a pin
of its own (src/token_proxy/requirements.txt). Without a CA file urllib3 would load OpenSSL's
default paths, and which bundle the python3.12 runtime's own OpenSSL finds there is not
documented by AWS (its runtime images are Amazon Linux 2023 with the runtime's Python and
OpenSSL under /var/lang; aws/aws-lambda-base-images issue 154 measures loading them), so the
client does not rely on it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import certifi
import urllib3
from aws_lambda_powertools.metrics import MetricUnit
from urllib3.exceptions import HTTPError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as TransportTimeout
from urllib3.util import Timeout

from function_setup.metrics import NullMetrics
from token_proxy.deadline import Deadline
from token_proxy.errors import UpstreamUnavailable
from token_proxy.model import TokenRequest, UpstreamResponse
from token_proxy.telemetry import ORIGIN_REFRESH, UPSTREAM_CALL, UPSTREAM_ERROR, UPSTREAM_LATENCY
from token_proxy.upstream_retries import (
    MIN_ATTEMPT_SECONDS,
    NO_ATTEMPT,
    Failure,
    RetryPauses,
    out_of_time,
    parse_retry_after,
)

if TYPE_CHECKING:
    from token_proxy.ports import MetricsSink, OriginSecretSource, UpstreamTrace


logger = logging.getLogger(__name__)

ORIGIN_VERIFY_HEADER = "x-origin-verify"

#: Connections kept per host: a Lambda container serves one request at a time, the local
#: HTTP adapter a few; more would only hold sockets open.
POOL_MAXSIZE = 4

#: Failures of the transport that are worth another attempt. With ``retries=False`` urllib3
#: raises them as they happen (never wrapped in ``MaxRetryError``):
#:
#: - ``TimeoutError``: ``NewConnectionError`` (connection refused or reset while connecting;
#:   ``NameResolutionError``, a DNS failure, is one) and ``ConnectTimeoutError``, of which
#:   ``NewConnectionError`` is a subclass, and ``ReadTimeoutError`` (no answer, or the body
#:   stalled, within the read timeout or the deadline's ``total``);
#: - ``ProtocolError``: the connection was closed or reset before a whole answer came (no
#:   status line, or a body shorter than its ``Content-Length``: "Connection aborted" and
#:   "Connection broken");
#: - ``SSLError``: the TLS handshake or record layer failed. A certificate Cognito's domain
#:   does not have is no hiccup, but a handshake cut short surfaces the same way, ``requests``
#:   retried both (its ``SSLError`` is a ``ConnectionError``), and the attempts stay bounded.
#:
#: ``ProxyError`` cannot occur: the pool is no ``ProxyManager`` (``requests`` followed the
#: ``HTTPS_PROXY`` variables; Lambda sets none, and this client no longer reads them).
_RETRYABLE_EXCEPTIONS: tuple[type[HTTPError], ...] = (TransportTimeout, ProtocolError, SSLError)

#: Failures that another attempt cannot fix, reported as "could not be sent" without their
#: text: ``ValueError`` from http.client for a header name or value it refuses (a line break,
#: or a character outside Latin-1: ``UnicodeEncodeError``), raised before a byte is sent, and
#: urllib3's ``LocationValueError`` for a URL it cannot parse (both quote what they refuse);
#: any other urllib3 error (a body it cannot decode, a closed pool).
_UNSENDABLE_EXCEPTIONS: tuple[type[Exception], ...] = (ValueError, HTTPError)

_NULL_METRICS = NullMetrics()


def new_pool(pool_maxsize: int = POOL_MAXSIZE) -> urllib3.PoolManager:
    """A keep-alive connection pool for the token endpoint's host: a few connections, none
    waited for (``block=False``: a burst opens a connection more and drops it afterwards), no
    transport-level retries and no redirects (the client owns retries, so they stay bounded and
    visible in metrics; an answer of Cognito's is never followed elsewhere), and certificates
    verified against certifi's bundle (see the module's docstring)."""
    return urllib3.PoolManager(
        num_pools=1,  # one host: Cognito's domain
        maxsize=pool_maxsize,
        block=False,
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )


class CognitoTokenClient:
    """Calls Cognito's ``/oauth2/token`` for one validated :class:`TokenRequest`.

    Create it once per container: the pool and its connections are reused across calls and
    warm invocations.
    """

    def __init__(
        self,
        *,
        token_url: str,
        origin: OriginSecretSource,
        timeout_seconds: float,
        max_attempts: int,
        user_agent: str,
        pool: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        metrics: MetricsSink = _NULL_METRICS,
        trace: UpstreamTrace | None = None,
        backoff_base: float = 0.1,
        backoff_cap: float = 2.0,
        max_retry_after: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be > 0")
        if not user_agent:
            raise ValueError("user_agent must not be empty (WAF rules block requests without one)")
        self._token_url = token_url
        self._origin = origin
        self._timeout = (float(timeout_seconds), float(timeout_seconds))
        self._max_attempts = max_attempts
        self._user_agent = user_agent
        self._pool = pool if pool is not None else new_pool()
        self._clock = clock
        self._wall_clock = wall_clock
        self._metrics = metrics
        self._trace = trace
        self._pauses = RetryPauses(
            sleep=sleep,
            rand=rand,
            metrics=metrics,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
        )

    def __repr__(self) -> str:
        return (
            f"CognitoTokenClient(token_url={self._token_url!r}, max_attempts={self._max_attempts})"
        )

    @property
    def pool(self) -> urllib3.PoolManager:
        """The connection pool every call goes through."""
        return self._pool

    def close(self) -> None:
        self._pool.clear()

    def fetch(self, request: TokenRequest, deadline: Deadline | None = None) -> UpstreamResponse:
        """Cognito's answer to ``request`` (2xx or a non-retryable 4xx, including a 403 that
        persisted after one refresh of the origin secret).

        Raises :class:`UpstreamUnavailable` when 429/5xx/transport failures exhaust
        ``max_attempts``, Cognito asks to come back later than ``max_retry_after`` or than the
        ``deadline`` allows, or the deadline leaves no time for another attempt.
        """
        form = request.upstream_form()
        client_headers = request.upstream_headers()
        budget = self._max_attempts  # HTTP attempts allowed; the 403 retry adds one
        refreshed = False
        attempt = retries = 0
        last = NO_ATTEMPT
        while True:
            headers = self._headers(client_headers, deadline)  # may read the origin secret
            timeout = self._attempt_timeout(deadline)
            if timeout is None:
                raise out_of_time(attempt, last)
            attempt += 1
            try:
                response = self._post(form, headers, attempt, timeout)
            except _RETRYABLE_EXCEPTIONS as exc:
                last = Failure(type(exc).__name__, cause=exc)
            except _UNSENDABLE_EXCEPTIONS as exc:
                # Not a transport hiccup (an invalid URL or header): retrying cannot help.
                # The exception's text may quote a header value, so it is not chained.
                self._metrics.add_metric(UPSTREAM_ERROR, MetricUnit.Count, 1)
                logger.error(
                    "upstream request could not be sent",
                    extra={"attempt": attempt, "error_type": type(exc).__name__},
                )
                raise UpstreamUnavailable(
                    f"the request to Cognito could not be sent ({type(exc).__name__})"
                ) from None
            else:
                status = response.status
                if status == 403 and not refreshed:
                    refreshed = True
                    budget += 1
                    self._refresh_origin(attempt, deadline)
                    continue
                if status != 429 and status < 500:
                    return _to_upstream(response)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._wall_clock()
                )
                last = Failure(f"HTTP {status}", retry_after=retry_after)
            self._metrics.add_metric(UPSTREAM_ERROR, MetricUnit.Count, 1)
            if attempt >= budget:
                logger.error(
                    "upstream gave no usable answer; giving up",
                    extra={"attempts": attempt, "last_failure": last.failure},
                )
                raise UpstreamUnavailable(
                    f"Cognito gave no usable answer after {attempt} attempts "
                    f"(last: {last.failure})",
                    retry_after=last.retry_after,
                ) from last.cause
            self._pauses.pause(attempt, retries, last, deadline)
            retries += 1

    def _attempt_timeout(self, deadline: Deadline | None) -> Timeout | None:
        """This attempt's connect and read timeouts, cut to the deadline; None when too little
        time is left to try at all."""
        connect, read = self._timeout
        if deadline is None:
            return Timeout(connect=connect, read=read)
        left = deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            return None
        return Timeout(connect=min(connect, left), read=min(read, left), total=left)

    def _headers(
        self, client_headers: Mapping[str, str], deadline: Deadline | None
    ) -> dict[str, str]:
        return {
            **client_headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
            ORIGIN_VERIFY_HEADER: self._origin.get(deadline),
        }

    def _post(
        self, form: Mapping[str, str], headers: Mapping[str, str], attempt: int, timeout: Timeout
    ) -> urllib3.BaseHTTPResponse:
        self._metrics.add_metric(UPSTREAM_CALL, MetricUnit.Count, 1)
        if self._trace is None:
            return self._send(form, headers, attempt, timeout)
        with self._trace.attempt("POST", self._token_url) as record_status:
            response = self._send(form, headers, attempt, timeout)
            record_status(response.status)
            return response

    def _send(
        self, form: Mapping[str, str], headers: Mapping[str, str], attempt: int, timeout: Timeout
    ) -> urllib3.BaseHTTPResponse:
        started = self._clock()
        status: int | None = None
        try:
            # The form as requests encoded a dict: application/x-www-form-urlencoded, UTF-8,
            # reserved characters percent-encoded and spaces as "+" (urlencode's quote_plus).
            # The whole body is read before urlopen returns (preload_content), and the
            # connection is then back in the pool (release_conn follows preload_content).
            # Beside these headers urllib3 sends Host, Content-Length and http.client's
            # "Accept-Encoding: identity" (requests asked for gzip, which a token's few hundred
            # bytes do not need, and said "Connection: keep-alive", HTTP/1.1's default).
            response = self._pool.urlopen(
                "POST",
                self._token_url,
                body=urlencode(form).encode("ascii"),
                headers=dict(headers),
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
            status = response.status
            return response
        finally:
            elapsed_ms = max(0.0, (self._clock() - started) * 1000.0)
            self._metrics.add_metric(UPSTREAM_LATENCY, MetricUnit.Milliseconds, elapsed_ms)
            logger.debug(
                "upstream attempt",
                extra={"attempt": attempt, "status": status, "elapsed_ms": round(elapsed_ms, 1)},
            )

    def _refresh_origin(self, attempt: int, deadline: Deadline | None) -> None:
        self._metrics.add_metric(ORIGIN_REFRESH, MetricUnit.Count, 1)
        logger.warning(
            "upstream answered 403; re-reading the origin secret and retrying once",
            extra={"attempt": attempt},
        )
        self._origin.refresh(deadline)


def _to_upstream(response: urllib3.BaseHTTPResponse) -> UpstreamResponse:
    content_type = response.headers.get("Content-Type") or "application/json"
    return UpstreamResponse(response.status, response.data, content_type)
