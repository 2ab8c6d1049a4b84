"""cfn-lint, `sam validate --lint` and checkov on the template as it deploys with
``WebAcl=External`` (its default switched), as `make template` runs them on the default
(``Create``): both modes are clean. cfn-lint checks every Condition either way; checkov and SAM
read the parameters' defaults, so the External variant is checked as a file of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools" / "bin"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
DEFAULT = "  WebAcl:\n    Type: String\n    Default: Create\n"


@pytest.fixture(scope="module")
def external_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (TOOLS / "cfn-lint").exists() or not CHECKOV.exists():
        pytest.fail("the template tools are missing: run `make install` (make test does it)")
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    assert text.count(DEFAULT) == 1
    directory = tmp_path_factory.mktemp("external")
    shutil.copytree(ROOT / "src", directory / "src")  # CodeUri, as beside the real template
    path = directory / "template.yaml"
    path.write_text(text.replace(DEFAULT, DEFAULT.replace("Create", "External")), encoding="utf-8")
    return path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{TOOLS}:{os.environ['PATH']}"}
    return subprocess.run(  # noqa: S603 - the repository's own tools
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_cfn_lint_is_clean_with_web_acl_external(external_template: Path) -> None:
    result = run([str(TOOLS / "cfn-lint"), str(external_template)], external_template.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_is_clean_with_web_acl_external(external_template: Path) -> None:
    result = run(
        [str(TOOLS / "sam"), "validate", "--lint", "--template-file", str(external_template)],
        external_template.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_checkov_is_clean_with_web_acl_external(external_template: Path) -> None:
    result = run(
        [
            str(CHECKOV),
            "--quiet",
            "--compact",
            "--skip-download",
            "--framework",
            "cloudformation",
            "-f",
            str(external_template),
        ],
        external_template.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
