"""The admin event: recognised by its shape only, validated, and carried out through the cache."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function_setup.metrics import RecordingMetrics
from tests.fakes.token_requests import KEYS
from token_proxy import telemetry
from token_proxy.admin import (
    AdminEventError,
    InvalidateClient,
    InvalidationFailed,
    handle_admin_event,
    is_admin_event,
    parse_admin_event,
)
from token_proxy.errors import StoreUnavailable
from token_proxy.model import Deletion

EVENTS = Path(__file__).resolve().parents[2] / "events"
HTTP_EVENT_FILES = sorted(EVENTS.glob("token_*.json"))


class FakeCache:
    def __init__(
        self, deleted: int = 0, failure: Exception | None = None, complete: bool = True
    ) -> None:
        self.deleted = deleted
        self.complete = complete
        self.failure = failure
        self.invalidated: list[tuple[str, float | None]] = []

    def invalidate_client(
        self, client_id: str, *, remaining_seconds: float | None = None
    ) -> Deletion:
        self.invalidated.append((client_id, remaining_seconds))
        if self.failure is not None:
            raise self.failure
        return Deletion(self.deleted, self.complete)

    def fingerprint(self, client_id: str) -> str:
        return KEYS.fingerprint(client_id)


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_event_file_is_an_admin_event() -> None:
    event = load(EVENTS / "invalidate_client.json")
    assert is_admin_event(event)
    assert parse_admin_event(event) == InvalidateClient("1example23456789")


@pytest.mark.parametrize("path", HTTP_EVENT_FILES, ids=lambda p: p.name)
def test_no_http_api_event_is_an_admin_event_even_with_a_top_level_action(path: Path) -> None:
    # GIVEN an HTTP API event, with (impossibly) an admin command added at the top level
    event = load(path)
    forged = {**copy.deepcopy(event), "action": "invalidate", "client_id": "1example23456789"}

    # THEN neither is an admin event: the HTTP API's own keys rule it out
    assert not is_admin_event(event)
    assert not is_admin_event(forged)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    path=st.sampled_from(HTTP_EVENT_FILES),
    body=st.text(max_size=200),
    headers=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=5),
    query=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=5),
    extra=st.dictionaries(st.text(max_size=12), _json_values, max_size=4),
)
def test_whatever_a_client_sends_an_http_api_event_never_dispatches_as_admin(
    path: Path,
    body: str,
    headers: dict[str, str],
    query: dict[str, str],
    extra: dict[str, Any],
) -> None:
    # GIVEN an HTTP API event with any body, headers, query string and extra top-level keys
    event = load(path)
    event.update(extra)
    event.update(
        {
            "version": "2.0",
            "routeKey": "POST /oauth2/token",
            "body": body,
            "headers": headers,
            "queryStringParameters": query,
            "requestContext": event.get("requestContext") or {},
        }
    )
    # THEN it is never an admin event
    assert not is_admin_event(event)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "flush"}, "unknown action"),
        ({"action": "INVALIDATE", "client_id": "abc"}, "unknown action"),
        ({"action": "invalidate"}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": ""}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": "  "}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": 42}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": "a\nb"}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": "x" * 257}, "client_id must be an app client id"),
        ({"action": "invalidate", "client_id": "abc", "all": True}, "unexpected keys"),
    ],
)
def test_a_malformed_admin_event_is_refused_and_nothing_is_invalidated(
    event: dict[str, Any], message: str
) -> None:
    cache = FakeCache()
    with pytest.raises(AdminEventError, match=message):
        handle_admin_event(event, cache, metrics=RecordingMetrics(), l1_max_age_seconds=30)
    assert cache.invalidated == []


@pytest.mark.parametrize("complete", [True, False])
def test_an_invalidation_reports_what_it_deleted_and_whether_to_run_again(
    complete: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a cache that deletes three items of the client (all of them, or not yet all)
    cache, metrics = FakeCache(deleted=3, complete=complete), RecordingMetrics()

    # WHEN the operator invalidates the client, with 12 s left in the invocation
    result = handle_admin_event(
        {"action": "invalidate", "client_id": "3k1d0c7svbq2example0client"},
        cache,
        metrics=metrics,
        l1_max_age_seconds=30,
        remaining_seconds=12.0,
    )

    # THEN the answer says how many, whether every item went, and how soon it is complete;
    # the metric counts the items, and the log names the client by its fingerprint only
    assert result == {
        "action": "invalidate",
        "client_id": "3k1d0c7svbq2example0client",
        "deleted_items": 3,
        "complete": complete,
        "complete_within_seconds": 30,
    }
    assert cache.invalidated == [("3k1d0c7svbq2example0client", 12.0)]
    assert dict(metrics.counts) == {telemetry.INVALIDATED_ITEMS: 3}
    (record,) = [r for r in caplog.records if r.getMessage() == "client invalidated"]
    assert record.__dict__["client_fp"] == KEYS.fingerprint("3k1d0c7svbq2example0client")
    assert "3k1d0c7svbq2example0client" not in repr(record.__dict__)


def test_a_table_failure_fails_the_invocation_with_a_retry_hint() -> None:
    cache = FakeCache(failure=StoreUnavailable("token table invalidation failed"))
    metrics = RecordingMetrics()
    with pytest.raises(InvalidationFailed, match="run the invalidation again"):
        handle_admin_event(
            {"action": "invalidate", "client_id": "abc"},
            cache,
            metrics=metrics,
            l1_max_age_seconds=30,
        )
    assert [client for client, _ in cache.invalidated] == ["abc"]
    assert dict(metrics.counts) == {}
