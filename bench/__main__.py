"""``python -m bench [--quick] [--out PATH] [--hit-ratio R] [--requests-per-month N]
[--artifact DIR --runtime-sdk DIR --tracing-layer DIR]``.

Runs the seven measurements (bench/README.md explains each), prints a table and writes one JSON
object with every figure to ``--out`` (default bench/results/latest.json, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, burst, coldstart, cost, day, hostile, latency, memory, report
from bench.environment import local_environment, quiet_function_logs

DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "latest.json"


@dataclass(frozen=True, slots=True)
class Sizes:
    burst_requests: int = 200
    burst_instances: int = 8
    day_config: day.DayConfig = field(default_factory=day.DayConfig)
    day_shards: int = max(1, min(4, report.available_cpus()))
    l1_hits: int = 3000
    store_hits: int = 200
    misses: int = 60
    direct_calls: int = 300
    profile_calls: int = 1500
    cold_start_runs: int = 9
    memory_keys: int = 10_000
    memory_l1_max_entries: int | None = None  # None: the template's setting
    hostile: hostile.HostileConfig = field(default_factory=hostile.HostileConfig)


FULL = Sizes()
QUICK = Sizes(
    burst_requests=16,
    burst_instances=2,
    day_config=day.DayConfig(clients=3, duration_seconds=4 * 3600.0, instances=2),
    day_shards=1,
    l1_hits=200,
    store_hits=10,
    misses=5,
    direct_calls=20,
    profile_calls=200,
    cold_start_runs=1,
    memory_keys=300,
    memory_l1_max_entries=64,
    hostile=hostile.QUICK_CONFIG,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--hit-ratio",
        type=float,
        default=0.97,
        help="share of requests answered without calling Cognito, for the cost table",
    )
    parser.add_argument(
        "--requests-per-month",
        type=float,
        default=10_000_000,
        help="monthly volume that the fixed monthly costs are spread over",
    )
    parser.add_argument(
        "--artifact",
        type=Path,
        help="the TokenProxyFunction artifact built for this machine (default: sam build it)",
    )
    parser.add_argument(
        "--runtime-sdk",
        type=Path,
        help="requirements/lambda-runtime.txt installed for Python 3.12 (default: install it)",
    )
    parser.add_argument(
        "--tracing-layer",
        type=Path,
        help="the Powertools layer's python/ directory (default: install it)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.hit_ratio <= 1.0:
        parser.error("--hit-ratio must be between 0 and 1")
    if args.requests_per_month <= 0:
        parser.error("--requests-per-month must be positive")
    return args


def _clients() -> list[Any]:
    return [*burst.CLIENTS.values(), latency.CLIENT]


def proxy_cost_inputs(results: dict[str, Any]) -> cost.ProxyInputs:
    """What the proxy's cost depends on, from the day's operation counts and the latency run."""
    proxy_day = results["day"]["proxy"]
    operations = proxy_day["dynamodb_operations"]
    calls = max(1, proxy_day["upstream_calls"])
    writes = sum(
        operations.get(name, 0)
        for name in ("lease", "put_token", "release", "back_off", "count_call")
    )
    return cost.ProxyInputs(
        handler_ms=results["latency"]["l1_hit_lambda_handler"]["p50_us"] / 1000,
        dynamodb_reads_eventual_per_request=operations.get("get_eventual", 0)
        / max(1, proxy_day["requests"]),
        dynamodb_reads_strong_per_call=operations.get("get_consistent", 0) / calls,
        dynamodb_writes_per_call=writes / calls,
        item_bytes=proxy_day["dynamodb_item_bytes"],
        log_bytes_per_request=results["latency"]["log_bytes_per_l1_hit"],
    )


def measure(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema_version": 1,
        "quick": args.quick,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
    }
    spawn = multiprocessing.get_context("spawn")
    phases: dict[str, float] = {}
    results["phase_seconds"] = phases
    phase_started = time.perf_counter()

    def phase_done(name: str) -> None:
        nonlocal phase_started
        now = time.perf_counter()
        phases[name] = round(now - phase_started, 1)
        phase_started = now

    with local_environment(_clients()) as env:
        settings = env.base_settings
        results["settings"] = {
            "refresh_ratio": settings.refresh_ratio,
            "min_remaining_ratio": settings.min_remaining_ratio,
            "l1_max_entries": settings.l1_max_entries,
            "l1_max_age_seconds": settings.l1_max_age_seconds,
            "lease_seconds": settings.lease_seconds,
            "coalesce_wait_seconds": settings.coalesce_wait_seconds,
        }
        phase_done("environment")
        print("1/7 burst ...", flush=True)
        results["burst"] = burst.run(
            env, requests_count=sizes.burst_requests, instances=sizes.burst_instances
        )

        phase_done("burst")
        print("2/7 simulated day, 5/7 memory (worker processes) ...", flush=True)
        memory_settings = settings
        if sizes.memory_l1_max_entries is not None:
            memory_settings = replace(settings, l1_max_entries=sizes.memory_l1_max_entries)
        allowed = settings.min_remaining_ratio * sizes.day_config.token_lifetime
        with (
            ProcessPoolExecutor(max_workers=sizes.day_shards, mp_context=spawn) as day_pool,
            ProcessPoolExecutor(max_workers=1, mp_context=spawn) as memory_pool,
        ):
            pending = day.submit_proxy(day_pool, sizes.day_config, settings, sizes.day_shards)
            memory_future = memory_pool.submit(memory.measure, memory_settings, sizes.memory_keys)
            no_proxy = day.run_no_proxy(sizes.day_config, allowed)
            apigw = day.run_apigw(sizes.day_config, allowed)
            results["day"] = day.collect(pending, settings, no_proxy, apigw)
            results["memory"] = memory_future.result()

        phase_done("day_and_memory")
        print("3/7 latency ...", flush=True)
        results["latency"] = latency.run(
            env,
            hits=sizes.l1_hits,
            store_hits=sizes.store_hits,
            misses=sizes.misses,
            direct_calls=sizes.direct_calls,
            profile_calls=sizes.profile_calls,
        )

        phase_done("latency")
    print("4/7 cold start ...", flush=True)
    results["cold_start"] = coldstart.run(
        sizes.cold_start_runs,
        artifact=args.artifact,
        runtime_sdk=args.runtime_sdk,
        tracing_layer=args.tracing_layer,
    )
    phase_done("cold_start")

    print("7/7 hostile and failing traffic (worker processes) ...", flush=True)
    with ProcessPoolExecutor(max_workers=sizes.day_shards, mp_context=spawn) as hostile_pool:
        results["hostile"] = hostile.run(settings, sizes.hostile, hostile_pool)
    results["hostile"]["today"] = report.hostile_today()
    phase_done("hostile")

    print("6/7 cost ...", flush=True)
    results["cost"] = cost.run(
        proxy_cost_inputs(results),
        hit_ratio=args.hit_ratio,
        requests_per_month=args.requests_per_month,
        day_hit_ratios={
            "apigw_recipe": results["day"]["apigw_recipe"]["hit_ratio"],
            "proxy": results["day"]["proxy"]["hit_ratio"],
        },
    )
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    results["goals"] = report.goals(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # moto's server logs every request through werkzeug's logger; the figures are the output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with quiet_function_logs():
        results = measure(QUICK if args.quick else FULL, args)
    out: Path = args.out
    results["output"] = str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(report.render(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
