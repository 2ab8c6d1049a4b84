"""The benchmark at tiny sizes (``python -m bench --quick``), so that it cannot rot.

No timing is asserted: only that every figure is there, with the right type and a sane value,
and the figures that do not depend on time (counts on a simulated clock) are exact.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import LambdaBuilds

ROOT = Path(__file__).resolve().parents[2]
QUICK_BURST_REQUESTS = 16
QUICK_MEMORY_KEYS = 300
QUICK_L1_MAX_ENTRIES = 64
GOALS = {
    "burst_cold_upstream_calls",
    "burst_refresh_upstream_calls",
    "day_calls_per_client_day",
    "day_min_remaining_lifetime",
    "l1_hit_p50_us",
    "direct_over_l1_hit",
    "cold_start_ratio",
    "l1_bounded",
    "hostile_random_secret_calls",
    "hostile_down_per_key_window",
    "runtime_seconds",
}


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory, lambda_builds: LambdaBuilds
) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    built = [
        *("--artifact", str(lambda_builds.host / "TokenProxyFunction")),
        *("--runtime-sdk", str(lambda_builds.runtime_sdk)),
        *("--tracing-layer", str(lambda_builds.tracing_layer)),
    ]
    completed = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), *built],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8")), completed.stdout


def assert_timing_summary(summary: dict[str, Any], n: int) -> None:
    assert summary["n"] == n
    assert 0 < summary["p50_us"] <= summary["p99_us"] <= summary["max_us"]
    assert summary["mean_us"] > 0


@pytest.mark.slow
def test_the_table_names_every_measurement_and_the_goals(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    # GIVEN a quick benchmark run / WHEN its printed table is read
    _, table = quick_run

    # THEN every measurement and the goals are there
    for heading in ("1. Burst", "2. Simulated day", "3. Latency", "4. Cold start", "5. Memory"):
        assert heading in table
    assert "6. Cost per million token requests" in table
    assert "7. Hostile and failing traffic" in table
    assert "Goals" in table


@pytest.mark.slow
def test_burst_figures_count_every_request(quick_run: tuple[dict[str, Any], str]) -> None:
    # GIVEN a quick run's burst figures
    burst = quick_run[0]["burst"]

    # THEN every request was answered, and the counts are those of each approach
    assert (burst["requests"], burst["instances"]) == (QUICK_BURST_REQUESTS, 2)
    for phase in ("cold", "refresh_point"):
        for world in ("no_proxy", "apigw_recipe", "proxy"):
            figures = burst[phase][world]
            assert figures["answered_200"] == QUICK_BURST_REQUESTS
            assert (figures["errors"], figures["other_statuses"]) == (0, {})
            assert figures["seconds"] > 0
        assert burst[phase]["no_proxy"]["upstream_calls"] == QUICK_BURST_REQUESTS
        assert 0 <= burst[phase]["proxy"]["upstream_calls"] <= QUICK_BURST_REQUESTS
    assert burst["cold"]["proxy"]["upstream_calls"] >= 1
    assert 1 <= burst["cold"]["apigw_recipe"]["upstream_calls"] <= QUICK_BURST_REQUESTS
    # The recipe's cache (TTL 3600 s) still holds the token at 80% of its life...
    refresh = burst["refresh_point"]
    assert refresh["apigw_recipe"]["upstream_calls"] == 0
    assert refresh["apigw_recipe"]["served_expires_in"] == 3600
    assert 0 < refresh["apigw_recipe"]["served_min_remaining_seconds"] < 3600 * 0.25
    # ...and misses again once the TTL is over.
    assert refresh["apigw_recipe_after_ttl"]["upstream_calls"] >= 1


@pytest.mark.slow
def test_the_simulated_day_is_exact(quick_run: tuple[dict[str, Any], str]) -> None:
    # GIVEN a quick run's simulated day (3 clients, 4 hours, polls every 5 minutes)
    day = quick_run[0]["day"]
    allowed = day["min_remaining_allowed_seconds"]

    # THEN, on the simulated clock, the counts are the arithmetic of each approach
    assert allowed == pytest.approx(0.1 * 3600)
    assert day["ideal_calls_per_client_day"] == pytest.approx(36.0)
    assert day["no_proxy"]["hit_ratio"] == 0.0
    assert day["no_proxy"]["upstream_calls"] == day["no_proxy"]["requests"]
    assert day["apigw_recipe"]["calls_per_client_day"] == pytest.approx(24.0)
    assert day["proxy"]["calls_per_client_day"] == pytest.approx(36.0)
    # The proxy never hands out a token below the minimum lifetime; the recipe does, claiming
    # the original expires_in.
    proxy, apigw = day["proxy"], day["apigw_recipe"]
    assert (proxy["served_after_expiry"], proxy["served_below_min_remaining"]) == (0, 0)
    assert proxy["min_remaining_seconds"] >= allowed
    assert 0 <= proxy["max_overclaim_seconds"] < 1.0
    assert apigw["served_below_min_remaining"] > 0
    assert apigw["expires_in_claimed_at_min"] == 3600
    assert apigw["max_overclaim_seconds"] > 3000
    assert proxy["dynamodb_operations"]["put_token"] == proxy["upstream_calls"]
    assert proxy["dynamodb_item_bytes"] > 1000


@pytest.mark.slow
def test_latency_cold_start_and_memory_figures_are_sane(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    # GIVEN a quick run
    results = quick_run[0]
    latency, cold, memory = results["latency"], results["cold_start"], results["memory"]

    # THEN each timing is a complete, ordered summary
    for key, n in (
        ("l1_hit", 200),
        ("l1_hit_lambda_handler", 200),
        ("dynamodb_hit", 10),
        ("miss", 5),
        ("direct_issuer_call", 20),
    ):
        assert_timing_summary(latency[key], n)
    assert latency["direct_over_l1_hit_p50"] > 0
    assert latency["log_bytes_per_l1_hit"] > 0
    assert set(latency["profile_l1_hit"]["parts_p50_us"]) == {
        "parse_token_request",
        "cache_key",
        "service_handle",
        "answer_log_line",
    }
    assert latency["profile_l1_hit"]["top_self_time"]
    assert cold["runs"] == 1
    assert cold["python"].startswith("3.12.")
    assert cold["runtime_sdk"] == {"boto3": "1.38.36", "botocore": "1.38.36"}
    for variant in ("handler", "boto3", "handler_no_bytecode", "handler_sdk_tracing"):
        assert cold[f"{variant}_import_ms_median"] > 0
    assert cold["ratio"] == pytest.approx(
        cold["handler_import_ms_median"] / cold["boto3_import_ms_median"], rel=0.01
    )
    assert cold["ratio_cpu"] == pytest.approx(
        cold["handler_import_cpu_ms_median"] / cold["boto3_import_cpu_ms_median"], rel=0.01
    )
    assert results["goals"]["cold_start_ratio"]["value"] == cold["ratio_cpu"]
    # The built artifact imports without compiling a module; without its bytecode it compiles
    # every one it imports, and the layer ships none.
    compiled = cold["modules_compiled_at_import"]
    assert compiled["handler"] == 0
    assert compiled["handler_no_bytecode"] > 100
    assert compiled["handler_sdk_tracing"] > 0
    assert cold["handler_self_ms_by_package"]
    # The L1 stays at its bound however many keys go through.
    assert memory["keys"] == QUICK_MEMORY_KEYS
    assert memory["l1_max_entries"] == memory["l1_entries_at_end"] == QUICK_L1_MAX_ENTRIES
    assert memory["upstream_calls"] == QUICK_MEMORY_KEYS + 1  # and one warm-up request
    assert memory["rss_baseline_kib"] > 0


@pytest.mark.slow
def test_cost_figures_and_goals(quick_run: tuple[dict[str, Any], str]) -> None:
    # GIVEN a quick run's cost model and goals
    results = quick_run[0]
    cost = results["cost"]
    at_ratio = cost["per_million_at_hit_ratio"]

    # THEN Cognito direct is a million billed token requests, and each line item is priced
    assert cost["hit_ratio"] == 0.97
    assert at_ratio["cognito_direct"]["total_usd"] == pytest.approx(2250.0)
    for approach in ("apigw_recipe", "proxy", "proxy_function_url"):
        priced = at_ratio[approach]
        assert priced["total_usd"] == pytest.approx(sum(priced["items_usd"].values()), abs=0.01)
        assert all(value >= 0 for value in priced["items_usd"].values())
        assert priced["items_usd"]["cognito"] == pytest.approx(0.03 * 2250.0)
    # AND behind a function URL the proxy costs what it costs behind the HTTP API, less the
    # HTTP API's requests and access log lines
    http_api, function_url = (
        at_ratio["proxy"]["items_usd"],
        at_ratio["proxy_function_url"]["items_usd"],
    )
    assert set(http_api) - set(function_url) == {"http_api"}
    assert set(function_url) - set(http_api) == {"function_url"}
    assert function_url["function_url"] == 0
    assert http_api["http_api"] == pytest.approx(1.0)
    assert function_url["cloudwatch_logs"] < http_api["cloudwatch_logs"]
    assert at_ratio["proxy_function_url"]["total_usd"] < at_ratio["proxy"]["total_usd"]
    for name, price in cost["prices"].items():
        assert price["source"] and price["unit"], name
        # only a function URL's requests are free (included in Lambda's own prices)
        assert price["usd"] > 0 or name == "function_url_request", name
    assert set(results["goals"]) == GOALS
    for goal in results["goals"].values():
        assert isinstance(goal["met"], bool) and goal["target"]
    assert results["goals"]["l1_bounded"]["met"] is True
    assert 0 < results["duration_seconds"] < math.inf
    assert results["machine"]["nproc"] >= 1 and results["machine"]["python"]


@pytest.mark.slow
def test_hostile_traffic_figures_count_every_request(quick_run: tuple[dict[str, Any], str]) -> None:
    # GIVEN a quick run's hostile-traffic section
    hostile = quick_run[0]["hostile"]
    requests = hostile["config"]["requests"]

    # THEN every scenario answered every request and counted what it cost
    floods = [name for name in hostile if name.startswith(("random_", "missing_", "cognito_down_"))]
    assert len(floods) == 8
    for name in floods:
        figures = hostile[name]
        assert figures["requests"] == requests == sum(figures["statuses"].values())
        assert "500" not in figures["statuses"]
        assert figures["cognito_calls"] >= figures["requests_reaching_cognito"] >= 0
        assert figures["dynamodb_operations"] == sum(
            figures["dynamodb_operations_by_name"].values()
        )
        assert figures["table_items"] >= 0 and figures["l1_entries"] >= 0
    for name in floods[4:]:  # Cognito down: every answer is the proxy's own 503
        assert hostile[name]["statuses"] == {"503": requests}
        assert hostile[name]["backoff_window_seconds"] > 0
    # AND the goals hold at any size: the flood's calls within its client's budget, and a
    # failing Cognito asked at most once per key per back-off window
    goals = quick_run[0]["goals"]
    assert goals["hostile_random_secret_calls"]["met"] is True
    assert goals["hostile_down_per_key_window"]["met"] is True
    invalidation = hostile["invalidation_after_flood"]
    assert invalidation["flood_requests"] == requests
    assert invalidation["table_items_after"] == 0
    assert invalidation["dynamodb_round_trips"] >= 1
