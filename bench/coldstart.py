"""4. Cold start: importing the handler module in a fresh interpreter, against ``import boto3``.

Each run is a new interpreter (``PYTHONPATH=src``, the function's Powertools environment as
template.yaml sets it, plus the variables Lambda itself sets) that times only the import, with
``time.perf_counter`` around it: interpreter start-up is the same for both and not counted.
Runs alternate between the two imports after one untimed warm-up of each, so both read
compiled bytecode (kept in a temporary ``PYTHONPYCACHEPREFIX``, never in src/) from a warm
page cache. One more run with ``-X importtime`` attributes the handler's own import time to
top-level packages.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from typing import Any

from bench import SRC_DIR

HANDLER_MODULE = "token_proxy.app"
BASELINE_MODULE = "boto3"
#: template.yaml's default (XRaySdkTracing=false) and the opt-in that loads the X-Ray SDK.
TRACING_OFF = {"POWERTOOLS_TRACE_DISABLED": "true"}
TRACING_ON = {"POWERTOOLS_TRACE_DISABLED": "false"}
_TIMER = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def lambda_environment(pycache: str) -> dict[str, str]:
    """What the interpreter sees in Lambda: the template's variables for the function's
    Powertools setup and those the Lambda runtime sets (region, function name, handler)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC_DIR),
        "PYTHONPYCACHEPREFIX": pycache,
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "token-proxy-TokenProxyFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "_HANDLER": "token_proxy.app.lambda_handler",
        "POWERTOOLS_SERVICE_NAME": "token-proxy",
        "POWERTOOLS_METRICS_NAMESPACE": "CognitoTokenProxy",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **TRACING_OFF,
    }


def _import_seconds(module: str, env: dict[str, str]) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _TIMER.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def _importtime_by_package(module: str, env: dict[str, str]) -> dict[str, float]:
    """Self time (ms) of each top-level package while importing ``module``, largest first."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    totals: Counter[str] = Counter()
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        totals[name.split(".")[0]] += int(self_us)
    return {name: round(us / 1000.0, 1) for name, us in totals.most_common()}


def run(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        env = lambda_environment(pycache)
        variants = {
            "boto3": (BASELINE_MODULE, env),
            "handler": (HANDLER_MODULE, env),
            "handler_sdk_tracing": (HANDLER_MODULE, {**env, **TRACING_ON}),
        }
        for module, variant_env in variants.values():  # untimed: compile and cache
            _import_seconds(module, variant_env)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):
            for name, (module, variant_env) in variants.items():
                samples[name].append(_import_seconds(module, variant_env) * 1000)
        handler_packages = _importtime_by_package(HANDLER_MODULE, env)
        baseline_packages = _importtime_by_package(BASELINE_MODULE, env)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    extra = {
        name: round(ms - baseline_packages.get(name, 0.0), 1)
        for name, ms in handler_packages.items()
    }
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "handler_module": HANDLER_MODULE,
        "handler_import_ms_median": round(medians["handler"], 1),
        "boto3_import_ms_median": round(medians["boto3"], 1),
        "ratio": round(medians["handler"] / medians["boto3"], 3),
        "handler_sdk_tracing_import_ms_median": round(medians["handler_sdk_tracing"], 1),
        "ratio_with_sdk_tracing": round(medians["handler_sdk_tracing"] / medians["boto3"], 3),
        "samples_ms": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "handler_self_ms_by_package": dict(list(handler_packages.items())[:12]),
        "extra_self_ms_by_package": dict(sorted(extra.items(), key=lambda kv: -kv[1])[:8]),
    }
