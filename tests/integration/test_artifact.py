"""What Lambda runs: the artifacts `sam build` makes (src/Makefile), checked and then run.

The deployed build (the functions' platform, Linux arm64) is checked file by file: the handler
at the root, native code for the function's architecture, no AWS SDK and no X-Ray SDK, a size
within budget, and bytecode for Python 3.12 beside every .py file, valid after zip and unzip.
The same build for this machine's platform runs as Lambda runs it: a read-only copy, Python
3.12 in isolated mode, only the runtime's boto3 and botocore beside it (the versions of
requirements/lambda-runtime.txt), every file in events/ through its handler against moto's
server and the local issuer on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation_resources import PROXY_FUNCTION, ROTATOR_FUNCTION
from local.cloudformation_template import default_template
from local.commands.rotate import ROTATION_STEPS, finish_rotation, stage_pending_version
from local.lambda_artifact import (
    MAKE_SRC,
    ArtifactFunction,
    LambdaSandbox,
    directory_bytes,
    python_files_without_bytecode,
    read_only_copy,
    scratch_directory,
    time_import,
)
from local.lambda_runtime import FunctionSpec
from local.moto_server import aws_client
from local.stack import LocalStack, StackConfig
from tests.integration.conftest import LambdaBuilds
from tests.integration.test_token_events import EXPECTED_STATUS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
FUNCTIONS = {PROXY_FUNCTION: "token_proxy", ROTATOR_FUNCTION: "rotator"}
#: Top-level packages no artifact may hold: the runtime provides the SDK as a matched pair,
#: and the X-Ray SDK comes only with the tracing layer.
SDK_PACKAGES = ("boto3", "botocore", "s3transfer", "aws_xray_sdk")
#: The proxy's Cognito client sends its HTTP with urllib3 and certifi's CA bundle; requests and
#: what it imports (charset_normalizer, idna) stay out of the proxy's cold start. The rotator
#: keeps requests.
HTTP_PACKAGES = {
    PROXY_FUNCTION: ({"urllib3", "certifi"}, {"requests", "charset_normalizer", "idna"}),
    ROTATOR_FUNCTION: ({"requests", "urllib3", "certifi"}, set()),
}
#: Unzipped size budgets. Lambda's limit is 250 MB unzipped, layers included ("Working with
#: .zip file archives for Python Lambda functions"); before the SDK left the artifact the
#: proxy's was 46.9 MiB without any bytecode.
SIZE_BUDGET_MIB = {PROXY_FUNCTION: 32, ROTATOR_FUNCTION: 16}
#: PEP 552: a pyc's flags word; bit 0 hash-based, bit 1 checked against the source.
UNCHECKED_HASH_FLAGS = 0b01
#: Run by Python 3.12: every .py under the root has a pyc 3.12 loads without reading the
#: source (its magic number, unchecked-hash flags, and the hash of the source as it is).
PYC_CHECK = r"""
import importlib.util, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
problems, count = [], 0
for source in sorted(root.rglob("*.py")):
    count += 1
    pyc = pathlib.Path(importlib.util.cache_from_source(str(source)))
    name = str(source.relative_to(root))
    if not pyc.is_file():
        problems.append([name, "no pyc"])
        continue
    data = pyc.read_bytes()
    if data[:4] != importlib.util.MAGIC_NUMBER:
        problems.append([name, "another Python's magic number"])
    elif int.from_bytes(data[4:8], "little") != int(sys.argv[2]):
        problems.append([name, "not unchecked-hash"])
    elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
        problems.append([name, "compiled from another source"])
print(json.dumps({"python_files": count, "problems": problems}))
"""


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def _zip(root: Path, target: Path) -> Path:
    """``root`` zipped as `sam deploy` uploads it."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root))
    return target


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n  {line}", end="")


# ---------------------------------------------------------------------- the deployed artifact
@pytest.mark.parametrize(("function", "package"), sorted(FUNCTIONS.items()))
def test_artifact_holds_the_handler_and_native_code_for_the_function_arch(
    lambda_builds: LambdaBuilds, function: str, package: str
) -> None:
    # GIVEN the function's declared architecture and handler in template.yaml
    template = default_template()
    props = template["Resources"][function]["Properties"]
    arch = (props.get("Architectures") or template["Globals"]["Function"]["Architectures"])[0]
    module, _, handler = props["Handler"].rpartition(".")

    # WHEN sam build has run (the fixture)
    artifact = lambda_builds.deployed / function

    # THEN the handler module is at the artifact root, as Lambda imports it
    module_file = artifact / (module.replace(".", "/") + ".py")
    assert module_file.is_file()
    assert f"def {handler}(" in module_file.read_text()
    assert (artifact / package / "__init__.py").is_file()
    # AND the function's package and the set-up both functions share are in it, whole (every
    # module the source tree has, subpackages included)
    for copied in (package, "function_setup"):
        source = _modules(ROOT / "src" / copied)
        assert source, f"src/{copied} holds no module"
        assert _modules(artifact / copied) == source
    # AND every native extension is built for that architecture
    shared_objects = list(artifact.rglob("*.so"))
    if function == PROXY_FUNCTION:
        assert shared_objects, "cryptography ships native code; expected .so files"
    wrong = [p for p in shared_objects if _elf_machine(p) != ELF_MACHINES[arch]]
    assert not wrong, f"native code for the wrong architecture: {wrong[:3]}"
    # AND no test or dev tooling leaked into the artifact
    assert not (artifact / "tests").exists()
    assert not (artifact / "moto").exists()


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_the_artifact_ships_no_aws_sdk_and_stays_within_its_size_budget(
    lambda_builds: LambdaBuilds, function: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the deployed artifact
    artifact = lambda_builds.deployed / function

    # WHEN its top-level entries and its size are read
    names = {entry.name.split("-")[0] for entry in artifact.iterdir()}
    unzipped = directory_bytes(artifact)
    bytecode = sum(p.stat().st_size for p in artifact.rglob("*.pyc"))
    zipped = _zip(artifact, tmp_path / "artifact.zip").stat().st_size
    _report(
        capsys,
        f"{function}: {unzipped / 2**20:.1f} MiB unzipped (of which {bytecode / 2**20:.1f} MiB "
        f"bytecode), {zipped / 2**20:.1f} MiB zipped, {len(list(artifact.rglob('*.py')))} .py",
    )

    # THEN neither the SDK (nor its distribution metadata) nor the X-Ray SDK is shipped
    assert not names & set(SDK_PACKAGES), sorted(names & set(SDK_PACKAGES))
    # AND the HTTP client is the function's own: for the proxy, urllib3 without requests
    shipped, left_out = HTTP_PACKAGES[function]
    assert shipped <= names, sorted(shipped - names)
    assert not names & left_out, sorted(names & left_out)
    assert not (artifact / "bin").exists()  # console scripts of the build machine
    # AND it stays within its budget
    assert unzipped <= SIZE_BUDGET_MIB[function] * 2**20


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_shipped_python_file_has_bytecode_python_312_loads_as_it_is(
    lambda_builds: LambdaBuilds, function: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the deployed artifact, zipped and unzipped as `sam deploy` and Lambda do (new file
    # times, same contents)
    archive = _zip(lambda_builds.deployed / function, tmp_path / "artifact.zip")
    unzipped = tmp_path / "task"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unzipped)

    # WHEN Python 3.12 checks every .py file's pyc
    flags = UNCHECKED_HASH_FLAGS
    completed = subprocess.run(  # noqa: S603 - fixed arguments
        [str(lambda_builds.python), "-I", "-S", "-c", PYC_CHECK, str(unzipped), str(flags)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(completed.stdout)
    _report(capsys, f"{function}: {result['python_files']} .py files, each with a 3.12 pyc")

    # THEN each one has a pyc that 3.12 loads without looking at the source
    assert result["python_files"] > 0
    assert result["problems"] == []
    assert python_files_without_bytecode(unzipped) == []


def test_without_python_312_the_build_succeeds_without_bytecode_and_says_so(
    tmp_path: Path,
) -> None:
    # GIVEN no interpreter for the bytecode (as on a machine without Python 3.12)
    artifacts = tmp_path / "RotatorFunction"
    env = {**os.environ, "LAMBDA_PYTHON_BIN": "", "ARTIFACTS_DIR": str(artifacts)}

    # WHEN src/Makefile builds the rotator, as sam build runs it
    completed = subprocess.run(  # noqa: S603 - fixed arguments
        [*MAKE_SRC, "build-RotatorFunction"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    # THEN it succeeds, says so in one line, and the artifact has no bytecode
    assert completed.returncode == 0, completed.stderr[-2000:]
    notes = [line for line in completed.stderr.splitlines() if "no Python 3.12" in line]
    assert len(notes) == 1
    assert "Lambda compiles every module at each cold start" in notes[0]
    assert (artifacts / "rotator" / "app.py").is_file()
    assert not list(artifacts.rglob("*.pyc"))


# ---------------------------------------------------------------------- the artifact, running
@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """moto's server with the template's resources and the local issuer (the events/ client);
    the functions run from the artifact, not from here."""
    config = StackConfig(
        moto_port=0, issuer_port=0, serve_proxy=False, state_file=None, containers=0
    )
    with LocalStack(config) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox_root() -> Iterator[Path]:
    with scratch_directory("lambda-sandbox-") as root:
        yield root


def _sandbox(builds: LambdaBuilds, root: Path, function: str, **layers: Path) -> LambdaSandbox:
    task = root / function / "var-task"
    if not task.exists():
        read_only_copy(builds.host / function, task)
    return LambdaSandbox(
        builds.python, task, runtime=(builds.runtime_sdk,), layers=tuple(layers.values())
    )


def _function(
    spec: FunctionSpec | None, sandbox: LambdaSandbox, log: Path, **environment: str
) -> ArtifactFunction:
    assert spec is not None
    if environment:
        spec = FunctionSpec(**{**_fields(spec), "environment": {**spec.environment, **environment}})
    return ArtifactFunction(spec, sandbox, log)


def _modules(package: Path) -> list[str]:
    """The .py files under ``package``, relative to it."""
    return sorted(str(p.relative_to(package)) for p in package.rglob("*.py"))


def _fields(spec: FunctionSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in FunctionSpec.__dataclass_fields__}


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def _load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def test_every_event_file_runs_through_the_built_handlers_on_python_312(
    lambda_builds: LambdaBuilds, stack: LocalStack, sandbox_root: Path
) -> None:
    # GIVEN both artifacts as Lambda runs them: read-only, Python 3.12, the runtime's SDK
    proxy_box = _sandbox(lambda_builds, sandbox_root, PROXY_FUNCTION)
    rotator_box = _sandbox(lambda_builds, sandbox_root, ROTATOR_FUNCTION)
    before = _tree(proxy_box.task_root)
    proxy = _function(stack.proxy_spec, proxy_box, sandbox_root / "proxy.log")
    rotator = _function(stack.rotator_spec, rotator_box, sandbox_root / "rotator.log")
    state = stack.state()
    ran: set[str] = set()
    try:
        # WHEN every token event goes to the proxy
        for name, status in sorted(EXPECTED_STATUS.items()):
            result = proxy.invoke(_load(name))
            ran.add(name)
            # THEN each gets the status the in-process tests expect, as RFC 6749 JSON
            assert result.ok, (name, result)
            assert result.payload["statusCode"] == status, (name, result.payload)
            body = json.loads(result.payload["body"])
            if status == 200:
                assert set(body) == {"access_token", "expires_in", "token_type"}
                assert body["access_token"].count(".") == 2  # the local issuer's RS256 JWT
                assert 0 < body["expires_in"] <= 3600
            else:
                assert set(body) == {"error", "error_description"}
        # AND the tokens were cached in moto's table, through the runtime's botocore
        dynamodb = aws_client("dynamodb", stack.moto_url, state["region"])
        table = state["resources"]["table_name"]
        assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] > 0

        # WHEN the operator's invalidation event goes to the proxy
        invalidated = proxy.invoke(_load("invalidate_client.json"))
        ran.add("invalidate_client.json")
        # THEN the example client's cached tokens are gone
        assert invalidated.ok, invalidated
        assert invalidated.payload["client_id"] == "1example23456789"
        assert invalidated.payload["deleted_items"] >= 1

        # WHEN Secrets Manager's four steps (the event files, sharing one token) go to the
        # rotator, with the secret's ARN in SecretId and the pending version staged first
        steps = sorted(EVENTS.glob("rotation_*.json"), key=lambda p: _step_index(_load(p.name)))
        (token,) = {_load(path.name)["ClientRequestToken"] for path in steps}
        stage_pending_version(state, rotator, token)
        results = []
        for path in steps:
            event = {**_load(path.name), "SecretId": state["resources"]["secret_arn"]}
            invocation = rotator.invoke(event)
            ran.add(path.name)
            assert invocation.ok, (path.name, invocation)
            results.append(invocation.payload)
        finish_rotation(state, token)
        # THEN the rotation completed, the pattern set accepting the old and the new value
        assert [r["step"] for r in results] == list(ROTATION_STEPS)
        assert results[-1] == {"step": "finishSecret", "outcome": "finished", "acceptedValues": 2}

        # WHEN the schedule's prune event follows, within the grace period
        pruned = rotator.invoke(_load("prune.json"))
        ran.add("prune.json")
        # THEN the previous value is still accepted
        assert pruned.ok, pruned
        assert pruned.payload == {
            "step": "prune",
            "outcome": "within-grace",
            "acceptedValues": 2,
            "pruneNotBefore": pruned.payload["pruneNotBefore"],
        }

        # AND both ran on Python 3.12 from read-only code, the SDK from the runtime, and the
        # X-Ray SDK never loaded
        for function in (proxy, rotator):
            assert function.init["python"].startswith("3.12.")
            assert function.init["task_root_writable"] is False
            origins = function.module_origins()
            assert (origins["boto3"], origins["botocore"]) == ("runtime", "runtime")
            assert origins["aws_lambda_powertools"] == "task"
            assert "aws_xray_sdk" not in origins
        assert _tree(proxy_box.task_root) == before  # nothing was written into /var/task
    finally:
        proxy.close()
        rotator.close()
    # AND every file in events/ was sent
    assert ran == {path.name for path in EVENTS.glob("*.json")}


def _step_index(event: dict[str, Any]) -> int:
    return ROTATION_STEPS.index(event["Step"])


def test_the_handlers_import_without_compiling_a_module(
    lambda_builds: LambdaBuilds, stack: LocalStack, sandbox_root: Path
) -> None:
    # GIVEN the read-only artifacts on Python 3.12
    for function, spec in (
        (PROXY_FUNCTION, stack.proxy_spec),
        (ROTATOR_FUNCTION, stack.rotator_spec),
    ):
        assert spec is not None
        box = _sandbox(lambda_builds, sandbox_root, function)

        # WHEN a fresh runtime imports the handler's module, verbosely
        timing, _ = time_import(
            box, spec.handler.rpartition(".")[0], box.environment(spec), verbose=True
        )

        # THEN every module of the artifact was loaded from its bytecode
        assert timing.compiled_from_source == []


class _XRayDaemon:
    """A UDP socket where the X-Ray SDK sends its segments (the daemon's address)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"

    def documents(self) -> list[dict[str, Any]]:
        """Every segment document sent so far (the function has stopped)."""
        received = []
        self.socket.settimeout(0.5)
        with contextlib.suppress(TimeoutError), self.socket:
            while True:
                datagram = self.socket.recv(65536).decode()
                received.append(json.loads(datagram.split("\n", 1)[1]))  # after the header
        return received


def test_with_xray_sdk_tracing_the_tracer_comes_from_the_powertools_layer(
    lambda_builds: LambdaBuilds, stack: LocalStack, sandbox_root: Path
) -> None:
    # GIVEN the proxy as XRaySdkTracing=true deploys it: the Powertools layer attached, the
    # switch off, and a sampled trace of Lambda's active tracing
    box = _sandbox(lambda_builds, sandbox_root, PROXY_FUNCTION, layer=lambda_builds.tracing_layer)
    daemon = _XRayDaemon()
    proxy = _function(
        stack.proxy_spec,
        box,
        sandbox_root / "proxy-tracing.log",
        POWERTOOLS_TRACE_DISABLED="false",
        AWS_XRAY_DAEMON_ADDRESS=daemon.address,
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    event = _load("token_basic.json")  # for a scope no other event asks for: a cache miss
    event["body"] = event["body"].replace("example-api%2Fread", "example-api%2Fwrite")
    try:
        # WHEN a token request goes through it
        result = proxy.invoke(event)
        origins = proxy.module_origins()
    finally:
        proxy.close()
    documents = daemon.documents()

    # THEN it answers, with the X-Ray SDK from the layer and the SDK still the runtime's
    assert result.ok and result.payload["statusCode"] == 200, result
    assert origins["aws_xray_sdk"] == "layer"
    assert (origins["boto3"], origins["botocore"]) == ("runtime", "runtime")
    assert origins["aws_lambda_powertools"] == "task"  # the artifact's, ahead of the layer's
    # AND the handler's, DynamoDB's and Secrets Manager's subsegments reached the daemon, with
    # no token in them
    names = {document["name"] for document in documents}
    assert {"## lambda_handler", "dynamodb", "secretsmanager"} <= names, names
    assert json.loads(result.payload["body"])["access_token"] not in json.dumps(documents)
    # AND the Cognito call has a remote subsegment of its own, with its URL (the client records
    # it: X-Ray's patches do not see urllib3 2.x), and the AWS calls only botocore's
    calls = [
        (piece["name"], piece.get("namespace"), piece["http"]["request"]["url"])
        for piece in _subsegments(documents)
        if "url" in piece.get("http", {}).get("request", {})
    ]
    loopback = [(namespace, url) for name, namespace, url in calls if name == "127.0.0.1"]
    assert len(loopback) == 1, loopback  # moto's server is on loopback too
    assert loopback[0][0] == "remote"
    assert loopback[0][1].endswith("/oauth2/token")


def _subsegments(documents: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every segment and subsegment in ``documents``, nested ones included."""
    for document in documents:
        yield document
        yield from _subsegments(document.get("subsegments", []))
