"""4. Cold start: the built artifact's handler module imported as Lambda imports it, against
``import boto3`` on the same interpreter.

The artifact is `sam build`'s TokenProxyFunction, built for this machine's platform by the
same src/Makefile, code and requirements as the deployed one (``LAMBDA_PLATFORM``), unless
``--artifact`` names one. Each run is a fresh Python 3.12 process in isolated mode
(:mod:`local.lambda_bootstrap`), its files mounted read-only as in Lambda, ``sys.path`` in
Lambda's order (the artifact, the layers, the runtime's boto3 and botocore from
requirements/lambda-runtime.txt), the function's Powertools variables as template.yaml sets
them, and only the ``import`` statement timed (the interpreter's own start is the same for
every variant and not counted). Variants:

* ``handler``: the artifact as built (bytecode compiled for 3.12), ``XRaySdkTracing=false``;
* ``handler_no_bytecode``: the same files without their __pycache__ directories (a build
  without Python 3.12): every module is compiled in memory, and nothing can be cached;
* ``handler_sdk_tracing``: ``XRaySdkTracing=true``, the Powertools layer beside the artifact;
* ``boto3``: ``import boto3`` from the runtime's packages, with an empty function directory.

Runs alternate between the variants after one untimed warm-up of each (so every run reads
from a warm page cache). One more run of each handler variant with ``-v`` counts the modules
compiled from source; three with ``-X importtime`` attribute the handler's and boto3's import
time to top-level packages (the median of each package's self time). Medians and minimums
are both kept: on a shared machine the fastest run is the one least disturbed by other load.
"""

from __future__ import annotations

import statistics
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.lambda_artifact import (
    RUNTIME_REQUIREMENTS,
    LambdaSandbox,
    directory_bytes,
    host_platform,
    install_powertools_layer,
    install_runtime_sdk,
    lambda_python,
    read_only_copy,
    sam_build,
    scratch_directory,
    time_import,
    without_bytecode,
)
from local.lambda_runtime import FunctionSpec

HANDLER = "token_proxy.app.lambda_handler"
HANDLER_MODULE = HANDLER.rpartition(".")[0]
BASELINE_MODULE = "boto3"
FUNCTION = "TokenProxyFunction"
#: template.yaml's default (XRaySdkTracing=false) and the opt-in that loads the X-Ray SDK.
TRACING_OFF = {"POWERTOOLS_TRACE_DISABLED": "true"}
TRACING_ON = {"POWERTOOLS_TRACE_DISABLED": "false"}
#: ``-X importtime`` runs per attributed variant (their median per package).
IMPORTTIME_RUNS = 3


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the measurement runs: the artifact built for this machine, Python 3.12, the
    runtime's SDK and the Powertools layer."""

    artifact: Path
    python: Path
    runtime_sdk: Path
    tracing_layer: Path


@contextmanager
def built_inputs(
    artifact: Path | None, runtime_sdk: Path | None, tracing_layer: Path | None
) -> Iterator[Inputs]:
    """The given inputs, and what is missing built into a temporary directory (sam build for
    this machine's platform, the runtime's SDK, the layer)."""
    python = lambda_python()
    if python is None:
        raise SystemExit(
            "the cold start needs Python 3.12 (python3.12 on PATH or pyenv's 3.12.x), the "
            "runtime's Python"
        )
    with scratch_directory("bench-lambda-") as root:
        if artifact is None:
            sam_build({root / "build": host_platform()})
            artifact = root / "build" / FUNCTION
        yield Inputs(
            artifact=artifact,
            python=python,
            runtime_sdk=runtime_sdk or install_runtime_sdk(root / "runtime", python),
            tracing_layer=tracing_layer
            or install_powertools_layer(root / "layer" / "python", host_platform()),
        )


def function_spec(tracing: dict[str, str]) -> FunctionSpec:
    """The proxy function as template.yaml configures its Powertools, for an import."""
    return FunctionSpec(
        name="token-proxy-TokenProxyFunction",
        handler=HANDLER,
        environment={
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "token-proxy",
            "POWERTOOLS_METRICS_NAMESPACE": "CognitoTokenProxy",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **tracing,
        },
        memory_mb=512,
        timeout_seconds=20,
        region="us-east-1",
    )


def _self_ms_by_package(stderr: str) -> dict[str, float]:
    """Self time (ms) of each top-level package in ``-X importtime`` lines, largest first."""
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        totals[name.split(".")[0]] += int(self_us)
    return {name: round(us / 1000.0, 1) for name, us in totals.most_common()}


def _median_by_package(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each package's median self time over the runs (0 where a run did not import it),
    largest first."""
    names = {name for run in runs for name in run}
    medians = {
        name: round(statistics.median(run.get(name, 0.0) for run in runs), 1) for name in names
    }
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def _runtime_versions() -> dict[str, str]:
    pins = {}
    for line in RUNTIME_REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if version and name in ("boto3", "botocore"):
            pins[name] = version
    return pins


def run(
    runs: int,
    *,
    artifact: Path | None = None,
    runtime_sdk: Path | None = None,
    tracing_layer: Path | None = None,
) -> dict[str, Any]:
    with (
        built_inputs(artifact, runtime_sdk, tracing_layer) as inputs,
        scratch_directory("bench-sandbox-") as root,
    ):
        runtime = (inputs.runtime_sdk,)
        task = read_only_copy(inputs.artifact, root / "task")
        plain = without_bytecode(inputs.artifact, root / "task-no-bytecode")
        empty = root / "task-empty"
        empty.mkdir()
        off, on = function_spec(TRACING_OFF), function_spec(TRACING_ON)
        traced = LambdaSandbox(inputs.python, task, runtime, layers=(inputs.tracing_layer,))
        variants = {
            "boto3": (LambdaSandbox(inputs.python, empty, runtime), BASELINE_MODULE, off),
            "handler": (LambdaSandbox(inputs.python, task, runtime), HANDLER_MODULE, off),
            "handler_no_bytecode": (
                LambdaSandbox(inputs.python, plain, runtime),
                HANDLER_MODULE,
                off,
            ),
            "handler_sdk_tracing": (traced, HANDLER_MODULE, on),
        }
        for sandbox, module, spec in variants.values():  # untimed: warm the page cache
            time_import(sandbox, module, sandbox.environment(spec))
        samples: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):
            for name, (sandbox, module, spec) in variants.items():
                timing, _ = time_import(sandbox, module, sandbox.environment(spec))
                samples[name].append(timing.seconds * 1000)
                cpu[name].append(timing.cpu_seconds * 1000)
        compiled = {
            name: len(
                time_import(sandbox, module, sandbox.environment(spec), verbose=True)[
                    0
                ].compiled_from_source
            )
            for name, (sandbox, module, spec) in variants.items()
            if name != "boto3"
        }
        importtime = {
            name: _median_by_package(
                [
                    _self_ms_by_package(
                        time_import(sandbox, module, sandbox.environment(spec), importtime=True)[1]
                    )
                    for _ in range(IMPORTTIME_RUNS)
                ]
            )
            for name, (sandbox, module, spec) in variants.items()
            if name in ("boto3", "handler")
        }
        python = subprocess.run(
            [str(inputs.python), "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        artifact_bytes = directory_bytes(inputs.artifact)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    best = {name: min(values) for name, values in samples.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    handler_packages, baseline_packages = importtime["handler"], importtime["boto3"]
    extra = {
        name: round(ms - baseline_packages.get(name, 0.0), 1)
        for name, ms in handler_packages.items()
    }
    baseline = medians["boto3"]
    return {
        "runs": runs,
        "python": python,
        "handler_module": HANDLER_MODULE,
        "artifact_bytes": artifact_bytes,
        "runtime_sdk": _runtime_versions(),
        "handler_import_ms_median": round(medians["handler"], 1),
        "boto3_import_ms_median": round(baseline, 1),
        "ratio": round(medians["handler"] / baseline, 3),
        # The fastest of the runs: the least disturbed by other load on a shared machine.
        "handler_import_ms_min": round(best["handler"], 1),
        "boto3_import_ms_min": round(best["boto3"], 1),
        "ratio_of_minimums": round(best["handler"] / best["boto3"], 3),
        # CPU time of the importing process: what other load on a shared machine barely moves.
        "handler_import_cpu_ms_median": round(cpu_medians["handler"], 1),
        "boto3_import_cpu_ms_median": round(cpu_medians["boto3"], 1),
        "ratio_cpu": round(cpu_medians["handler"] / cpu_medians["boto3"], 3),
        "ratio_cpu_without_bytecode": round(
            cpu_medians["handler_no_bytecode"] / cpu_medians["boto3"], 3
        ),
        "ratio_cpu_with_sdk_tracing": round(
            cpu_medians["handler_sdk_tracing"] / cpu_medians["boto3"], 3
        ),
        "handler_no_bytecode_import_ms_median": round(medians["handler_no_bytecode"], 1),
        "ratio_without_bytecode": round(medians["handler_no_bytecode"] / baseline, 3),
        "handler_sdk_tracing_import_ms_median": round(medians["handler_sdk_tracing"], 1),
        "ratio_with_sdk_tracing": round(medians["handler_sdk_tracing"] / baseline, 3),
        "modules_compiled_at_import": compiled,
        "samples_ms": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "cpu_samples_ms": {name: [round(v, 1) for v in values] for name, values in cpu.items()},
        "handler_self_ms_by_package": dict(list(handler_packages.items())[:12]),
        "extra_self_ms_by_package": dict(sorted(extra.items(), key=lambda kv: -kv[1])[:8]),
    }
