"""3. Latency of one token request, in-process and over loopback.

- L1 hit: ``token_proxy.app.handle_event`` with a real HTTP API event and a warm service
  (parsing, the cache key, the L1, the reply, the answer's log line and metric);
- the same through ``lambda_handler`` with its Powertools decorators (log context, EMF flush,
  tracer), which is what Lambda bills; the bytes it writes to the log per request are counted;
- a DynamoDB hit: the same service with its L1 off (``L1_MAX_ENTRIES=0``), reading and
  opening the sealed item from moto's server on loopback;
- a miss: a new key each time (a different ``resource``), so L1, DynamoDB, the lease and the
  local issuer (WAF rule, RS256 signature) over loopback are all on the path;
- a direct call: a client posting straight to the local issuer with a keep-alive session.

The L1-hit path is also profiled (cProfile) and split into its parts.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.environment import (
    BenchEnvironment,
    bench_client,
    function_log_handler,
    http_api_event,
)
from bench.stats import summary_us
from local.lambda_runtime import FunctionSpec, LambdaContext
from token_proxy import app
from token_proxy.request import parse_token_request

CLIENT = bench_client("latency")
PROFILE_TOP = 12


class CharCounter(io.TextIOBase):
    """A text sink that keeps only the number of characters written to it."""

    def __init__(self) -> None:
        self.chars = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


@contextlib.contextmanager
def captured_output(sink: io.TextIOBase) -> Iterator[None]:
    """Send the function's log lines (Powertools' handler) and EMF blobs (stdout) to ``sink``."""
    handler = function_log_handler()
    previous = handler.setStream(sink)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        handler.setStream(previous)


#: The function as the benchmark invokes it (the local stack's own Lambda context object).
BENCH_FUNCTION = FunctionSpec(
    name="token-proxy-TokenProxyFunction-bench",
    handler="token_proxy.app.lambda_handler",
    memory_mb=512,
    timeout_seconds=20,
    region="us-east-1",
)


def timed(
    count: int, call: Callable[[int], object], after: Callable[[], object] | None = None
) -> list[int]:
    """Nanoseconds each of ``count`` calls took (``after`` runs untimed after each)."""
    samples: list[int] = []
    for index in range(count):
        started = time.perf_counter_ns()
        call(index)
        samples.append(time.perf_counter_ns() - started)
        if after is not None:
            after()
    return samples


def end_invocation() -> None:
    """What ``log_metrics`` does after each invocation in Lambda, minus the printing: without
    it, Powertools keeps appending to one metric set and every ``add_metric`` gets slower."""
    app.metrics.clear_metrics()


def _expect_ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"the benchmark expected a token, got HTTP {status}")


@contextlib.contextmanager
def _handler_service(service: Any, settings: Any) -> Iterator[None]:
    """``lambda_handler`` with this service as the container's (as ``get_token_service``
    would build it from the environment), restored afterwards."""
    original_service, original_settings = app.get_token_service, app.get_settings
    app.get_token_service = lambda: service  # type: ignore[assignment]
    app.get_settings = lambda: settings  # type: ignore[assignment]
    try:
        yield
    finally:
        app.get_token_service, app.get_settings = original_service, original_settings


def _profile(
    event: dict[str, Any], service: Any, settings: Any, calls: int, keys: Any
) -> dict[str, Any]:
    """Where an L1 hit spends its time: cProfile's top functions, and the parts timed alone."""
    profiler = cProfile.Profile()
    for _ in range(calls):
        profiler.enable()
        app.handle_event(event, service, settings)
        profiler.disable()
        end_invocation()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        rows.append(
            {
                "function": f"{short}:{line}({name})",
                "calls_per_request": round(ncalls / calls, 2),
                "self_us_per_request": round(tottime * 1e6 / calls, 2),
                "cumulative_us_per_request": round(cumtime * 1e6 / calls, 2),
            }
        )
    rows.sort(key=lambda row: row["self_us_per_request"], reverse=True)

    request = parse_token_request(event, max_body_bytes=settings.max_body_bytes)
    answer = {"status": 200, "client_id": request.client_id, "auth_method": "basic"}
    parts = {
        "parse_token_request": timed(calls, lambda _: parse_token_request(event)),
        "cache_key": timed(calls, lambda _: keys.key_for(request)),
        "service_handle": timed(calls, lambda _: service.handle(request), end_invocation),
        "answer_log_line": timed(
            calls, lambda _: app.logger.info("token request answered", extra=answer)
        ),
    }
    return {
        "calls": calls,
        "parts_p50_us": {name: summary_us(s)["p50_us"] for name, s in parts.items()},
        "top_self_time": rows[:PROFILE_TOP],
    }


def run(
    env: BenchEnvironment,
    *,
    hits: int,
    store_hits: int,
    misses: int,
    direct_calls: int,
    profile_calls: int,
) -> dict[str, Any]:
    event = http_api_event(CLIENT)
    # Each miss is a new key (a new resource value): the budget of unproven credentials would
    # refuse most of them within a minute, so it is lifted here (its counters are still
    # counted, as on every miss of an unproven key).
    settings = env.settings(
        unproven_calls_per_minute=10**9, unproven_calls_per_client_per_minute=10**9
    )
    service = env.service(settings=settings, metrics=app.metrics)
    no_l1 = env.service(settings=env.settings(l1_max_entries=0), metrics=app.metrics)
    context = LambdaContext(BENCH_FUNCTION)
    sink = CharCounter()
    results: dict[str, Any] = {}
    with captured_output(sink):
        _expect_ok(app.handle_event(event, service, settings).status)  # the miss that fills it

        def l1_hit(_: int) -> None:
            _expect_ok(app.handle_event(event, service, settings).status)

        results["l1_hit"] = summary_us(timed(hits, l1_hit, end_invocation))

        with _handler_service(service, settings):
            _expect_ok(app.lambda_handler(event, context)["statusCode"])
            before = sink.chars

            def handler_hit(_: int) -> None:
                _expect_ok(app.lambda_handler(event, context)["statusCode"])

            results["l1_hit_lambda_handler"] = summary_us(timed(hits, handler_hit))
            results["log_bytes_per_l1_hit"] = round((sink.chars - before) / hits)

        def store_hit(_: int) -> None:
            _expect_ok(app.handle_event(event, no_l1, settings).status)

        store_hit(0)
        results["dynamodb_hit"] = summary_us(timed(store_hits, store_hit, end_invocation))

        miss_events = [
            http_api_event(CLIENT, extra_form=f"&resource=https%3A%2F%2Fbench.example%2F{i}")
            for i in range(misses)
        ]

        def miss(index: int) -> None:
            _expect_ok(app.handle_event(miss_events[index], service, settings).status)

        results["miss"] = summary_us(timed(misses, miss, end_invocation))
        results["profile_l1_hit"] = _profile(event, service, settings, profile_calls, env.keys)
    app.metrics.clear_metrics()

    session = env.direct_session()
    _expect_ok(env.direct_call(session, CLIENT)[0])

    def direct(_: int) -> None:
        _expect_ok(env.direct_call(session, CLIENT)[0])

    results["direct_issuer_call"] = summary_us(timed(direct_calls, direct))
    results["direct_over_l1_hit_p50"] = round(
        results["direct_issuer_call"]["p50_us"] / results["l1_hit"]["p50_us"], 1
    )
    results["cpu_count"] = os.cpu_count()
    return results
