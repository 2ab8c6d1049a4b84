"""The budget's counters: calls counted exactly across the fleet, one item per counter.

A counter item (``pk`` ``budget#...``, see :mod:`token_proxy.budget`) holds ``window`` (the
time window it counts in) and ``calls``, and never a client id. Both are changed only by
conditional atomic updates (``ADD``), so concurrent containers never lose or double a call,
and a counter is reset in place when a new window starts: the table holds one item per
counter, never one per window.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from token_proxy.errors import StoreUnavailable
from token_proxy.store.attributes import TableAdapter, condition_failed, old_item, ttl, wire_time

#: A budget counter counts a call while it is in the window and under the limit.
_COUNT_IN_WINDOW = (
    "attribute_type(#window, :n) AND attribute_type(#calls, :n)"
    " AND #window = :window AND #calls < :limit"
)


class BudgetCounters(TableAdapter):
    """Counts calls against a limit per time window."""

    def count_call(self, counter: str, *, window: int, limit: int, expires_at: float) -> bool:
        """Count one call against ``counter`` in time window ``window`` unless it already holds
        ``limit`` calls there; True when counted.

        A counter still in an older window (or malformed) is reset to this window first.
        """
        try:
            try:
                self._add_call(
                    counter, window, limit, ReturnValuesOnConditionCheckFailure="ALL_OLD"
                )
                return True
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                if wire_time(old_item(exc).get("window")) == float(window):
                    return False  # this window's calls are spent
            try:
                self._table.update_item(
                    Key={"pk": counter},
                    UpdateExpression="SET #window = :window, #calls = :one, #ttl = :ttl",
                    ConditionExpression=(
                        "attribute_not_exists(#window) OR NOT attribute_type(#window, :n)"
                        " OR #window < :window"
                    ),
                    ExpressionAttributeNames={
                        "#window": "window",
                        "#calls": "calls",
                        "#ttl": "ttl",
                    },
                    ExpressionAttributeValues={
                        ":window": window,
                        ":one": 1,
                        ":n": "N",
                        ":ttl": ttl(expires_at),
                    },
                )
                return limit >= 1
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
            # Another request opened this window in between: count in it once more.
            self._add_call(counter, window, limit)
            return True
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreUnavailable("token table counter failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("token table counter failed") from exc

    def _add_call(self, counter: str, window: int, limit: int, **options: Any) -> None:
        """Count one call in ``window`` if it is the counter's window and under ``limit``."""
        self._table.update_item(
            Key={"pk": counter},
            UpdateExpression="ADD #calls :one",
            ConditionExpression=_COUNT_IN_WINDOW,
            ExpressionAttributeNames={"#window": "window", "#calls": "calls"},
            ExpressionAttributeValues={":one": 1, ":window": window, ":limit": limit, ":n": "N"},
            **options,
        )
