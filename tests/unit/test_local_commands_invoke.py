"""`make invoke` sends every shipped event file to the function that handles it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.commands.invoke import ROTATOR, TOKEN_PROXY, UnsupportedEventError, function_for

EVENTS = sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json"))


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_every_event_file_has_a_function(path: Path) -> None:
    # GIVEN a shipped event file
    event = json.loads(path.read_text())

    # WHEN make invoke picks its function
    function = function_for(event)

    # THEN token requests and the operator command go to the proxy, the rest to the rotator
    expected = ROTATOR if path.name.startswith(("rotation_", "prune")) else TOKEN_PROXY
    assert function == expected


def test_an_unknown_event_is_refused_clearly() -> None:
    with pytest.raises(UnsupportedEventError, match="invalidate"):
        function_for({"hello": "world"})
