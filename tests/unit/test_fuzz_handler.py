"""Hostile HTTP API events through the token handler: the real parsing, service and error
mapping run on every example (hypothesis; examples per property from the profile, 5,000 under
``HYPOTHESIS_PROFILE=ci``).

Events are built from parts that are each sometimes right and sometimes wrong: methods, paths,
header sets in any casing, form bodies and query strings with repeated, empty, unknown,
raw or broken-percent-encoded parameters, unicode and control characters in credentials and
scopes, Basic headers that are not base64, not UTF-8 or lack a colon, bodies that are broken
base64 or not UTF-8 or too large, and events missing keys or holding the wrong types.

Invariants, for every example:
- the handler returns (nothing escapes), never a 5xx, always JSON with ``Cache-Control:
  no-store``: a token (200) or an RFC 6749 error code;
- a token is only ever one issued for credentials the event itself carried: the issuers record
  which credentials each token was issued for, and a token cached for a known client before the
  run (the "seeded" token) is served only to events that carried that client's credentials;
- no record at ERROR (the handler's last resort logs there) is emitted.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.clock import FakeClock
from tests.fakes.cognito_client import json_response, jwt_like
from tests.fakes.cognito_endpoint import CLIENT_ID, CLIENT_SECRET, FakeCognito, serving
from tests.fakes.http_endpoint import Received
from tests.fakes.lambda_context import lambda_context
from tests.fakes.proxy_function import load_event, proxy_environment
from tests.fakes.token_requests import KEYS
from tests.fakes.token_requests import settings as service_settings
from tests.fakes.token_store import InMemoryTokenStore
from token_proxy import app
from token_proxy.deadline import Deadline
from token_proxy.l1 import TokenL1
from token_proxy.model import TokenRequest, UpstreamResponse
from token_proxy.wiring import build_token_service

T = TypeVar("T")

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

OTHER_CLIENT_ID = "2other987654321"
OTHER_CLIENT_SECRET = "other-client-secret-not-real"
NEAR_MISS_SECRETS = (
    CLIENT_SECRET + " ",
    CLIENT_SECRET.upper(),
    CLIENT_SECRET[:-1],
    CLIENT_SECRET + "\x00",
    " " + CLIENT_SECRET,
    CLIENT_SECRET + "\u200b",
)
SCOPES = ("example-api/read", "example-api/write")
RFC6749_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "temporarily_unavailable",
    }
)
#: Statuses the handler may answer with when Cognito (or its stand-in) is healthy (429: the
#: budget of calls for credentials that never obtained a token is spent).
EXPECTED_STATUSES = frozenset({200, 400, 401, 403, 404, 405, 413, 415, 429})
MAX_BODY_BYTES = 8192

# ---------------------------------------------------------------------- strategies
#
# Most examples are a plausible token request with one or two things wrong, so that every
# layer (route, headers, body, form, authentication, scope, service, relay) is reached; every
# part is wrong now and then. Choices are drawn by index from prebuilt integer strategies,
# which keeps generation cheap enough for thousands of examples.

#: What breaks parsers: controls, separators, percent signs, non-ASCII, RTL and zero-width
#: marks, a byte-order mark, a character outside the BMP and a lone surrogate (JSON can carry
#: one as an escape).
NASTY_ALPHABET = [chr(c) for c in range(0x20, 0x7F)] + list(
    "\x00\x01\t\n\r\x7f\x85\xa0é中\u202e\u200b\ufeff\U0001f642\udc80"
)
NASTY = "<nasty>"  # a choice meaning "draw arbitrary text instead"
nasty_text = st.text(alphabet=st.sampled_from(NASTY_ALPHABET), max_size=24)
odd_json_values = st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2))
extra_headers = st.dictionaries(nasty_text, nasty_text, max_size=2)
short_bytes = st.binary(max_size=8)
not_a_mapping = st.one_of(st.none(), st.text(max_size=5), st.lists(st.none(), max_size=2))


@functools.cache
def _index(size: int) -> st.SearchStrategy[int]:
    return st.integers(0, size - 1)


def choose(draw: st.DrawFn, options: Sequence[T]) -> T:
    """One of ``options``; the first shrinks best. Repeat an option to weight it."""
    return options[draw(_index(len(options)))]


def chance(draw: st.DrawFn, percent: int) -> bool:
    return draw(_index(100)) < percent


def text_or_nasty(draw: st.DrawFn, options: Sequence[str]) -> str:
    value = choose(draw, options)
    return draw(nasty_text) if value == NASTY else value


CLIENT_ID_CHOICES = [CLIENT_ID] * 10 + [OTHER_CLIENT_ID] * 3 + ["", NASTY, NASTY]
SECRET_CHOICES = (
    [CLIENT_SECRET] * 14 + [OTHER_CLIENT_SECRET] * 3 + ["", NASTY, NASTY, *NEAR_MISS_SECRETS]
)
SCOPE_CHOICES = [
    "example-api/read",
    "example-api/read",
    "example-api/read example-api/write",
    "example-api/write  example-api/read example-api/read",
    " example-api/read ",
    "other-api/admin",
    "",
    NASTY,
    "example-api/read " + NASTY,
]
UNKNOWN_NAMES = ["redirect_uri", "Grant_Type", "client_secret ", "", "username", NASTY]
ENCODINGS = ["plus"] * 60 + ["every-byte", "raw", "broken-percent", "bad-utf8"]
PRESENTATIONS = ["basic"] * 6 + ["body"] * 6 + ["query"] * 3 + ["none", "basic+body", "body+query"]
PATHS = ["/oauth2/token"] * 60 + [
    "/prod/oauth2/token",
    "/oauth2/token/",
    "/OAUTH2/TOKEN",
    "/oauth2/authorize",
    "",
    NASTY,
]
ROUTE_KEYS = ["POST /oauth2/token"] * 3 + ["$default"] * 2 + [None]
METHODS: list[Any] = ["POST"] * 60 + ["GET", "PUT", "post", "OPTIONS", "", None, 7]
CONTENT_TYPES = ["application/x-www-form-urlencoded"] * 30 + [
    "application/x-www-form-urlencoded; charset=UTF-8",
    "Application/X-WWW-Form-Urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]
AUTHORIZATION_NAMES = ["authorization"] * 4 + ["Authorization", "AUTHORIZATION", "aUtHoRiZaTiOn"]
CONTENT_TYPE_NAMES = ["content-type"] * 4 + ["Content-Type", "CONTENT-TYPE"]
OWS = [""] * 20 + [" ", "\t", "  "]  # optional whitespace around a header value (RFC 9110)
BASIC_SCHEMES = ["Basic"] * 20 + ["basic", "BASIC", "Bearer", "Digest", ""]
BASIC_KINDS = (
    ["unencoded"] * 10
    + ["encoded"] * 4
    + [
        "no-colon",
        "not-base64",
        "bad-utf8",
        "unpadded",
    ]
)
BODY_KINDS = (
    ["plain"] * 30
    + ["base64"] * 12
    + [
        "broken-base64",
        "non-utf8",
        "oversize",
        "oversize-base64",
        "none",
        "odd-type",
    ]
)
DROPPABLE_KEYS = ["requestContext", "headers", "body", "rawPath", "isBase64Encoded"]


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate gets its (invalid) bytes


def encode_part(text: str, how: str) -> str:
    if how == "plus":
        return quote_plus(utf8(text))
    if how == "every-byte":
        return "".join(f"%{b:02X}" for b in utf8(text))
    if how == "raw":
        return text
    if how == "broken-percent":
        return quote_plus(utf8(text)) + "%G1"
    return quote_plus(utf8(text)) + "%FF%FE"  # bad-utf8


def is_intact(text: str, how: str) -> bool:
    """Whether the proxy decodes ``text`` encoded this way back to ``text`` itself."""
    try:
        text.encode("utf-8")
    except UnicodeError:
        return False
    if how in ("plus", "every-byte"):
        return True
    return how == "raw" and quote_plus(text, safe="/:") == text


@dataclass
class Sent:
    """The credentials an event carries intact (what a served token may be issued for)."""

    ids: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)

    def carries(self, client_id: str, secret: str) -> bool:
        return client_id in self.ids and secret in self.secrets


def draw_form(draw: st.DrawFn, pairs: list[tuple[str, str]], sent: Sent) -> str:
    """``pairs`` form-urlencoded, each part sometimes damaged; notes intact credentials."""
    if pairs and chance(draw, 3):  # a repeated parameter
        pairs.append(choose(draw, pairs))
    if chance(draw, 5):  # a parameter the proxy does not forward
        pairs.append((text_or_nasty(draw, UNKNOWN_NAMES), draw(nasty_text)))
    if chance(draw, 10):
        extra = choose(draw, ["resource", "aws_client_metadata"])
        pairs.append((extra, text_or_nasty(draw, ["https://api.example.com/x?a=1&b=2+3", NASTY])))
    if len(pairs) > 1 and chance(draw, 20):  # order matters to parsers: move the head along
        rotation = draw(_index(len(pairs)))
        pairs = pairs[rotation:] + pairs[:rotation]
    segments: list[str] = []
    for name, value in pairs:
        how = choose(draw, ENCODINGS)
        if is_intact(value, how) and name == "client_id":
            sent.ids.add(value)
        elif is_intact(value, how) and name == "client_secret":
            sent.secrets.add(value)
        if chance(draw, 2):  # a bare name, or an empty value
            segments.append(quote_plus(utf8(name)) + choose(draw, ["", "="]))
            continue
        segments.append(f"{quote_plus(utf8(name))}={encode_part(value, how)}")
    return choose(draw, ["&"] * 10 + ["&&", ";"]).join(segments)


def draw_authorization(draw: st.DrawFn, client_id: str, secret: str, sent: Sent) -> str:
    scheme, kind = choose(draw, BASIC_SCHEMES), choose(draw, BASIC_KINDS)
    if kind == "encoded":  # RFC 6749's encoding: the encoded text is what Cognito gets
        client_id, secret = quote_plus(utf8(client_id)), quote_plus(utf8(secret))
        raw = f"{client_id}:{secret}".encode()
    elif kind == "no-colon":
        raw = utf8(f"{client_id}{secret}".replace(":", ""))
    elif kind == "bad-utf8":
        raw = b"\xff\xfe" + utf8(client_id) + b":" + utf8(secret)
    else:
        raw = utf8(f"{client_id}:{secret}")
    credentials = base64.b64encode(raw).decode()
    if kind == "not-base64":
        credentials = choose(draw, ["!!!", credentials + "*", credentials[1:], "%3D"])
    elif kind == "unpadded":
        credentials = credentials.rstrip("=")
    spaces = choose(draw, [" "] * 6 + ["  ", "\t"])
    intact = kind == "encoded" or (
        kind == "unencoded" and is_intact(client_id, "raw") and is_intact(secret, "raw")
    )
    if scheme.lower() == "basic" and spaces != "\t" and intact:
        sent.ids.add(client_id)
        sent.secrets.add(secret)
    before, after = choose(draw, OWS), choose(draw, OWS)  # around the value
    return f"{before}{scheme}{spaces}{credentials}{after}"


def draw_body(draw: st.DrawFn, form: str) -> tuple[Any, Any]:
    """(body, isBase64Encoded) carrying ``form``, or a body that is wrong in itself."""
    kind = choose(draw, BODY_KINDS)
    if kind == "plain":
        return form, choose(draw, [False] * 4 + [None, "false"])
    if kind == "base64":
        return base64.b64encode(utf8(form)).decode(), choose(draw, [True] * 4 + ["true", 1])
    if kind == "broken-base64":
        text = base64.b64encode(utf8(form)).decode()
        return choose(draw, [text + "*", text[:-1], "====", "%%%%", text + "\n"]), True
    if kind == "non-utf8":
        raw = choose(draw, [b"\xff\xfe", b"grant_type=\xc3\x28", b"\xed\xa0\x80"])
        return base64.b64encode(raw + draw(short_bytes)).decode(), True
    if kind == "oversize":
        return form + "&x=" + choose(draw, ["a", "é", "%41"]) * (MAX_BODY_BYTES + 1), False
    if kind == "oversize-base64":
        return base64.b64encode(b"a" * (MAX_BODY_BYTES + 1)).decode(), True
    if kind == "none":
        return None, choose(draw, [False, True, None])
    return draw(odd_json_values), choose(draw, [False, True])


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[Any, Sent]:
    sent = Sent()
    if chance(draw, 1):
        return draw(not_a_mapping), sent
    client_id = text_or_nasty(draw, CLIENT_ID_CHOICES)
    secret = text_or_nasty(draw, SECRET_CHOICES)
    presentation = choose(draw, PRESENTATIONS)

    body_pairs: list[tuple[str, str]] = []
    query_pairs: list[tuple[str, str]] = []
    if chance(draw, 92):
        grant = choose(draw, ["client_credentials"] * 30 + ["authorization_code", "", NASTY])
        body_pairs.append(("grant_type", draw(nasty_text) if grant == NASTY else grant))
    if chance(draw, 60):
        (query_pairs if chance(draw, 15) else body_pairs).append(
            ("scope", text_or_nasty(draw, SCOPE_CHOICES))
        )
    if "body" in presentation:
        body_pairs += [("client_id", client_id), ("client_secret", secret)]
    if "query" in presentation:
        query_pairs += [("client_id", client_id), ("client_secret", secret)]
    if presentation == "none" and chance(draw, 50):
        body_pairs.append(("client_id", client_id))  # an id without a secret

    headers: dict[Any, Any] = {"host": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"}
    if chance(draw, 95):
        headers[choose(draw, CONTENT_TYPE_NAMES)] = choose(draw, CONTENT_TYPES)
    if "basic" in presentation:
        headers[choose(draw, AUTHORIZATION_NAMES)] = draw_authorization(
            draw, client_id, secret, sent
        )
        if chance(draw, 5):  # again under another casing: the values are joined
            headers[choose(draw, AUTHORIZATION_NAMES)] = draw_authorization(
                draw, text_or_nasty(draw, CLIENT_ID_CHOICES), secret, sent
            )
    if chance(draw, 10):
        headers.update(draw(extra_headers))
    if chance(draw, 3):
        headers[choose(draw, ["authorization", "content-type", "x-n"])] = draw(odd_json_values)
    header_value: Any = headers
    if chance(draw, 3):
        header_value = choose(draw, [None, list(headers.items())])

    body, flag = draw_body(draw, draw_form(draw, body_pairs, sent))
    method = choose(draw, METHODS)
    path = text_or_nasty(draw, PATHS)
    event: dict[str, Any] = {
        "version": "2.0",
        # an HTTP API's route, or the placeholder of a function URL, which routes nothing
        "routeKey": choose(draw, ROUTE_KEYS),
        "rawPath": path,
        "rawQueryString": draw_form(draw, query_pairs, sent),
        "headers": header_value,
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "fuzz-1"},
        "body": body,
        "isBase64Encoded": flag,
    }
    if chance(draw, 4):
        event["requestContext"] = choose(
            draw, [{"http": "POST", "requestId": 7}, {"requestId": {"nested": True}}, "POST", None]
        )
    if chance(draw, 4):  # hand-written events may carry only the decoded parameters
        del event["rawQueryString"]
        event["queryStringParameters"] = dict(query_pairs) if chance(draw, 80) else "x=1"
        if "client_id" in event["queryStringParameters"]:
            sent.ids.add(client_id)
            sent.secrets.add(secret)
    elif chance(draw, 2):
        event["rawQueryString"] = choose(draw, [None, 7, "scope=" + "a" * (MAX_BODY_BYTES + 1)])
    if chance(draw, 4):
        event.pop(choose(draw, DROPPABLE_KEYS))
    return event, sent


# ---------------------------------------------------------------------- invariants


class ErrorRecords(logging.Handler):
    """Counts records at ERROR or above (the handler's last resort logs there)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@pytest.fixture
def error_records() -> Iterator[ErrorRecords]:
    counter = ErrorRecords()
    logging.getLogger().addHandler(counter)
    loggers = [logging.getLogger(name) for name in ("token_proxy", app.logger.name)]
    for logger in loggers:
        if not logger.propagate:
            logger.addHandler(counter)
    yield counter
    logging.getLogger().removeHandler(counter)
    for logger in loggers:
        logger.removeHandler(counter)


def check_response(
    result: dict[str, Any], sent: Sent, issued_for: Callable[[str], tuple[str, str] | None]
) -> dict[str, Any]:
    """The invariants every answer obeys; returns the JSON body."""
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}
    status, headers = result["statusCode"], result["headers"]
    assert status in EXPECTED_STATUSES, status
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"
    assert headers["Content-Type"].startswith("application/json")
    body = json.loads(result["body"])
    assert isinstance(body, dict)
    if status == 200:
        assert isinstance(body["access_token"], str)
        assert body["token_type"] == "Bearer"
        assert isinstance(body["expires_in"], int)
        assert body["expires_in"] > 0
        owner = issued_for(body["access_token"])
        assert owner is not None, "a token nobody issued"
        assert sent.carries(*owner), "a token for credentials the event did not carry"
    else:
        assert body["error"] in RFC6749_ERRORS
        assert set(body) <= {"error", "error_description"}
        assert "access_token" not in result["body"]
        if status == 401:
            assert body["error"] == "invalid_client"
    if status == 429:
        assert body["error"] == "temporarily_unavailable"
        assert int(headers["Retry-After"]) >= 1
    return body


def valid_event(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, Any]:
    event = load_event("token_body_credentials.json")
    event["body"] = (
        f"grant_type=client_credentials&client_id={quote(client_id)}"
        f"&client_secret={quote(secret)}&scope=example-api%2Fread"
    )
    return event


# ---------------------------------------------------------------------- the service on fakes


def answer_hostile_events_safely(
    handle: Callable[[Any], dict[str, Any]],
    owners: Callable[[str], tuple[str, str] | None],
    upstream_calls: Callable[[], int],
    error_records: ErrorRecords,
) -> None:
    """The fuzzing property, for any way of calling the handler.

    GIVEN a token already cached for a known client, WHEN the handler answers hostile events,
    THEN every invariant holds, nothing is logged at ERROR, and the known client is still served
    its cached token without a call upstream.
    """
    seeded = check_response(handle(valid_event()), Sent({CLIENT_ID}, {CLIENT_SECRET}), owners)
    seeded_token = seeded["access_token"]

    @given(hostile_events())
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def answer_hostile(case: tuple[Any, Sent]) -> None:
        event, sent = case
        result = handle(event)
        body = check_response(result, sent, owners)
        hypothesis.event(f"{result['statusCode']} {body.get('error', 'token')}")
        if body.get("access_token") == seeded_token:
            assert sent.carries(CLIENT_ID, CLIENT_SECRET)

    answer_hostile()

    assert error_records.count == 0
    calls = upstream_calls()
    assert json.loads(handle(valid_event())["body"])["access_token"] == seeded_token
    assert upstream_calls() == calls


class CredentialBoundIssuer:
    """Cognito stand-in that remembers which credentials each token was issued for."""

    def __init__(self, clients: dict[str, str]) -> None:
        self.clients = clients
        self.owners: dict[str, tuple[str, str]] = {}
        self.calls = 0

    def fetch(self, request: TokenRequest, deadline: Deadline | None = None) -> UpstreamResponse:
        self.calls += 1
        if self.clients.get(request.client_id) != request.client_secret:
            return json_response(400, {"error": "invalid_client"})
        if not set(request.scopes) <= set(SCOPES):
            return json_response(400, {"error": "invalid_scope"})
        token = jwt_like(self.calls)
        self.owners[token] = (request.client_id, request.client_secret)
        body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        return json_response(200, body)


def test_hostile_events_through_the_service_on_fakes(error_records: ErrorRecords) -> None:
    # GIVEN a warm service on fakes that already cached a token for a known client
    issuer = CredentialBoundIssuer({CLIENT_ID: CLIENT_SECRET, OTHER_CLIENT_ID: OTHER_CLIENT_SECRET})
    clock = FakeClock()
    config = service_settings()
    service = build_token_service(
        settings=config,
        cognito=issuer,
        store=InMemoryTokenStore(),
        keys=KEYS,
        l1=TokenL1(64),  # small: evictions send lookups to the store as well
        clock=clock,
        sleep=clock.sleep,
    )

    def handle(event: Any) -> dict[str, Any]:
        return app.handle_event(event, service, config).to_api_gateway()

    answer_hostile_events_safely(handle, issuer.owners.get, lambda: issuer.calls, error_records)


# ---------------------------------------------------------------------- the Lambda handler on moto


class CredentialRecordingCognito(FakeCognito):
    """The harness's stubbed Cognito, also remembering which credentials each token went to."""

    def __init__(self) -> None:
        super().__init__()
        self.owners: dict[str, tuple[str, str]] = {}

    def _answer(self, request: Received) -> tuple[int, dict[str, str], str]:
        status, headers, body = super()._answer(request)
        if status == 200:
            form = dict(request.form)
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            authorization = request.headers.get("Authorization")
            if authorization is not None:
                raw = base64.b64decode(authorization.strip().split(None, 1)[1]).decode()
                client_id, _, secret = raw.partition(":")  # taken as sent, as Cognito does
            self.owners[json.loads(body)["access_token"]] = (client_id, secret)
        return status, headers, body


def test_hostile_events_through_the_lambda_handler(
    token_table: Any, monkeypatch: pytest.MonkeyPatch, error_records: ErrorRecords
) -> None:
    fake = CredentialRecordingCognito()
    fake.clients[OTHER_CLIENT_ID] = OTHER_CLIENT_SECRET
    with proxy_environment(monkeypatch), serving(fake):

        def handle(event: Any) -> dict[str, Any]:
            result: dict[str, Any] = app.lambda_handler(event, lambda_context())
            return result

        # GIVEN the function (moto's DynamoDB and Secrets Manager, Cognito stubbed)
        answer_hostile_events_safely(
            handle, fake.owners.get, lambda: len(fake.calls), error_records
        )


# ---------------------------------------------------------------------- found by the fuzzing


@pytest.mark.parametrize("value", [" Basic {b64}", "Basic {b64} ", "\tbasic  {b64}"])
def test_a_basic_header_with_whitespace_around_it_gets_a_token(
    value: str, token_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Basic credentials with whitespace around the header value or the scheme's separator
    # (the proxy used to forward the value as sent, which HTTP refuses: a 503)
    b64 = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    event = load_event("token_basic.json")
    event["headers"]["authorization"] = value.format(b64=b64)
    with proxy_environment(monkeypatch), serving(FakeCognito()) as fake:
        # WHEN the handler answers
        result = app.lambda_handler(event, lambda_context())
        # THEN the client gets its token, and Cognito got the credentials as a clean Basic value
        assert result["statusCode"] == 200
        assert json.loads(result["body"])["access_token"] == fake.issued[0]
        assert len(fake.calls) == 1
        assert fake.calls[0].headers["Authorization"] == f"Basic {b64}"
