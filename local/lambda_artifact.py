"""The built artifacts, run as Lambda runs them: what the tests check and the benchmark times.

* :func:`sam_build` builds both functions with the real ``sam build`` (src/Makefile), for the
  functions' platform or, with ``LAMBDA_PLATFORM``, for this machine's, so the artifact can be
  run here with the same code, requirements and build steps.
* :func:`install_runtime_sdk` installs what the python3.12 runtime provides beside the
  function's code: boto3 and botocore as a matched pair, at the versions pinned in
  requirements/lambda-runtime.txt, with their bytecode (the runtime's libraries are compiled).
* :func:`install_powertools_layer` imitates the AWS-published Powertools layer that
  ``XRaySdkTracing=true`` attaches: Powertools with its extras (the X-Ray SDK), without boto3,
  botocore and their dependencies, without bytecode, as the layer is built.
* :class:`LambdaSandbox` is a function's file system as Lambda mounts it, read-only: a copy of
  the artifact as ``/var/task``, the layers, the runtime's packages, and Python 3.12 to run
  them. As root (file modes bind nobody) the directories are bind-mounted read-only in a
  private mount namespace (``unshare``); otherwise their write bits are removed.
* :class:`ArtifactFunction` is one container of that sandbox (:mod:`local.lambda_bootstrap`
  is its runtime side), invoked like :mod:`local.lambda_runtime`' containers; :func:`time_import`
  times one cold import in a fresh one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import platform
import re
import select
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.lambda_runtime import INIT_TIMEOUT_SECONDS, FunctionError, FunctionSpec, Invocation

REPO_ROOT = Path(__file__).resolve().parent.parent
SAM = REPO_ROOT / ".venv-tools" / "bin" / "sam"
RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements" / "lambda-runtime.txt"
PROXY_REQUIREMENTS = REPO_ROOT / "src" / "token_proxy" / "requirements.txt"
BOOTSTRAP = Path(__file__).resolve().parent / "lambda_bootstrap.py"
#: src/Makefile's targets, with make from PATH as sam build runs it.
MAKE_SRC = ("make", "--no-print-directory", "-s", "-C", str(REPO_ROOT / "src"))
LAMBDA_PYTHON = "3.12"
FUNCTIONS = ("TokenProxyFunction", "RotatorFunction")
#: pip's platform tag for this machine's architecture (src/Makefile's LAMBDA_PLATFORM).
HOST_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}
#: What the Powertools layer build removes (``rm -rf``'s patterns in its Dockerfile): the SDK
#: the runtime provides and the SDK's dependencies.
LAYER_EXCLUDES = ("boto*", "s3transfer*", "*dateutil*", "urllib3*", "six*", "jmespath*", "bin")
_BUILD_TIMEOUT_SECONDS = 600
_COMPILED_FROM_SOURCE = re.compile(r"^# code object from (/\S+\.py)$")


class ArtifactError(RuntimeError):
    """An artifact could not be built or run here (the message says what is missing)."""


# ---------------------------------------------------------------------- building
def lambda_python() -> Path | None:
    """The Python 3.12 interpreter src/Makefile compiles the bytecode with (None: none here)."""
    completed = subprocess.run(
        [*MAKE_SRC, "lambda-python"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = completed.stdout.strip()
    return Path(found) if found else None


def host_platform() -> str:
    """pip's platform tag for this machine, for an artifact that runs here."""
    machine = platform.machine()
    if machine not in HOST_PLATFORMS:
        raise ArtifactError(f"no manylinux platform tag known for this machine ({machine})")
    return HOST_PLATFORMS[machine]


def sam_build(build_dirs: Mapping[Path, str | None]) -> None:
    """Run ``sam build`` into each directory at once, with ``LAMBDA_PLATFORM`` set to the
    given pip platform tag (None: the functions' own, src/Makefile's default). ``--no-cached``:
    SAM's build cache keys on the sources, not on the platform."""
    if not SAM.exists():
        raise ArtifactError("the SAM CLI is missing: run `make install` (make test does it)")
    running = []
    for build_dir, platform_tag in build_dirs.items():
        env = {
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
            "PATH": f"{SAM.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        if platform_tag:
            env["LAMBDA_PLATFORM"] = platform_tag
        command = [str(SAM), "build", "--template-file", "template.yaml", "--no-cached"]
        log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [*command, "--build-dir", str(build_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        running.append((build_dir, process, log))
    failures = []
    for build_dir, process, log in running:
        with log:
            returncode = process.wait(timeout=_BUILD_TIMEOUT_SECONDS)
            log.seek(0)
            output = log.read()
        if returncode != 0:
            failures.append(f"sam build into {build_dir} failed:\n{output[-3000:]}")
    if failures:
        raise ArtifactError("\n".join(failures))


def _pip_install(target: Path, *requirements: str, extra: tuple[str, ...] = ()) -> None:
    """pip (this interpreter's) into ``target``: wheels only, for Python 3.12."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            LAMBDA_PYTHON,
            "--target",
            str(target),
            *extra,
            *requirements,
        ],
        check=True,
        capture_output=True,
        timeout=_BUILD_TIMEOUT_SECONDS,
    )


def install_runtime_sdk(target: Path, python: Path) -> Path:
    """boto3, botocore and their dependencies as the runtime ships them, into ``target``
    (requirements/lambda-runtime.txt, exact pins, no resolution), compiled by ``python``."""
    _pip_install(target, "--no-deps", "-r", str(RUNTIME_REQUIREMENTS))
    subprocess.run([str(python), "-m", "compileall", "-q", str(target)], check=True)
    return target


def powertools_pin() -> str:
    """The Powertools requirement line of the proxy (the layer must be the same release)."""
    for line in PROXY_REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("aws-lambda-powertools"):
            return line.strip()
    raise ArtifactError(f"no aws-lambda-powertools pin in {PROXY_REQUIREMENTS}")


def install_powertools_layer(target: Path, platform_tag: str) -> Path:
    """The Powertools layer's ``python/`` directory: Powertools of the proxy's release with
    the tracer extra (the X-Ray SDK), minus the runtime's SDK and its dependencies."""
    name, _, version = powertools_pin().partition("==")
    _pip_install(target, f"{name}[tracer]=={version}", extra=("--platform", platform_tag))
    for entry in target.iterdir():
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in LAYER_EXCLUDES):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return target


def python_files_without_bytecode(root: Path) -> list[Path]:
    """The .py files under ``root`` without a 3.12 pyc beside them."""
    return [
        path
        for path in root.rglob("*.py")
        if not (path.parent / "__pycache__" / f"{path.stem}.cpython-312.pyc").is_file()
    ]


def directory_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# ---------------------------------------------------------------------- the sandbox
def read_only_copy(source: Path, target: Path) -> Path:
    """A copy of ``source`` that :class:`LambdaSandbox` will make read-only."""
    shutil.copytree(source, target, symlinks=True)
    return target


def without_bytecode(source: Path, target: Path) -> Path:
    """A copy of ``source`` without its __pycache__ directories (a build without Python 3.12)."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _remove_write_bits(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


@dataclass(frozen=True, slots=True)
class LambdaSandbox:
    """A function's file system as Lambda mounts it, and the runtime's interpreter."""

    python: Path
    task_root: Path
    runtime: tuple[Path, ...] = ()
    layers: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if os.geteuid() == 0 and shutil.which("unshare") is None:
            raise ArtifactError("running as root needs `unshare` to mount the artifact read-only")
        if os.geteuid() != 0:
            for root in self.read_only_dirs:
                _remove_write_bits(root)

    @property
    def read_only_dirs(self) -> tuple[Path, ...]:
        return (self.task_root, *self.layers, *self.runtime)

    def command(self, *bootstrap_args: str, python_flags: tuple[str, ...] = ()) -> list[str]:
        """The command line of a fresh runtime process in this sandbox."""
        places = ["--task-root", str(self.task_root)]
        for layer in self.layers:
            places += ["--layer", str(layer)]
        for runtime in self.runtime:
            places += ["--runtime", str(runtime)]
        command = [
            str(self.python),
            "-I",
            "-S",
            *python_flags,
            str(BOOTSTRAP),
            *places,
            *bootstrap_args,
        ]
        if os.geteuid() != 0:
            return command
        # Root ignores file modes: mount the directories read-only in a private namespace.
        mount = 'while [ "$1" != -- ]; do mount --bind -o ro "$1" "$1"; shift; done; shift; '
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            mount + 'exec "$@"',
            "sh",
            *map(str, self.read_only_dirs),
            "--",
            *command,
        ]

    def environment(self, spec: FunctionSpec) -> dict[str, str]:
        """The function's variables and those the Lambda runtime sets."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{LAMBDA_PYTHON}",
            "_HANDLER": spec.handler,
            **spec.runtime_environment(),
        }


# ---------------------------------------------------------------------- running it
class ArtifactFunction:
    """One container of a sandboxed artifact: its init (the handler's module imported once)
    when created, then one invocation at a time. Its output (Powertools log lines, EMF) goes to
    ``log_path``."""

    def __init__(self, spec: FunctionSpec, sandbox: LambdaSandbox, log_path: Path) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self.log_path = log_path
        with open(log_path, "a", encoding="utf-8") as log:
            self._process = subprocess.Popen(
                sandbox.command("--handler", spec.handler),
                env=sandbox.environment(spec),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        ready = self._receive(INIT_TIMEOUT_SECONDS)
        if not ready.get("ready"):
            self.close()
            raise FunctionError(f"the function failed to initialise: {ready.get('error_type')}")
        #: What the runtime reported after the init: its duration, Python's version, and
        #: whether the task root was writable.
        self.init: dict[str, Any] = ready

    @staticmethod
    def _pipe(pipe: IO[str] | None) -> IO[str]:
        if pipe is None:
            raise FunctionError("the function's runtime has no pipe")
        return pipe

    def _receive(self, timeout: float) -> dict[str, Any]:
        stdout = self._pipe(self._process.stdout)
        readable, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if readable else ""
        if not line:
            raise FunctionError(f"the function's runtime did not answer (see {self.log_path})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _send(self, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        stdin = self._pipe(self._process.stdin)
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()
        return self._receive(timeout)

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        answer = self._send(
            {
                "event": event,
                "request_id": request_id,
                "function_arn": self.spec.arn,
                "timeout_seconds": self.spec.timeout_seconds,
            },
            self.spec.timeout_seconds + 5,
        )
        if answer["ok"]:
            return Invocation(ok=True, payload=answer["payload"], request_id=request_id)
        return Invocation(
            ok=False,
            error_type=answer["error_type"],
            error_message=answer["message"],
            request_id=request_id,
        )

    def module_origins(self) -> dict[str, str]:
        """Each top-level package loaded so far and where it came from (``task``, ``layer``,
        ``runtime``, ``standard library``, ``built-in``)."""
        origins: dict[str, str] = self._send({"report": True}, 10)["modules"]
        return origins

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()


@dataclass(frozen=True, slots=True)
class ImportTiming:
    """One cold import in a fresh runtime process."""

    seconds: float
    #: The CPU time the process spent importing (what other load on the machine barely moves).
    cpu_seconds: float
    #: Modules under the sandbox's directories compiled from source (only when ``verbose``).
    compiled_from_source: list[str] = field(default_factory=list)


def time_import(
    sandbox: LambdaSandbox,
    module: str,
    environment: Mapping[str, str],
    *,
    verbose: bool = False,
    importtime: bool = False,
) -> tuple[ImportTiming, str]:
    """Import ``module`` in a fresh runtime process of ``sandbox``; returns the timing and the
    process's stderr (``-X importtime``'s lines when ``importtime``)."""
    flags = (("-v",) if verbose else ()) + (("-X", "importtime") if importtime else ())
    completed = subprocess.run(
        sandbox.command("--import", module, python_flags=flags),
        env=dict(environment),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise ArtifactError(f"importing {module} failed:\n{completed.stderr[-3000:]}")
    timed = json.loads(completed.stdout.strip().splitlines()[-1])
    roots = tuple(str(root) + os.sep for root in sandbox.read_only_dirs)
    compiled = [
        match.group(1)
        for line in completed.stderr.splitlines()
        if (match := _COMPILED_FROM_SOURCE.match(line)) and match.group(1).startswith(roots)
    ]
    return ImportTiming(timed["seconds"], timed["cpu_seconds"], compiled), completed.stderr


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory removed afterwards, even with its write bits gone."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        for entry in [path, *path.rglob("*")]:
            if entry.is_dir() and not entry.is_symlink():
                entry.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)
