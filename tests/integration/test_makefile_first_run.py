"""The Makefile's first run explains itself: before pip installs the development environment
(about a minute), `make` says what is happening and that later runs skip it; when nothing needs
installing, it says nothing of the kind.

The real Makefile runs with a stand-in Python that makes a venv and records its pip command
instead of downloading anything, so make's own decision (install or not) is what is tested.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

STAND_IN_PYTHON = """#!/bin/sh
# -m venv DIR: make DIR/bin/python (this script); -m pip ...: record the command, succeed.
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
echo "pip called: $*" >> "$(dirname "$0")/../pip.log"
echo "(pip output)"
"""


def make(target: str, venv: Path, python: Path) -> list[str]:
    assert MAKE is not None
    result = subprocess.run(  # noqa: S603 - make from PATH, fixed arguments
        [MAKE, "--no-print-directory", target, f"VENV={venv}", f"PYTHON={python}"],
        cwd=REPO_ROOT,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_the_first_install_says_what_happens_and_the_next_run_is_silent(tmp_path: Path) -> None:
    # GIVEN a checkout without a development environment, and a Python that installs nothing
    python = tmp_path / "python3"
    python.write_text(STAND_IN_PYTHON, encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    venv = tmp_path / "venv"
    target = f"{venv}/.installed"

    # WHEN make builds the environment `make run` depends on, twice
    first = make(target, venv, python)
    second = make(target, venv, python)

    # THEN the first run says what it does, and how long, before pip starts
    assert first[0] == (
        f"Setting up {venv}: installing the Python packages of requirements/dev.txt with pip."
    )
    assert first[1] == (
        "This takes about a minute, once; later runs skip it "
        "(make run is then ready in a few seconds)."
    )
    pip_line = next(i for i, line in enumerate(first) if line == "(pip output)")
    assert pip_line > 1
    assert first[-1] == f"{venv} is ready."
    assert (venv / "pip.log").read_text(encoding="utf-8").splitlines() == [
        "pip called: -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt"
    ]
    # AND the second run installs nothing and says nothing about installing
    assert not any("Setting up" in line or "pip" in line for line in second)
