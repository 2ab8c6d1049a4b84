"""What an HTTP API event (payload format 2.0) carries to the token endpoint, as text.

:func:`read_token_event` checks the route (``POST /oauth2/token``, else 404 or 405), reads
the headers (names lower-cased as HTTP API sends them, repeated names joined by commas) and the
body (base64-decoded when API Gateway encoded it, bounded before anything is decoded, UTF-8,
and only as ``application/x-www-form-urlencoded``); :func:`query_text` reads the query string
(raw, or rebuilt from the decoded parameters of a hand-written event). :func:`form_decode` is
the strict form decoding that the parameters and the Basic credentials share.

The same code reads both front ends' events. A Lambda function URL sends the HTTP API's
payload format 2.0 with ``routeKey`` ``$default`` and every path and method it receives
(https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html, "Request payload format"),
so nothing in front of the function has routed the request: the path must then be exactly
``/oauth2/token``. Only an event that API Gateway routed to a ``POST /oauth2/token`` route may
carry a stage name before it (``/prod/oauth2/token`` on a named stage).

Anything malformed raises an :class:`~token_proxy.errors.OAuthError` whose description names
the part, never its value.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes, urlencode

from token_proxy.errors import InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge

ENDPOINT_PATH = "/oauth2/token"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TokenEvent(NamedTuple):
    """A token request's headers and its form body as text."""

    headers: dict[str, str]
    body: str


def read_token_event(event: Mapping[str, Any], *, max_body_bytes: int) -> TokenEvent:
    """The event's headers and body, or an OAuthError saying what is wrong."""
    if not isinstance(event, Mapping):
        raise InvalidRequest("the request is not an HTTP API event")
    _check_route(event)
    headers = _headers(event)
    return TokenEvent(headers, _body_text(event, headers, max_body_bytes))


def _check_route(event: Mapping[str, Any]) -> None:
    http = _mapping(_mapping(event.get("requestContext")).get("http"))
    path = event.get("rawPath", http.get("path"))
    if not isinstance(path, str) or not _is_token_path(path, event.get("routeKey")):
        raise NotFound()
    if http.get("method") != "POST":
        raise MethodNotAllowed()


def _is_token_path(path: str, route_key: Any) -> bool:
    """``/oauth2/token``; or, when API Gateway routed the request to a route of its own (not
    ``$default``, the route key of a function URL and of an HTTP API's catch-all route), a
    stage's ``/<stage>/oauth2/token``."""
    if path == ENDPOINT_PATH:
        return True
    routed = isinstance(route_key, str) and route_key.endswith(" " + ENDPOINT_PATH)
    stage, _, rest = path[1:].partition("/")
    return routed and bool(stage) and "/" + rest == ENDPOINT_PATH


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    """Header names lower-cased (as HTTP API sends them); repeated names joined by commas."""
    raw = event.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("the request headers are malformed")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest("the request headers are malformed")
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def _body_text(event: Mapping[str, Any], headers: Mapping[str, str], max_bytes: int) -> str:
    body = event.get("body")
    if body is None:
        return ""
    if not isinstance(body, str):
        raise InvalidRequest("the request body is malformed")
    too_large = PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    if event.get("isBase64Encoded") is True:
        if len(body) > 4 * ((max_bytes + 2) // 3):  # checked before decoding anything
            raise too_large
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise InvalidRequest("the request body is not valid base64") from exc
    else:
        if len(body) > max_bytes:  # UTF-8 never has fewer bytes than characters
            raise too_large
        try:
            raw = body.encode("utf-8")
        except UnicodeError as exc:
            raise InvalidRequest("the request body is not valid UTF-8") from exc
    if len(raw) > max_bytes:
        raise too_large
    if not raw:
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeError as exc:
        raise InvalidRequest("the request body is not valid UTF-8") from exc
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"Content-Type must be {FORM_MEDIA_TYPE}")
    return text


def query_text(event: Mapping[str, Any], max_chars: int) -> str:
    """The raw query string (at most ``max_chars``), or one rebuilt from decoded parameters."""
    raw = event.get("rawQueryString")
    if raw is None:  # hand-written events may carry only the decoded parameters
        decoded = event.get("queryStringParameters")
        if decoded is None:
            return ""
        if not isinstance(decoded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
        ):
            raise InvalidRequest("the query string is malformed")
        try:
            raw = urlencode(list(decoded.items()))
        except UnicodeError as exc:
            raise InvalidRequest("the query string is malformed") from exc
    if not isinstance(raw, str):
        raise InvalidRequest("the query string is malformed")
    if len(raw) > max_chars:
        raise InvalidRequest(f"the query string is longer than {max_chars} characters")
    return raw


def form_decode(text: str) -> str | None:
    """``application/x-www-form-urlencoded`` decoding: ``+`` is a space, strict %XX and UTF-8."""
    if _BAD_PERCENT.search(text):
        return None
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeError:
        return None


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds C0 or C1 control characters (never valid in a parameter)."""
    return _CONTROL.search(value) is not None
