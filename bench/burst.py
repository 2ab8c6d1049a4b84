"""1. Burst: many concurrent requests for one cold key, and again at the refresh point.

Each approach gets its own app client (so its key is cold) and the upstream calls are read
from the local issuer's ``/stats`` before and after. The proxy runs as ``instances`` simulated
Lambda containers, each its own ``TokenService`` (own L1, own issuer session, own DynamoDB
client) on one shared table in moto's server; requests go round-robin to them, through
``token_proxy.app.handle_event`` with a real HTTP API event. Time is the wall clock plus an
offset, so "the refresh point" is reached by moving the offset past ``refresh_ratio``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from bench.apigw import RECIPE_TTL_SECONDS, ApiGatewayCacheModel
from bench.clocks import OffsetClock
from bench.environment import SCOPE, BenchEnvironment, bench_client, http_api_event
from bench.tokens import jwt_expiry, response_fields
from function_setup.metrics import RecordingMetrics
from local.cognito_token_endpoint import ClientRegistration
from token_proxy.app import handle_event

CLIENTS = {
    "no_proxy": bench_client("burst-direct"),
    "apigw_recipe": bench_client("burst-apigw"),
    "proxy": bench_client("burst-proxy"),
}
#: Where in the token's life the second burst lands: past refresh_ratio, before the minimum.
REFRESH_POINT_RATIO = 0.80

#: One request's outcome: (HTTP status, access_token or None, expires_in or None).
Outcome = tuple[int, str | None, int | None]


@dataclass(frozen=True, slots=True)
class BurstRun:
    outcomes: list[Outcome]
    errors: int
    seconds: float


def concurrently(count: int, task: Callable[[int], Outcome]) -> BurstRun:
    """Run ``task(0..count-1)`` on ``count`` threads released together by a barrier."""
    barrier = threading.Barrier(count)
    outcomes: list[Outcome | None] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = task(index)
        except Exception as exc:  # counted and reported, never hidden
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return BurstRun([o for o in outcomes if o is not None], len(errors), elapsed)


def _outcome(status: int, body: bytes | str) -> Outcome:
    if status != 200:
        return status, None, None
    token, expires_in = response_fields(body)
    return status, token, expires_in


def _figures(env: BenchEnvironment, run: Callable[[], BurstRun]) -> dict[str, Any]:
    before = env.issued()
    result = run()
    upstream = env.issued() - before
    statuses = Counter(o[0] for o in result.outcomes)
    return {
        "upstream_calls": upstream,
        "answered_200": statuses.get(200, 0),
        "other_statuses": {str(k): v for k, v in sorted(statuses.items()) if k != 200},
        "errors": result.errors,
        "distinct_tokens": len({o[1] for o in result.outcomes if o[1] is not None}),
        "seconds": round(result.seconds, 3),
    }


class _Sessions:
    """One keep-alive session per thread (requests.Session is not meant to be shared)."""

    def __init__(self, env: BenchEnvironment) -> None:
        self._env = env
        self._local = threading.local()

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._env.direct_session()
            self._local.session = session
        return session


def _no_proxy(env: BenchEnvironment, client: ClientRegistration, count: int) -> BurstRun:
    sessions = _Sessions(env)
    return concurrently(count, lambda _: _outcome(*env.direct_call(sessions.get(), client)))


def _apigw_upstream(env: BenchEnvironment, client: ClientRegistration) -> Any:
    sessions = _Sessions(env)

    def upstream(authorization: str, scope: str) -> tuple[int, bytes]:
        return env.direct_call(sessions.get(), client, scope)

    return upstream


def _served_lifetimes(run: BurstRun, now: float) -> dict[str, Any]:
    """The smallest real remaining lifetime among the tokens served, and what they claimed."""
    served = [(jwt_expiry(o[1]) - now, o[2]) for o in run.outcomes if o[1] is not None]
    if not served:
        return {}
    remaining, claimed = min(served, key=lambda pair: pair[0])
    return {"served_min_remaining_seconds": round(remaining, 1), "served_expires_in": claimed}


def run(env: BenchEnvironment, *, requests_count: int, instances: int) -> dict[str, Any]:
    """Cold burst and refresh-point burst for the three approaches."""
    settings = env.base_settings
    lifetime = float(CLIENTS["proxy"].token_lifetime)
    advance = REFRESH_POINT_RATIO * lifetime

    # -- no proxy: every request is a Cognito call.
    direct = CLIENTS["no_proxy"]
    cold_direct = _figures(env, lambda: _no_proxy(env, direct, requests_count))
    refresh_direct = _figures(env, lambda: _no_proxy(env, direct, requests_count))

    # -- the API Gateway cache recipe.
    apigw_client = CLIENTS["apigw_recipe"]
    apigw_clock = OffsetClock()
    apigw = ApiGatewayCacheModel(
        _apigw_upstream(env, apigw_client), ttl_seconds=RECIPE_TTL_SECONDS, clock=apigw_clock
    )
    authorization = http_api_event(apigw_client)["headers"]["authorization"]

    def apigw_burst() -> BurstRun:
        return concurrently(
            requests_count, lambda _: _outcome(*apigw.request(authorization, SCOPE))
        )

    cold_apigw = _figures(env, apigw_burst)
    apigw_clock.advance(advance)
    last: dict[str, BurstRun] = {}

    def apigw_burst_kept() -> BurstRun:
        last["run"] = apigw_burst()
        return last["run"]

    refresh_apigw = _figures(env, apigw_burst_kept)
    refresh_apigw.update(_served_lifetimes(last["run"], apigw_clock()))
    apigw_clock.advance(RECIPE_TTL_SECONDS - advance + 1.0)  # just past the recipe's TTL
    expiry_apigw = _figures(env, apigw_burst)

    # -- this proxy: instances on one table, requests spread round-robin.
    proxy_clock = OffsetClock()
    sinks = [RecordingMetrics() for _ in range(instances)]
    services = [env.service(clock=proxy_clock, metrics=sink) for sink in sinks]
    event = http_api_event(CLIENTS["proxy"])

    def proxy_burst() -> BurstRun:
        def one(index: int) -> Outcome:
            response = handle_event(event, services[index % instances], settings)
            return _outcome(response.status, response.body)

        return concurrently(requests_count, one)

    def metric_counts() -> Counter[str]:
        total: Counter[str] = Counter()
        for sink in sinks:
            total.update(sink.counts)
        return total

    cold_proxy = _figures(env, proxy_burst)
    after_cold = metric_counts()
    cold_proxy["service_metrics"] = dict(sorted(after_cold.items()))
    proxy_clock.advance(advance)
    refresh_proxy = _figures(env, proxy_burst)
    refresh_proxy["service_metrics"] = dict(sorted((metric_counts() - after_cold).items()))

    return {
        "requests": requests_count,
        "instances": instances,
        "token_lifetime_seconds": lifetime,
        "cold": {"no_proxy": cold_direct, "apigw_recipe": cold_apigw, "proxy": cold_proxy},
        "refresh_point": {
            "clock_advanced_seconds": advance,
            "refresh_ratio": settings.refresh_ratio,
            "no_proxy": refresh_direct,
            "apigw_recipe": refresh_apigw,
            "apigw_recipe_after_ttl": expiry_apigw,
            "proxy": refresh_proxy,
        },
    }
