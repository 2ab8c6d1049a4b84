r"""Client authentication at the token endpoint (RFC 6749 section 2.3.1).

Exactly one method per request: HTTP Basic (``Authorization: Basic base64(id:secret)``), or
``client_id`` and ``client_secret`` in the body, or both in the query string. Two methods is
``invalid_request``; a missing or malformed credential is ``invalid_client`` (401, with
``WWW-Authenticate: Basic`` where Basic was tried).

The cache key is built from exactly the credentials forwarded to Cognito. A Basic header is
forwarded as the client sent it (without the whitespace around it), so its credentials are
taken as sent too, without RFC 6749 section 2.3.1's form-url-decoding: Cognito documents the
header as ``Basic Base64Encode(client_id:client_secret)``
(https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html) and takes it
as it is, and its client ids and secrets may contain ``+`` (pattern ``[\w+]+``:
https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_AddUserPoolClientSecret.html),
which form-decoding would turn into a space. Decoding for the key while forwarding the raw
header would let ``a%41`` and ``aA`` share a cache key although Cognito tells them apart. Body
and query credentials are form-decoded, and forwarded form-encoded, so Cognito gets exactly
the decoded values there too.

Error descriptions name the credential, never its value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from token_proxy.errors import InvalidClient, InvalidRequest
from token_proxy.http_event import has_control_characters
from token_proxy.model import AuthMethod

MAX_CREDENTIAL_CHARS = 512

_NO_CREDENTIALS = (
    "client authentication is required: HTTP Basic, or client_id and client_secret "
    "in the body or in the query string"
)
_TWO_METHODS = (
    "use exactly one client authentication method: HTTP Basic, or client_id and "
    "client_secret in the body, or both in the query string"
)


def authenticate(
    headers: Mapping[str, str], body: Mapping[str, str], query: Mapping[str, str]
) -> tuple[str, str, AuthMethod, str | None]:
    """Exactly one client authentication method (RFC 6749 section 2.3.1): the credentials, the
    method, and for Basic the header value to forward upstream."""
    authorization = headers.get("authorization")
    basic = _parse_basic(authorization) if authorization is not None else None
    methods: list[AuthMethod] = []
    if basic is not None:
        methods.append("basic")
    if "client_secret" in body:
        methods.append("body")
    if "client_secret" in query:
        methods.append("query")
    if len(methods) > 1:
        raise InvalidRequest(_TWO_METHODS)
    client_ids = {p["client_id"] for p in (body, query) if "client_id" in p}
    if not methods:
        if len(client_ids) > 1:
            raise InvalidRequest("client_id has different values in the body and the query string")
        if client_ids:
            raise InvalidClient("client_secret is missing")
        raise InvalidClient(_NO_CREDENTIALS, basic_attempted=True)

    method = methods[0]
    basic_header = None
    if basic is not None:
        client_id, client_secret, basic_header = basic
    else:
        params, where = (body, "body") if method == "body" else (query, "query string")
        if "client_id" not in params:
            raise InvalidClient(f"client_id is missing from the {where}, next to client_secret")
        client_id, client_secret = params["client_id"], params["client_secret"]
        _check_credential(client_id, "client_id")
        _check_credential(client_secret, "client_secret")
    # A client_id elsewhere without a secret is tolerated when it names the same client.
    if client_ids - {client_id}:
        raise InvalidRequest("client_id does not match the authenticated client")
    return client_id, client_secret, method, basic_header


def _parse_basic(value: str) -> tuple[str, str, str]:
    """(client_id, client_secret, header to forward) from ``Authorization: Basic
    base64(id:secret)``, the credentials taken as sent (see the module's docstring).

    The header forwarded upstream carries the client's own credentials without the whitespace
    around them (an HTTP client refuses a header value with leading whitespace).
    """
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(
            "the Authorization header must use the Basic scheme", basic_attempted=True
        )
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError as exc:  # binascii.Error, non-ASCII input and UnicodeDecodeError
        raise InvalidClient(
            "the Basic credentials are not valid base64 of UTF-8 text", basic_attempted=True
        ) from exc
    client_id, has_colon, client_secret = decoded.partition(":")
    if not has_colon:
        raise InvalidClient(
            "the Basic credentials must be client_id:client_secret", basic_attempted=True
        )
    _check_credential(client_id, "client_id", basic_attempted=True)
    _check_credential(client_secret, "client_secret", basic_attempted=True)
    return client_id, client_secret, f"Basic {credentials}"


def _check_credential(value: str, what: str, *, basic_attempted: bool = False) -> None:
    problem = None
    if not value:
        problem = f"{what} is missing"
    elif len(value) > MAX_CREDENTIAL_CHARS:
        problem = f"{what} is longer than {MAX_CREDENTIAL_CHARS} characters"
    elif has_control_characters(value):
        problem = f"{what} contains control characters"
    if problem is not None:
        raise InvalidClient(problem, basic_attempted=basic_attempted)
