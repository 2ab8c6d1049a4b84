"""Shared fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.moto_server import RunningMotoServer, start_moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[RunningMotoServer]:
    """moto's server on loopback, for one test module (a module that defines its own keeps it)."""
    server = start_moto_server()
    yield server
    server.stop()
