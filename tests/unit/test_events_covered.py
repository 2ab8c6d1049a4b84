"""Every file in events/ belongs to a family that a test runs through its handler.

- token_*.json: tests/integration/test_token_events.py (each file, expected status)
- rotation_*.json and prune.json: tests/integration/test_rotation_events.py
- invalidate_client.json: tests/integration/test_invalidation.py
A new kind of event file fails here until a test runs it.
"""

from __future__ import annotations

from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"
TESTS = Path(__file__).resolve().parents[1]
FAMILIES = {
    "token_": "integration/test_token_events.py",
    "rotation_": "integration/test_rotation_events.py",
    "prune.json": "integration/test_rotation_events.py",
    "invalidate_client.json": "integration/test_invalidation.py",
}


def test_every_event_file_is_run_by_a_handler_test() -> None:
    files = sorted(path.name for path in EVENTS.glob("*.json"))
    assert files, "events/ is empty"
    for name in files:
        owners = [test for prefix, test in FAMILIES.items() if name.startswith(prefix)]
        assert owners, f"events/{name} is not run by any test: add it to a handler test"
        test_source = (TESTS / owners[0]).read_text(encoding="utf-8")
        family = next(prefix for prefix in FAMILIES if name.startswith(prefix))
        assert family.rstrip("_") in test_source, f"{owners[0]} does not load {family} files"
