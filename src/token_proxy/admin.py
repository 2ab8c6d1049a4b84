"""Operator actions on the token cache, sent to the token proxy function by direct invocation.

The token table's KMS key lets only the proxy's role decrypt, so operators cannot read or
delete cache items themselves: they ask the function, e.g.::

    aws lambda invoke --function-name <TokenProxyFunctionName> \\
        --cli-binary-format raw-in-base64-out \\
        --payload '{"action": "invalidate", "client_id": "<app client id>"}' out.json

``invalidate`` deletes every cached token of one client id (after its secret was revoked or
rotated in Cognito), in batches of 25 (BatchWriteItem), a page of the table's client index at
a time, within the invocation's deadline. The answer says how many items it deleted and
whether it got through all of them (``"complete": false``: run it again; every step is
idempotent). Answers that are not tokens are never stored, so no flood of wrong secrets can
make an invalidation long. The container that runs it empties its own L1; other warm
containers revalidate their L1 copies against DynamoDB within ``L1_MAX_AGE_SECONDS``, so the
invalidation is complete after that long.

Dispatch depends on the event's shape: an HTTP API or function URL (payload 2.0) event
always carries ``version``, ``routeKey`` and ``requestContext``, and whatever a client sends
(body, headers, query string) arrives nested inside it, never as a top-level key. So no HTTP
request can become an admin event; only a principal allowed ``lambda:InvokeFunction`` on the
function (and not only through its function URL) can send one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from aws_lambda_powertools.metrics import MetricUnit

from token_proxy.errors import StoreUnavailable
from token_proxy.telemetry import INVALIDATED_ITEMS

if TYPE_CHECKING:
    from token_proxy.ports import CacheAdmin, MetricsSink


logger = logging.getLogger(__name__)

ACTION_KEY = "action"
INVALIDATE = "invalidate"
#: Keys every HTTP API payload 2.0 event has; an event with any of them is never an admin event.
HTTP_API_KEYS = frozenset({"version", "routeKey", "rawPath", "requestContext"})
_ADMIN_KEYS = frozenset({ACTION_KEY, "client_id"})
MAX_CLIENT_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
USAGE = '{"action": "invalidate", "client_id": "<app client id>"}'


class AdminEventError(ValueError):
    """The admin event is malformed (the message quotes no value from it)."""


class InvalidationFailed(RuntimeError):
    """The token table could not be updated; running the invalidation again is safe."""


class InvalidateClient(NamedTuple):
    client_id: str


def is_admin_event(event: object) -> bool:
    """True for a direct invocation carrying an ``action`` (never for an HTTP API event)."""
    return (
        isinstance(event, Mapping)
        and ACTION_KEY in event
        and not any(key in event for key in HTTP_API_KEYS)
    )


def parse_admin_event(event: Mapping[str, Any]) -> InvalidateClient:
    if set(event) - _ADMIN_KEYS:
        raise AdminEventError(f"unexpected keys in the admin event; expected {USAGE}")
    if event.get(ACTION_KEY) != INVALIDATE:
        raise AdminEventError(f"unknown action; the token proxy accepts {USAGE}")
    client_id = event.get("client_id")
    if (
        not isinstance(client_id, str)
        or not client_id.strip()
        or len(client_id) > MAX_CLIENT_ID_LENGTH
        or _CONTROL.search(client_id)
    ):
        raise AdminEventError(f"client_id must be an app client id; expected {USAGE}")
    return InvalidateClient(client_id)


def handle_admin_event(
    event: Mapping[str, Any],
    cache: CacheAdmin,
    *,
    metrics: MetricsSink,
    l1_max_age_seconds: float,
    remaining_seconds: float | None = None,
) -> dict[str, Any]:
    """Carry out the action within ``remaining_seconds`` (the invocation's time left); raises
    AdminEventError or InvalidationFailed (the invocation then fails, so ``aws lambda invoke``
    reports a FunctionError). The client id is logged as its fingerprint only: an operator
    may paste the wrong value."""
    command = parse_admin_event(event)
    client_fp = cache.fingerprint(command.client_id)
    try:
        deletion = cache.invalidate_client(command.client_id, remaining_seconds=remaining_seconds)
    except StoreUnavailable as exc:
        logger.error(
            "client invalidation failed",
            extra={"client_fp": client_fp, "error": type(exc).__name__},
        )
        raise InvalidationFailed(
            "the token table could not be updated; run the invalidation again"
        ) from exc
    metrics.add_metric(INVALIDATED_ITEMS, MetricUnit.Count, deletion.deleted)
    logger.info(
        "client invalidated",
        extra={
            "client_fp": client_fp,
            "deleted_items": deletion.deleted,
            "complete": deletion.complete,
        },
    )
    return {
        "action": INVALIDATE,
        "client_id": command.client_id,
        "deleted_items": deletion.deleted,
        "complete": deletion.complete,
        "complete_within_seconds": l1_max_age_seconds,
    }
