"""The built artifacts, shared by the artifact tests and the benchmark's smoke run: built once
per test session with the real ``sam build`` (see :mod:`local.lambda_artifact`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.lambda_artifact import (
    host_platform,
    install_powertools_layer,
    install_runtime_sdk,
    lambda_python,
    sam_build,
    scratch_directory,
)


@dataclass(frozen=True, slots=True)
class LambdaBuilds:
    """``deployed``: sam build's output for the functions' platform (what `sam deploy` ships);
    ``host``: the same build for this machine's platform (to run it here); the runtime's SDK
    and the tracing layer to put beside it; the Python 3.12 that runs it."""

    deployed: Path
    host: Path
    python: Path
    runtime_sdk: Path
    tracing_layer: Path


@pytest.fixture(scope="session")
def lambda_builds() -> Iterator[LambdaBuilds]:
    python = lambda_python()
    if python is None:
        pytest.fail(
            "no Python 3.12 here (python3.12 on PATH or pyenv's 3.12.x): the artifact checks "
            "and the smoke test run the artifact with the runtime's Python"
        )
    with scratch_directory("lambda-builds-") as root:
        deployed, host = root / "deployed" / "build", root / "host" / "build"
        sam_build({deployed: None, host: host_platform()})
        yield LambdaBuilds(
            deployed=deployed,
            host=host,
            python=python,
            runtime_sdk=install_runtime_sdk(root / "runtime", python),
            tracing_layer=install_powertools_layer(root / "layer" / "python", host_platform()),
        )
