"""`sam build` works without Docker and ships native wheels for the functions' architecture."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local.cloudformation_template import default_template

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-tools" / "bin" / "sam"
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64

pytestmark = pytest.mark.slow


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.fail("the SAM CLI is missing: run `make install` (make test does it)")
    out = tmp_path_factory.mktemp("sam-build")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{SAM.parent}:{os.environ['PATH']}"}
    subprocess.run(  # noqa: S603 - fixed arguments
        [str(SAM), "build", "--template-file", "template.yaml", "--build-dir", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.mark.parametrize(
    ("function", "package"),
    [("TokenProxyFunction", "token_proxy"), ("RotatorFunction", "rotator")],
)
def test_artifact_holds_the_handler_and_native_code_for_the_function_arch(
    build_dir: Path, function: str, package: str
) -> None:
    # GIVEN the function's declared architecture and handler in template.yaml
    template = default_template()
    props = template["Resources"][function]["Properties"]
    arch = (props.get("Architectures") or template["Globals"]["Function"]["Architectures"])[0]
    module, _, handler = props["Handler"].rpartition(".")

    # WHEN sam build has run (the fixture)
    artifact = build_dir / function

    # THEN the handler module is at the artifact root, as Lambda imports it
    module_file = artifact / (module.replace(".", "/") + ".py")
    assert module_file.is_file()
    assert f"def {handler}(" in module_file.read_text()
    assert (artifact / package / "__init__.py").is_file()
    # AND the set-up both functions share is in it, whole (every module the source tree has)
    shared = sorted(p.name for p in (ROOT / "src" / "function_setup").glob("*.py"))
    assert shared, "src/function_setup holds no module"
    assert sorted(p.name for p in (artifact / "function_setup").glob("*.py")) == shared
    # AND every native extension is built for that architecture
    shared_objects = list(artifact.rglob("*.so"))
    if function == "TokenProxyFunction":
        assert shared_objects, "cryptography ships native code; expected .so files"
    wrong = [p for p in shared_objects if _elf_machine(p) != ELF_MACHINES[arch]]
    assert not wrong, f"native code for the wrong architecture: {wrong[:3]}"
    # AND no test or dev tooling leaked into the artifact
    assert not (artifact / "tests").exists()
    assert not (artifact / "moto").exists()
