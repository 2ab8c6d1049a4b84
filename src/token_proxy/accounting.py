"""The Cognito call line: one INFO log record per call the proxy makes to Cognito.

Cognito bills every successful token request, so "who costs what" is a question about these
calls. Per-client figures live in the function's log, read by the saved CloudWatch Logs
Insights queries in template.yaml (``AWS::Logs::QueryDefinition``), not in metrics: a metric
with a client dimension would be one more custom metric per client on the bill. Logs Insights
discovers the fields of a JSON log event
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_AnalyzeLogData-discoverable-fields.html),
and Powertools writes each record as one JSON object, so every field below is a query field.

The record (:func:`cognito_call_fields`), besides Powertools' own ``message`` (always
:data:`COGNITO_CALL`), ``level``, ``timestamp`` and ``function_request_id``:

- ``cognito_call``: why Cognito was called, ``miss`` or ``refresh-ahead``;
- ``status``: Cognito's HTTP status (absent when Cognito gave no answer);
- ``elapsed_ms``: the call's wall time, retries and backoff included;
- ``key``: the first eight hex characters of the keyed cache key (one client, secret, scope
  set and parameters; useless to anyone without the proxy's key);
- ``client_fp``: the client id's keyed fingerprint (:mod:`token_proxy.cache_key`), on every
  line, so the calls of one client id group together whether or not Cognito confirmed it;
- ``client_id``: only with a 200, when Cognito has confirmed the id by issuing a token. An id
  that Cognito refused is a value the caller sent and nobody confirmed (it may be a secret
  typed into the wrong field), so it is never logged;
- ``error``: Cognito's RFC 6749 ``error`` code for any other answer (``other`` when Cognito
  sent something else), or :data:`UNAVAILABLE` when it gave no usable answer (429, 5xx,
  timeouts after the client's retries, or no origin secret).

Nothing else from the request or the answer is logged: never a secret, a token or a body.
:func:`call_cognito` makes every call the service makes, and writes its line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from token_proxy.deadline import Deadline
from token_proxy.freshness import json_object
from token_proxy.model import TokenRequest, UpstreamResponse

if TYPE_CHECKING:
    from token_proxy.ports import CognitoClient


logger = logging.getLogger(__name__)

COGNITO_CALL = "Cognito call"
MISS = "miss"
REFRESH_AHEAD = "refresh-ahead"
UNAVAILABLE = "unavailable"
#: The error codes of RFC 6749 section 5.2 and the ones Cognito adds; anything else is "other".
KNOWN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)
OTHER_ERROR = "other"


def call_cognito(
    cognito: CognitoClient,
    request: TokenRequest,
    deadline: Deadline,
    *,
    reason: str,
    key: str,
    client_fp: str,
    clock: Callable[[], float],
) -> UpstreamResponse:
    """Cognito's answer to ``request``, and its Cognito call line whatever the outcome (when
    Cognito gives no usable answer, the client's exception propagates after the line)."""
    started = clock()
    answer: UpstreamResponse | None = None
    try:
        answer = cognito.fetch(request, deadline)
    finally:
        fields = cognito_call_fields(
            reason=reason,
            key=key,
            client_id=request.client_id,
            client_fp=client_fp,
            elapsed_seconds=clock() - started,
            answer=answer,
        )
        logger.info(COGNITO_CALL, extra=fields)
    return answer


def cognito_call_fields(
    *,
    reason: str,
    key: str,
    client_id: str,
    client_fp: str,
    elapsed_seconds: float,
    answer: UpstreamResponse | None,
) -> dict[str, Any]:
    """The ``extra`` fields of one Cognito call line (``answer`` None: no usable answer)."""
    fields: dict[str, Any] = {
        "cognito_call": reason,
        "elapsed_ms": round(max(0.0, elapsed_seconds) * 1000.0, 1),
        "key": key[:8],
        "client_fp": client_fp,
    }
    if answer is None:
        fields["error"] = UNAVAILABLE
        return fields
    fields["status"] = answer.status
    if answer.status == 200:
        fields["client_id"] = client_id  # confirmed: Cognito issued a token for it
    else:
        fields["error"] = _error_code(answer)
    return fields


def _error_code(answer: UpstreamResponse) -> str:
    body = json_object(answer)
    error = body.get("error") if body is not None else None
    return error if isinstance(error, str) and error in KNOWN_ERRORS else OTHER_ERROR
