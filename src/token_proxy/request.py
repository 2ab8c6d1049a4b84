"""Parse and validate a token request from an HTTP API or function URL event (payload format
2.0, which both send).

The result is a :class:`~token_proxy.model.TokenRequest`; anything the token endpoint contract
(DESIGN.md section 2) refuses raises an :class:`~token_proxy.errors.OAuthError`. Nothing else
escapes, whatever the event holds. Error descriptions never quote the caller's text: they name
a parameter by its name only when it is one the endpoint knows (a fixed label), and any other
by its position ("parameter #3 of the body"), because an unknown "name" may be the tail of a
secret sent without form-encoding (``client_secret=ab&cd=ef`` splits into ``ab`` and a
parameter named ``cd``).

In order: the event's route, headers, body and query string (:mod:`token_proxy.http_event`);
the form parameters of each (each at most once, none unknown, body and query agreeing); the
client's authentication (:mod:`token_proxy.client_auth`); the scope set and the other
parameters that shape the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from token_proxy.client_auth import authenticate
from token_proxy.errors import InvalidRequest, InvalidScope, UnsupportedGrantType
from token_proxy.http_event import (
    form_decode,
    has_control_characters,
    query_text,
    read_token_event,
)
from token_proxy.model import TokenRequest

GRANT_TYPE = "client_credentials"

CREDENTIAL_PARAMETERS = frozenset({"client_id", "client_secret"})
#: Parameters forwarded to Cognito besides grant_type, scope and the credentials.
EXTRA_PARAMETER_LIMITS = {"aws_client_metadata": 4096, "resource": 2048}
ALLOWED_PARAMETERS = frozenset(
    {"grant_type", "scope", *CREDENTIAL_PARAMETERS, *EXTRA_PARAMETER_LIMITS}
)
_SHARED_PARAMETERS = tuple(sorted(ALLOWED_PARAMETERS - CREDENTIAL_PARAMETERS))
_ACCEPTED = "grant_type, scope, client_id, client_secret, resource and aws_client_metadata"

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def parse_token_request(event: Mapping[str, Any], *, max_body_bytes: int = 8192) -> TokenRequest:
    """A validated client_credentials request, or an :class:`OAuthError` saying what is wrong."""
    parts = read_token_event(event, max_body_bytes=max_body_bytes)
    body_all = _parse_form(parts.body, where="body")
    query_all = _parse_form(query_text(event, max_body_bytes), where="query string")
    # RFC 6749 section 3.1: a parameter sent without a value is treated as omitted.
    body_params, query_params = _non_empty(body_all), _non_empty(query_all)

    params = _merge(body_params, query_params)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("grant_type is required")
    if grant_type != GRANT_TYPE:  # before the parameter check: other grants have other ones
        raise UnsupportedGrantType("this endpoint supports grant_type=client_credentials only")
    _reject_unknown(body_all, where="body")
    _reject_unknown(query_all, where="query string")

    client_id, client_secret, method, basic_header = authenticate(
        parts.headers, body_params, query_params
    )
    return TokenRequest(
        client_id=client_id,
        client_secret=client_secret,
        scopes=_scopes(params.get("scope")),
        extras=_extras(params),
        auth_method=method,
        basic_authorization=basic_header,
    )


# ------------------------------------------------------------------ form parameters


def _label(name: str, position: int, where: str) -> str:
    """How an error description names a parameter: its name when the endpoint knows it,
    otherwise its position (never the caller's text)."""
    return name if name in ALLOWED_PARAMETERS else f"#{position} of the {where}"


def _parse_form(text: str, *, where: str) -> dict[str, str]:
    """The parameters of one location; each may appear once (RFC 6749 section 3.2).

    Empty values are kept here: a repeated empty parameter is still a repeated parameter.
    """
    params: dict[str, str] = {}
    position = 0
    for segment in text.split("&"):
        if not segment:
            continue
        position += 1
        raw_name, has_value, raw_value = segment.partition("=")
        name = form_decode(raw_name)
        if name is None:
            raise InvalidRequest(
                f"the name of parameter #{position} of the {where} is not valid percent-encoding"
            )
        if not has_value and name not in ALLOWED_PARAMETERS:  # maybe a bare value
            raise InvalidRequest(f"parameter #{position} of the {where} is not a name=value pair")
        shown = _label(name, position, where)
        if name in params:
            if name in ALLOWED_PARAMETERS:
                raise InvalidRequest(f"parameter {name} is repeated in the {where}")
            raise InvalidRequest(f"parameter {shown} repeats an earlier parameter's name")
        value = form_decode(raw_value)
        if value is None:
            raise InvalidRequest(f"parameter {shown} in the {where} is not valid percent-encoding")
        params[name] = value
    return params


def _reject_unknown(params: Mapping[str, str], *, where: str) -> None:
    """Any parameter the proxy would not forward is refused, never silently dropped."""
    for position, name in enumerate(params, start=1):
        if name not in ALLOWED_PARAMETERS:
            raise InvalidRequest(
                f"unsupported parameter #{position} of the {where}: this endpoint accepts "
                f"{_ACCEPTED}"
            )


def _non_empty(params: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in params.items() if value}


def _merge(body: Mapping[str, str], query: Mapping[str, str]) -> dict[str, str]:
    """Body and query parameters other than the credentials, which must agree where both exist."""
    merged: dict[str, str] = {}
    for name in _SHARED_PARAMETERS:
        in_body, in_query = body.get(name), query.get(name)
        if in_body is not None and in_query is not None and in_body != in_query:
            raise InvalidRequest(
                f"parameter {name} has different values in the body and the query string"
            )
        value = in_body if in_body is not None else in_query
        if value is not None:
            merged[name] = value
    return merged


# ------------------------------------------------------------------ scope and extras


def _scopes(value: str | None) -> tuple[str, ...]:
    """The scope set: split on runs of spaces, deduplicated, sorted (RFC 6749 section 3.3)."""
    if value is None:
        return ()
    tokens = {token for token in value.split(" ") if token}
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope(
            'scope must be space-separated tokens of printable ASCII characters except " and \\'
        )
    return tuple(sorted(tokens))


def _extras(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    extras: list[tuple[str, str]] = []
    for name, limit in sorted(EXTRA_PARAMETER_LIMITS.items()):
        value = params.get(name)
        if value is None:
            continue
        if len(value) > limit:
            raise InvalidRequest(f"parameter {name} is longer than {limit} characters")
        if has_control_characters(value):
            raise InvalidRequest(f"parameter {name} contains control characters")
        extras.append((name, value))
    return tuple(extras)
