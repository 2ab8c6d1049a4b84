"""The HTTP/1.1 front end of the local stand-ins: what it refuses before an application sees a
request, the way API Gateway's front end refuses it.

A request whose head or body HTTP/1.1 does not allow is refused AS A WHOLE with one JSON answer
and one log line, before the WSGI application runs - never half-read (Python's header parser
stops at the first malformed line and silently drops every header after it, ``Content-Length``
included), never a 500 page, never a traceback:

* a header line that is not ``Name: value``, e.g. a Basic credential that GNU ``base64``
  wrapped at 76 characters, whose second half arrives as a line of its own;
* whitespace between a header name and its colon (RFC 9112 section 5.1 requires a 400), a line
  that continues the previous one (obsolete line folding, RFC 9112 section 5.2: refusing it
  with a 400 is one of the two allowed answers), a name with characters outside ``token``, a
  value with control characters (RFC 9110 section 5.5);
* a ``Content-Length`` that is not a number, repeated with different values, or sent with
  ``Transfer-Encoding`` (RFC 9112 section 6.3, the request-smuggling cases); a transfer coding
  other than ``chunked`` (501, RFC 9112 section 6.1);
* a request line and header values over the stand-in's bound (HTTP API: 10240 bytes);
* a body that ends before its ``Content-Length`` or its last chunk (a client that half-closes
  early) or does not arrive within the read timeout, and a malformed chunk;
* what Python's HTTP server itself refuses (a malformed request line, a header line over
  64 KiB, more than 100 headers), answered in the same JSON instead of its HTML page.

What AWS documents, and what this relies on: API Gateway's HTTP API quotas page
(docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html) lists "Total
combined size of request line and header values: 10240 bytes" and a 10 MB payload, and API
Gateway answers a request that never reaches an integration with its own JSON
(``{"message": ...}``, as for ``Not Found``). AWS does not document its front end's answer to a
malformed header line, so this follows RFC 9112 (a 400 for the whole request) and HTTP API's
JSON shape, and names the problem so that the fix is obvious. Cognito documents its domain's
answer to malformed HTTP no better; the local issuer gets the same front end, answering in its
token endpoint's RFC 6749 shape.

Neither the response nor the log line ever repeats a header VALUE (the broken line may be half
a credential); the response names the header the broken line follows, the log line only the
kind of problem.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

#: RFC 9110 section 5.6.2: a header name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A field value may hold HTAB, SP, visible ASCII and obs-text (0x80-0xFF), nothing else.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: Longest chunk-size line (with extensions) and most trailer lines read from a chunked body.
_MAX_CHUNK_LINE = 1024
_MAX_TRAILER_LINES = 100
_CRLF = (b"\r\n", b"\n")
_WRAPPED_HINT = (
    "a header value cannot continue on a new line; send each header on one line "
    "(for HTTP Basic use curl -u ID:SECRET, or base64 -w0: GNU base64 wraps at 76 characters)"
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused as a whole: its status, the problem told to the client, and the kind
    of problem the log line names (a fixed phrase, never a value the client sent)."""

    status: int
    problem: str
    kind: str


#: The JSON body a stand-in answers a refusal with (HTTP API: ``{"message": ...}``).
RefusalBody = Callable[[Refusal], Mapping[str, Any]]


def _message_body(refusal: Refusal) -> Mapping[str, Any]:
    return {"message": refusal.problem}


@dataclass(frozen=True, slots=True)
class FrontEnd:
    """How one stand-in's front end refuses requests: the JSON body and content type of its
    refusals, the logger of its one line per refusal, and its bounds."""

    logger: logging.Logger
    body: RefusalBody = _message_body
    content_type: str = "application/json"
    #: Request line plus header values, in bytes (None: only Python's own 64 KiB per line).
    max_head_bytes: int | None = None
    #: Bodies up to this size are read before the application runs; a longer Content-Length
    #: is left for the application to refuse, a longer chunked body is refused here (413).
    max_body_bytes: int = 10 * 1024 * 1024
    #: How long a client may leave the connection silent while sending its request.
    read_timeout_seconds: float = 30.0
    #: The 413 problem text (HTTP API's own words by default).
    too_large: str = field(default="Request Entity Too Large")


class RefusedError(Exception):
    """Raised while reading a request that must be refused as a whole."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.kind)
        self.refusal = refusal


# ---------------------------------------------------------------------- the head
def _header_name(line: bytes) -> str:
    return line.split(b":", 1)[0].decode("latin-1").strip()


def _line_problem(line: bytes, previous: str | None) -> Refusal | None:
    """The problem of one raw header line (with its line ending), or None."""
    after = f"the line after the {previous} header" if previous else "the first header line"
    if line[:1] in (b" ", b"\t"):
        return Refusal(
            400,
            f"Malformed header: {after} starts with whitespace, continuing the line before it "
            f"(obsolete line folding is not accepted); {_WRAPPED_HINT}",
            "obsolete line folding",
        )
    name, colon, value = line.rstrip(b"\r\n").partition(b":")
    if not colon:
        return Refusal(
            400,
            f"Malformed header: {after} is not a 'Name: value' header; {_WRAPPED_HINT}",
            "header line without a colon",
        )
    if name != name.rstrip(b" \t"):
        return Refusal(
            400,
            f"Malformed header: whitespace between the header name {_header_name(line)!r} and "
            "its colon",
            "whitespace before a header colon",
        )
    if not _TOKEN.fullmatch(name):
        return Refusal(
            400,
            f"Malformed header: {after} has a name with characters a header name cannot hold",
            "invalid header name",
        )
    if _CONTROL.search(value):
        return Refusal(
            400,
            f"Malformed header: the {_header_name(line)} header's value holds a control character",
            "control character in a header value",
        )
    return None


def _framing_problem(headers: Message) -> Refusal | None:
    """Content-Length and Transfer-Encoding as RFC 9112 section 6 allows them."""
    lengths = [v.strip() for v in headers.get_all("Content-Length") or ()]
    codings = headers.get_all("Transfer-Encoding") or ()
    if any(not v.isascii() or not v.isdigit() for v in lengths):
        return Refusal(
            400,
            "Malformed header: Content-Length must be a number of bytes",
            "invalid Content-Length",
        )
    if len(set(lengths)) > 1:
        return Refusal(
            400,
            "Malformed header: Content-Length is repeated with different values",
            "conflicting Content-Length",
        )
    if codings and lengths:
        return Refusal(
            400,
            "Malformed header: Transfer-Encoding and Content-Length in one request",
            "Transfer-Encoding with Content-Length",
        )
    if codings and [c.strip().lower() for c in codings] != ["chunked"]:
        return Refusal(
            501,
            "Not Implemented: the only Transfer-Encoding accepted is chunked",
            "unsupported Transfer-Encoding",
        )
    return None


def head_problem(
    request_line: bytes,
    header_lines: Sequence[bytes],
    headers: Message,
    *,
    max_head_bytes: int | None = None,
) -> Refusal | None:
    """Why a request head must be refused, or None. ``header_lines`` are the raw lines as read
    (the blank line that ends the head may be included), ``headers`` their parsed form."""
    previous: str | None = None
    head_bytes = len(request_line.rstrip(b"\r\n"))
    for line in header_lines:
        if line in _CRLF:
            break
        problem = _line_problem(line, previous)
        if problem is not None:
            return problem
        previous = _header_name(line)
        head_bytes += len(line.partition(b":")[2].strip())
    if max_head_bytes is not None and head_bytes > max_head_bytes:
        return Refusal(
            431,
            f"Request Header Fields Too Large: the request line and header values add up to "
            f"{head_bytes} bytes, more than the {max_head_bytes} allowed",
            "request head too large",
        )
    return _framing_problem(headers)


# ---------------------------------------------------------------------- the body
def _truncated(received: int, expected: str) -> Refusal:
    return Refusal(
        400,
        f"Bad Request: the body ended after {received} bytes, before {expected} (the client "
        "closed its side of the connection early)",
        "truncated body",
    )


def read_sized_body(stream: Any, length: int) -> bytes:
    """Exactly ``length`` bytes, or :class:`RefusedError` when the stream ends first."""
    data = bytes(stream.read(length)) if length else b""
    if len(data) < length:
        raise RefusedError(_truncated(len(data), f"the {length} its Content-Length announced"))
    return data


def _chunk_line(stream: Any, received: int) -> bytes:
    line = bytes(stream.readline(_MAX_CHUNK_LINE + 1))
    if not line.endswith(b"\n"):
        if len(line) > _MAX_CHUNK_LINE:
            raise RefusedError(
                Refusal(400, "Bad Request: a chunk-size line is too long", "malformed chunk")
            )
        raise RefusedError(_truncated(received, "its last chunk"))
    return line


def read_chunked_body(stream: Any, max_bytes: int, too_large: str) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1), trailers skipped."""
    body = bytearray()
    while True:
        size_text = _chunk_line(stream, len(body)).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise RefusedError(
                Refusal(400, "Bad Request: a chunk size is not a hexadecimal number", "bad chunk")
            )
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > max_bytes:
            raise RefusedError(Refusal(413, too_large, "chunked body too large"))
        data = bytes(stream.read(size))
        body += data
        if len(data) < size:
            raise RefusedError(_truncated(len(body), "the end of its chunk"))
        if bytes(stream.readline(3)) not in _CRLF:
            raise RefusedError(
                Refusal(400, "Bad Request: a chunk is longer than its size", "bad chunk")
            )
    for _ in range(_MAX_TRAILER_LINES):
        if _chunk_line(stream, len(body)) in _CRLF:
            return bytes(body)
    raise RefusedError(Refusal(400, "Bad Request: too many trailer lines", "bad chunk"))


# ---------------------------------------------------------------------- the handler
class _LineRecorder:
    """Wraps the request stream while Python's parser reads the head, keeping the raw header
    lines (the parser itself keeps no trace of a malformed line, or of the lines after it)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line = bytes(self._stream.readline(limit))
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class StrictRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, with the front end's refusals; request lines are logged at DEBUG
    only (each stand-in logs its own line per request, or none)."""

    front_end: FrontEnd
    #: A refusal of a malformed request line is an HTTP/1.1 answer, with a status line.
    default_request_version = "HTTP/1.1"
    _checked: bool = False
    _header_lines: list[bytes]
    _body: bytes | None = None

    def setup(self) -> None:
        self.timeout = self.front_end.read_timeout_seconds
        super().setup()

    # -- the head
    def parse_request(self) -> bool:
        self._checked, self._body = False, None
        recorder = _LineRecorder(self.rfile)
        self._header_lines = recorder.lines  # filled as the parser reads (Expect needs them)
        stream, self.rfile = self.rfile, recorder  # type: ignore[assignment]
        try:
            parsed = super().parse_request()
        finally:
            self.rfile = stream
        if parsed and len(self.requestline.split()) < 3:
            # "GET /" alone: HTTP/0.9, which API Gateway does not speak.
            problem = "Bad Request: the request line must end with the HTTP version"
            self.refuse(Refusal(400, problem, "HTTP/0.9 request"))
            return False
        return parsed and self._check_head()

    def handle_expect_100(self) -> bool:
        # Refuse before inviting the body; werkzeug's run_wsgi would send a second "100".
        if not self._check_head():
            return False
        del self.headers["Expect"]
        return super().handle_expect_100()

    def _check_head(self) -> bool:
        if self._checked:
            return True
        self._checked = True
        try:
            urlsplit(self.path)  # what werkzeug does with the target before the application runs
        except ValueError:
            problem = "Bad Request: the request target is not a valid URI"
            self.refuse(Refusal(400, problem, "invalid request target"))
            return False
        problem = head_problem(
            self.raw_requestline,
            self._header_lines,
            self.headers,
            max_head_bytes=self.front_end.max_head_bytes,
        )
        if problem is None:
            return True
        self.refuse(problem)
        return False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Python's own refusals (request line, line length, header count): the same JSON, and
        # never the request line it would quote (it may carry credentials in a query string).
        short = self.responses.get(code, ("Error",))[0]
        reason = (message or short).split(" (", 1)[0]
        problem = short if reason == short else f"{short}: {reason}"
        self.refuse(Refusal(code, problem, reason.lower()))

    # -- the body
    def run_wsgi(self) -> None:
        try:
            self._body = self._read_body()
        except RefusedError as refused:
            self.refuse(refused.refusal)
            return
        except TimeoutError:
            seconds = self.front_end.read_timeout_seconds
            self.refuse(
                Refusal(
                    408,
                    f"Request Timeout: the body did not arrive within {seconds:g} s",
                    "body timed out",
                )
            )
            return
        except ConnectionError:
            self.close_connection = True
            self.front_end.logger.info("request dropped: the client reset the connection")
            return
        super().run_wsgi()

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding") is not None:
            front = self.front_end
            return read_chunked_body(self.rfile, front.max_body_bytes, front.too_large)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.front_end.max_body_bytes:
            return None  # the application refuses it by its Content-Length, unread
        return read_sized_body(self.rfile, length)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if self._body is not None:
            environ["wsgi.input"] = io.BytesIO(self._body)
            environ["wsgi.input_terminated"] = True
        return environ

    # -- answers and log lines
    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` as the front end's JSON and close the connection."""
        front = self.front_end
        front.logger.info("request refused: %s %s", refusal.status, refusal.kind)
        body = json.dumps(front.body(refusal)).encode("utf-8")
        self.close_connection = True
        self.send_response(refusal.status)
        self.send_header("Content-Type", front.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.front_end.logger.debug("request", extra={"status": str(code)})

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's only remaining caller: a connection that timed out before its request.
        self.front_end.logger.info("connection dropped: %s", format.split(":", 1)[0].lower())


def handler_class(
    front_end: FrontEnd, server_handler: type[WSGIRequestHandler] = WSGIRequestHandler
) -> type[StrictRequestHandler]:
    """A request handler class bound to ``front_end``, in front of ``server_handler`` (a
    werkzeug handler with its own customizations, such as moto's)."""
    bases = (StrictRequestHandler, server_handler)
    return type("FrontEndRequestHandler", bases, {"front_end": front_end})
