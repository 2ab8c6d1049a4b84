"""The local stand-ins' HTTP front end, its decisions alone (no sockets): which request heads and
bodies HTTP/1.1 does not allow, and what the client is told. Over real sockets:
tests/e2e/test_http_front_end_served.py."""

from __future__ import annotations

import base64
import http.client
import io

import pytest

from local.http_front_end import (
    Refusal,
    RefusedError,
    head_problem,
    read_chunked_body,
    read_sized_body,
)
from tests.e2e.raw_http import LONG_ID, LONG_SECRET, wrapped_basic


def decide(head: bytes, *, max_head_bytes: int | None = None) -> Refusal | None:
    """``head_problem`` for a raw request head, parsed as the HTTP server parses it."""
    request_line, _, rest = head.partition(b"\r\n")
    lines = io.BytesIO(rest).readlines()
    headers = http.client.parse_headers(io.BytesIO(rest))
    return head_problem(request_line, lines, headers, max_head_bytes=max_head_bytes)


REQUEST_LINE = b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


def test_a_wrapped_basic_credential_is_refused_as_a_whole_and_named() -> None:
    # GIVEN a head whose Authorization value continues on a line of its own, then Content-Length
    head = REQUEST_LINE + wrapped_basic() + FORM + b"Content-Length: 29\r\n\r\n"

    # WHEN the front end decides
    refusal = decide(head)

    # THEN the request is refused, the answer names the header and the fix, and holds no part
    # of the credential
    assert refusal is not None
    assert (refusal.status, refusal.kind) == (400, "header line without a colon")
    assert refusal.problem.startswith(
        "Malformed header: the line after the Authorization header is not a 'Name: value' header"
    )
    assert "curl -u" in refusal.problem
    assert "base64 -w0" in refusal.problem
    encoded = base64.b64encode(f"{LONG_ID}:{LONG_SECRET}".encode()).decode()
    assert encoded[76:] not in refusal.problem
    assert encoded[:20] not in refusal.problem


@pytest.mark.parametrize(
    ("line", "status", "kind", "problem"),
    [
        (
            b"X-Trace: 1\r\n  folded\r\n",
            400,
            "obsolete line folding",
            "Malformed header: the line after the X-Trace header starts with whitespace",
        ),
        (
            b"X-Trace : 1\r\n",
            400,
            "whitespace before a header colon",
            "Malformed header: whitespace between the header name 'X-Trace' and its colon",
        ),
        (
            b"Bad Header: 1\r\n",
            400,
            "invalid header name",
            "Malformed header: the line after the Content-Type header has a name",
        ),
        (
            b"X-Trace: a\x00b\r\n",
            400,
            "control character in a header value",
            "Malformed header: the X-Trace header's value holds a control character",
        ),
        (
            b": no name\r\n",
            400,
            "invalid header name",
            "Malformed header: the line after the Content-Type header has a name",
        ),
        (
            b"Content-Length: 12\r\nContent-Length: 13\r\n",
            400,
            "conflicting Content-Length",
            "Malformed header: Content-Length is repeated with different values",
        ),
        (
            b"Content-Length: -1\r\n",
            400,
            "invalid Content-Length",
            "Malformed header: Content-Length must be a number of bytes",
        ),
        (
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            400,
            "Transfer-Encoding with Content-Length",
            "Malformed header: Transfer-Encoding and Content-Length in one request",
        ),
        (
            b"Transfer-Encoding: gzip, chunked\r\n",
            501,
            "unsupported Transfer-Encoding",
            "Not Implemented: the only Transfer-Encoding accepted is chunked",
        ),
    ],
)
def test_heads_http_does_not_allow_are_refused(
    line: bytes, status: int, kind: str, problem: str
) -> None:
    # GIVEN a head with one line HTTP/1.1 does not allow / WHEN the front end decides
    refusal = decide(REQUEST_LINE + FORM + line + b"\r\n")

    # THEN it is refused with that status, a problem naming it and a log kind without values
    assert refusal is not None
    assert (refusal.status, refusal.kind) == (status, kind)
    assert refusal.problem.startswith(problem)


@pytest.mark.parametrize(
    "lines",
    [
        b"Content-Length: 29\r\n",
        b"Content-Length: 29\r\nContent-Length: 29\r\n",
        b"Transfer-Encoding: Chunked\r\n",
        b"X-Empty:\r\nX-Tabbed:\tvalue\t\r\nX-Latin1: caf\xe9\r\n",
        b"Authorization: Basic " + base64.b64encode(f"{LONG_ID}:{LONG_SECRET}".encode()) + b"\r\n",
    ],
)
def test_heads_http_allows_pass(lines: bytes) -> None:
    # GIVEN a well-formed head (an unwrapped long Basic value included) / WHEN decided
    # THEN nothing is refused
    assert decide(REQUEST_LINE + FORM + lines + b"\r\n") is None


def test_the_request_line_and_header_values_are_bounded_like_http_apis_quota() -> None:
    # GIVEN HTTP API's 10240 bytes for the request line and header values together
    request_line = b"POST /oauth2/token HTTP/1.1"
    room = 10240 - len(request_line) - len(b"127.0.0.1")
    fits = REQUEST_LINE + b"X-Big: " + b"a" * room + b"\r\n\r\n"
    over = REQUEST_LINE + b"X-Big: " + b"a" * (room + 1) + b"\r\n\r\n"

    # WHEN both are decided / THEN exactly the one over the bound is refused, with a 431
    assert decide(fits, max_head_bytes=10240) is None
    refusal = decide(over, max_head_bytes=10240)
    assert refusal == Refusal(
        431,
        "Request Header Fields Too Large: the request line and header values add up to 10241 "
        "bytes, more than the 10240 allowed",
        "request head too large",
    )
    # AND a stand-in without the bound takes it
    assert decide(over) is None


def test_a_body_shorter_than_its_content_length_is_refused() -> None:
    # GIVEN a stream that ends after 10 of the 100 announced bytes / WHEN the body is read
    with pytest.raises(RefusedError) as caught:
        read_sized_body(io.BytesIO(b"grant_type"), 100)

    # THEN it is refused as truncated, saying how much arrived
    assert caught.value.refusal == Refusal(
        400,
        "Bad Request: the body ended after 10 bytes, before the 100 its Content-Length "
        "announced (the client closed its side of the connection early)",
        "truncated body",
    )
    # AND a whole body is returned as sent
    assert read_sized_body(io.BytesIO(b"grant_type=x"), 12) == b"grant_type=x"


def test_a_chunked_body_is_reassembled_with_extensions_and_trailers() -> None:
    # GIVEN a chunked body with a chunk extension and a trailer
    raw = b"5;ext=1\r\ngrant\r\n10\r\n_type=client_cre\r\n8\r\ndentials\r\n0\r\nX-Sum: 1\r\n\r\n"

    # WHEN it is read / THEN the body is the chunks joined
    assert read_chunked_body(io.BytesIO(raw), 1024, "too large") == (
        b"grant_type=client_credentials"
    )


@pytest.mark.parametrize(
    ("raw", "status", "kind"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", 400, "bad chunk"),
        (b"3\r\nabcdef\r\n0\r\n\r\n", 400, "bad chunk"),
        (b"20\r\nabc", 400, "truncated body"),
        (b"3\r\nabc\r\n", 400, "truncated body"),
        (b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n", 400, "truncated body"),
        (b"f" * 2000 + b"\r\n", 400, "malformed chunk"),
        (b"400\r\n" + b"a" * 1024 + b"\r\n1\r\n", 413, "chunked body too large"),
    ],
)
def test_malformed_or_oversize_chunked_bodies_are_refused(
    raw: bytes, status: int, kind: str
) -> None:
    # GIVEN a chunked body that is malformed, cut short or over the bound of 1024 bytes
    # WHEN it is read / THEN it is refused with a status and kind for it
    with pytest.raises(RefusedError) as caught:
        read_chunked_body(io.BytesIO(raw), 1024, "too large")
    assert (caught.value.refusal.status, caught.value.refusal.kind) == (status, kind)
