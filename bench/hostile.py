"""7. Hostile and failing traffic: what an attacker, or a failing Cognito, costs the proxy.

Each scenario drives ``instances`` simulated containers (each its own ``TokenService`` built by
``token_proxy.wiring``: own L1, own ``CognitoTokenClient`` and own DynamoDB client) on one
table in moto (in-process, in a worker process of its own), through
``token_proxy.app.handle_event`` with real HTTP API events, round-robin, on a simulated clock
that moves ``interval`` seconds per request. Cognito is a stand-in given to each Cognito
client as its urllib3 pool (:class:`CountingCognito`): it counts every HTTP call and answers as
Cognito would for the one registered app client, or, while "down", with 429 or 503 (with or
without ``Retry-After``). The Cognito clients' retries, backoff sleeps and ``Retry-After``
handling are the real ones; their sleeps move the simulated clock.

Counted per scenario: Cognito calls (HTTP attempts) and the requests that made them, DynamoDB
operations (every API call of the containers' clients, by operation), the table's items at the
end, the containers' L1 entries, the statuses answered and the ``Retry-After`` values told.

Scenarios, ``requests`` each (500 at full size; every count is also given per 1,000):

- ``random_secrets``: the known client id with a fresh random secret each time;
- ``random_client_ids``: a fresh random client id and secret each time;
- ``random_resource``: the right credentials with a fresh random ``resource`` value;
- ``missing_scope``: the right credentials asking again and again for a scope the client lacks;
- ``cognito_down_*``: keys that once had a token (now expired) while Cognito answers 503 (no
  ``Retry-After``) or 429 with ``Retry-After: 30``, on one key and on many keys;
- ``invalidation_after_flood``: a wrong-secret flood for the known client, then the operator's
  invalidation of that client: its DynamoDB calls, items deleted, and the time it would take at
  AWS latencies (sequential round trips at :data:`AWS_ROUND_TRIP_MS`).
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote

import urllib3

from bench.clocks import SimClock
from token_proxy.settings import Settings

REGION = "us-east-1"
TABLE_NAME = "token-proxy-bench-hostile"
TOKEN_URL = "https://auth.bench.example/oauth2/token"  # noqa: S105 (a URL)
KNOWN_CLIENT_ID = "benchknownclient0000000001"
KNOWN_SECRET = "benchknownsecret0000000000000000000000000000000001"  # noqa: S105 (made up)
SCOPE = "bench-api/read"
MISSING_SCOPE = "bench-api/admin"
TOKEN_LIFETIME = 3600
#: A DynamoDB round trip inside a Region, for the invalidation's time estimate (an estimate,
#: not a measurement: moto answers in-process).
AWS_ROUND_TRIP_MS = 6.0
#: A Cognito call's simulated duration (each HTTP attempt moves the clock this much).
COGNITO_CALL_SECONDS = 0.05
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True, slots=True)
class HostileConfig:
    requests: int = 500
    instances: int = 4
    #: Simulated seconds between two requests (0.01: 100 requests per second).
    interval: float = 0.01
    #: Cognito-down scenarios: containers, keys of the "many keys" case, and their pace.
    down_instances: int = 8
    down_keys: int = 20
    down_interval: float = 0.1


#: ``--quick``: a smoke run's sizes.
QUICK_CONFIG = HostileConfig(requests=30, instances=2, down_instances=3, down_keys=4)


# ---------------------------------------------------------------------- Cognito stand-in
class CountingCognito(urllib3.PoolManager):
    """Cognito's token endpoint, as the Cognito client's urllib3 pool: each request the client
    sends is answered in process (no socket), after :data:`COGNITO_CALL_SECONDS` of simulated
    time.

    Credentials from HTTP Basic (taken as sent, as Cognito documents them) or the form body;
    the app clients are :attr:`CallLog.clients`, each allowed :data:`SCOPE`.
    ``down`` makes every call fail with that status (and ``retry_after``, when set). Calls are
    counted on the shared :class:`CallLog`.
    """

    def __init__(self, log: CallLog, clock: SimClock) -> None:
        super().__init__(num_pools=1)
        self._log = log
        self._clock = clock

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        self._log.calls += 1
        self._clock.advance(COGNITO_CALL_SECONDS)
        if self._log.down is not None:
            headers = (
                {} if self._log.retry_after is None else {"Retry-After": self._log.retry_after}
            )
            return _response(self._log.down, {"error": "unavailable"}, headers)
        form = dict(parse_qsl(kw["body"].decode(), keep_blank_values=True))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        authorization = urllib3.HTTPHeaderDict(kw["headers"]).get("Authorization")
        if authorization is not None:
            raw = base64.b64decode(authorization.split(" ", 1)[1]).decode()
            client_id, _, secret = raw.partition(":")
        if client_id is None or self._log.clients.get(client_id) != secret:
            return _response(400, {"error": "invalid_client"})
        if "resource" in form:  # no resource server is bound to this app client
            return _response(400, {"error": "invalid_request"})
        if set(form.get("scope", SCOPE).split()) - {SCOPE}:
            return _response(400, {"error": "invalid_scope"})
        self._log.issued += 1
        token = f"eyJhbGciOiJSUzI1NiJ9.{self._log.issued:08d}.bench-signature"
        answer = {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
        return _response(200, answer)


@dataclass
class CallLog:
    """What the stand-in saw, and how it answers (shared by every container's pool)."""

    clients: dict[str, str] = field(default_factory=lambda: {KNOWN_CLIENT_ID: KNOWN_SECRET})
    calls: int = 0
    issued: int = 0
    down: int | None = None
    retry_after: str | None = None


def _response(
    status: int, body: dict[str, str], headers: dict[str, str] | None = None
) -> urllib3.BaseHTTPResponse:
    return urllib3.HTTPResponse(
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        status=status,
    )


class _StaticOrigin:
    """The origin-verify value (the stand-in does not check it)."""

    def get(self, deadline: object = None) -> str:
        return "bench-origin-value"

    def refresh(self, deadline: object = None) -> str:
        return self.get()


# ---------------------------------------------------------------------- the world
@dataclass
class Container:
    service: Any
    l1: Any
    cognito: CountingCognito


@dataclass
class World:
    settings: Settings
    clock: SimClock
    log: CallLog
    client: Any
    containers: list[Container]
    dynamodb_ops: Counter[str] = field(default_factory=Counter)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def token_event(
    client_id: str, client_secret: str, scope: str = SCOPE, extra_form: str = ""
) -> dict[str, Any]:
    """A real HTTP API (payload 2.0) event for a Basic-authenticated token request."""
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    body = f"grant_type=client_credentials&scope={quote(scope, safe='')}" + extra_form
    return {
        "version": "2.0",
        "routeKey": "POST /oauth2/token",
        "rawPath": "/oauth2/token",
        "rawQueryString": "",
        "headers": {
            "authorization": f"Basic {basic}",
            "content-type": "application/x-www-form-urlencoded",
            "content-length": str(len(body)),
            "user-agent": "bench-hostile/1.0",
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/oauth2/token", "protocol": "HTTP/1.1"},
            "requestId": _random(12),
        },
        "body": body,
        "isBase64Encoded": False,
    }


@contextmanager
def world(settings: Settings, instances: int) -> Iterator[World]:
    """moto in this process, the template's table, and ``instances`` containers."""
    import boto3
    from moto import mock_aws

    from local.cloudformation_template import create_token_table
    from local.moto_server import FAKE_CREDENTIALS
    from token_proxy.cache_key import CacheKeys

    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, **FAKE_CREDENTIALS)
        create_token_table(client, TABLE_NAME)

        clock = SimClock()
        log = CallLog()
        ops: Counter[str] = Counter()
        keys = CacheKeys.ephemeral()  # the fleet's one cache key secret
        containers = [
            _container(settings, clock, log, ops, keys, FAKE_CREDENTIALS) for _ in range(instances)
        ]
        yield World(settings, clock, log, client, containers, ops)


def _container(  # noqa: PLR0917 (a container's parts, all shared with the fleet)
    settings: Settings,
    clock: SimClock,
    log: CallLog,
    ops: Counter[str],
    keys: Any,
    credentials: Any,
) -> Container:
    import boto3

    from function_setup.metrics import RecordingMetrics
    from token_proxy.cognito_client import CognitoTokenClient
    from token_proxy.l1 import TokenL1
    from token_proxy.store import DynamoTokenStore
    from token_proxy.wiring import DYNAMODB_CONFIG, build_token_service

    table = boto3.resource(
        "dynamodb", region_name=REGION, config=DYNAMODB_CONFIG, **credentials
    ).Table(settings.token_table_name)

    def count(event_name: str, **kwargs: Any) -> None:
        ops[event_name.rsplit(".", 1)[-1]] += 1

    table.meta.client.meta.events.register("before-call.dynamodb", count)
    pool = CountingCognito(log, clock)
    metrics = RecordingMetrics()
    cognito = CognitoTokenClient(
        token_url=settings.cognito_token_url,
        origin=_StaticOrigin(),
        timeout_seconds=settings.upstream_timeout_seconds,
        max_attempts=settings.upstream_max_attempts,
        user_agent=settings.user_agent,
        pool=pool,
        sleep=clock.sleep,
        clock=clock,
        wall_clock=clock,
        metrics=metrics,
    )
    l1 = TokenL1(settings.l1_max_entries, max_age_seconds=settings.l1_max_age_seconds, clock=clock)
    service = build_token_service(
        settings,
        store=DynamoTokenStore(table),
        cognito=cognito,
        keys=keys,
        l1=l1,
        clock=clock,
        sleep=clock.sleep,
        metrics=metrics,
    )
    return Container(service, l1, pool)


# ---------------------------------------------------------------------- running traffic
@dataclass
class Tally:
    """What one scenario's requests got, and what they cost."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)
    requests_reaching_cognito: int = 0
    #: (key index, arrival time) of every request that made at least one Cognito call.
    reaching: list[tuple[int, float]] = field(default_factory=list)


def drive(  # noqa: PLR0917 (a scenario's whole traffic in one call)
    w: World,
    events: Callable[[int], dict[str, Any]],
    count: int,
    interval: float,
    tally: Tally,
    key_of: Callable[[int], int] = lambda i: 0,
) -> None:
    """``count`` requests, round-robin over the containers, arriving ``interval`` simulated
    seconds apart (a request that takes longer delays the next arrival: one clock)."""
    from token_proxy.app import handle_event

    start = w.clock()
    for index in range(count):
        w.clock.set(start + index * interval)
        container = w.containers[index % len(w.containers)]
        before, arrived = w.log.calls, w.clock()
        response = handle_event(events(index), container.service, w.settings)
        tally.requests += 1
        tally.statuses[response.status] += 1
        if "Retry-After" in response.headers:
            tally.retry_after[response.headers["Retry-After"]] += 1
        if w.log.calls > before:
            tally.requests_reaching_cognito += 1
            tally.reaching.append((key_of(index), arrived))


def most_in_any_window(reaching: list[tuple[int, float]], window: float) -> int:
    """The most requests of one key that reached Cognito within any ``window`` seconds."""
    by_key: dict[int, list[float]] = {}
    for key, arrived in reaching:
        by_key.setdefault(key, []).append(arrived)
    most = 0
    for times in by_key.values():
        first = 0
        for last, arrived in enumerate(times):
            while arrived - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
    return most


def table_items(w: World, prefix: str = "") -> int:
    """The table's items (those whose key starts with ``prefix``)."""
    total, start = 0, None
    while True:
        kwargs: dict[str, Any] = {"TableName": TABLE_NAME, "Select": "COUNT"}
        if prefix:
            kwargs["FilterExpression"] = "begins_with(pk, :prefix)"
            kwargs["ExpressionAttributeValues"] = {":prefix": {"S": prefix}}
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = w.client.scan(**kwargs)
        total += int(page["Count"])
        start = page.get("LastEvaluatedKey")
        if start is None:
            return total


def _figures(w: World, tally: Tally, calls_before: int, ops_before: Counter[str]) -> dict[str, Any]:
    ops = w.dynamodb_ops - ops_before
    n = max(1, tally.requests)
    calls = w.log.calls - calls_before
    return {
        "requests": tally.requests,
        "cognito_calls": calls,
        "requests_reaching_cognito": tally.requests_reaching_cognito,
        "dynamodb_operations": sum(ops.values()),
        "dynamodb_operations_by_name": dict(sorted(ops.items())),
        "table_items": table_items(w),
        "budget_counters": table_items(w, "budget#"),
        "l1_entries": sum(len(c.l1) for c in w.containers),
        "l1_tokens": sum(c.l1.token_count for c in w.containers),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "retry_after_told": dict(sorted(tally.retry_after.items())),
        "per_1000": {
            "cognito_calls": round(calls * 1000 / n, 1),
            "dynamodb_operations": round(sum(ops.values()) * 1000 / n, 1),
        },
    }


def flood(
    settings: Settings, config: HostileConfig, events: Callable[[int], dict[str, Any]]
) -> Any:
    with world(settings, config.instances) as w:
        tally = Tally()
        started = w.clock()
        drive(w, events, config.requests, config.interval, tally)
        figures = _figures(w, tally, 0, Counter())
        figures["budget"] = unproven_budget(settings, started, w.clock())
        return figures


def unproven_budget(settings: Settings, started: float, ended: float) -> dict[str, Any]:
    """The Cognito calls the budget of unproven credentials allows between two moments: its
    limits times the windows the span touches (0 when the settings have no budget)."""
    window = 60.0  # token_proxy.budget.WINDOW_SECONDS
    windows = int(ended // window - started // window) + 1
    per_client = int(getattr(settings, "unproven_calls_per_client_per_minute", 0))
    total = int(getattr(settings, "unproven_calls_per_minute", 0))
    return {
        "windows": windows,
        "per_client_allowed": per_client * windows,
        "total_allowed": total * windows,
    }


def cognito_down(
    settings: Settings, config: HostileConfig, *, keys: int, status: int, retry_after: str | None
) -> dict[str, Any]:
    """``keys`` app clients whose tokens expired while Cognito fails every call."""
    clients = {KNOWN_CLIENT_ID: KNOWN_SECRET}
    clients.update({f"benchdownclient{i:011d}": f"benchdownsecret{i:035d}" for i in range(1, keys)})
    ids = list(clients)
    with world(settings, config.down_instances) as w:
        w.log.clients = clients

        def request(i: int) -> dict[str, Any]:
            client_id = ids[i % keys]
            return token_event(client_id, clients[client_id])

        drive(w, request, keys, 0.0, Tally())  # every key gets a token while Cognito is up
        w.clock.advance(TOKEN_LIFETIME + 1)  # every token expired
        w.log.down, w.log.retry_after = status, retry_after
        calls_before, ops_before = w.log.calls, Counter(w.dynamodb_ops)
        started = w.clock()
        tally = Tally()
        drive(w, request, config.requests, config.down_interval, tally, key_of=lambda i: i % keys)
        figures = _figures(w, tally, calls_before, ops_before)
        window = _backoff_window(settings, retry_after)
        duration = w.clock() - started
        figures.update(
            {
                "keys": keys,
                "containers": config.down_instances,
                "simulated_seconds": round(duration, 1),
                "backoff_window_seconds": window,
                "requests_reaching_cognito_per_key_per_window": round(
                    tally.requests_reaching_cognito / keys / max(1.0, duration / window), 3
                ),
                "most_requests_reaching_cognito_per_key_in_one_window": most_in_any_window(
                    tally.reaching, window
                ),
            }
        )
        return figures


def _backoff_window(settings: Settings, retry_after: str | None) -> float:
    """How long the fleet should leave a key alone after a failed call: Cognito's Retry-After
    (bounded by the proxy's maximum, when it has one) or the lease time."""
    bound = float(getattr(settings, "max_backoff_seconds", 0.0) or 0.0)
    if retry_after is not None:
        asked = float(retry_after)
        return min(asked, bound) if bound else asked
    return float(settings.lease_seconds)


def invalidation_after_flood(settings: Settings, config: HostileConfig) -> dict[str, Any]:
    from function_setup.metrics import RecordingMetrics
    from token_proxy.admin import handle_admin_event

    with world(settings, config.instances) as w:
        good = Tally()
        drive(w, lambda i: token_event(KNOWN_CLIENT_ID, KNOWN_SECRET), 1, 0.0, good)
        tally = Tally()
        drive(w, lambda i: token_event(KNOWN_CLIENT_ID, _random(40)), config.requests, 0.01, tally)
        items_before = table_items(w) - table_items(w, "budget#")
        ops_before = Counter(w.dynamodb_ops)
        started = time.perf_counter()
        answer = handle_admin_event(
            {"action": "invalidate", "client_id": KNOWN_CLIENT_ID},
            w.containers[0].service,
            metrics=RecordingMetrics(),
            l1_max_age_seconds=settings.l1_max_age_seconds,
        )
        seconds = time.perf_counter() - started
        ops = w.dynamodb_ops - ops_before
        round_trips = sum(ops.values())
        return {
            "flood_requests": tally.requests,
            "flood_statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "table_items_before": items_before,
            "table_items_after": table_items(w) - table_items(w, "budget#"),
            "answer": {k: v for k, v in answer.items() if k != "client_id"},
            "dynamodb_operations_by_name": dict(sorted(ops.items())),
            "dynamodb_round_trips": round_trips,
            "estimated_seconds_at_aws_latency": round(round_trips * AWS_ROUND_TRIP_MS / 1000, 2),
            "seconds_in_moto": round(seconds, 2),
        }


# ---------------------------------------------------------------------- entry point
def _random_secrets(settings: Settings, config: HostileConfig) -> dict[str, Any]:
    return flood(settings, config, lambda i: token_event(KNOWN_CLIENT_ID, _random(40)))


def _random_client_ids(settings: Settings, config: HostileConfig) -> dict[str, Any]:
    return flood(settings, config, lambda i: token_event(_random(26), _random(40)))


def _random_resource(settings: Settings, config: HostileConfig) -> dict[str, Any]:
    def event(i: int) -> dict[str, Any]:
        resource = f"&resource=https%3A%2F%2F{_random(12)}.example"
        return token_event(KNOWN_CLIENT_ID, KNOWN_SECRET, extra_form=resource)

    return flood(settings, config, event)


def _missing_scope(settings: Settings, config: HostileConfig) -> dict[str, Any]:
    return flood(
        settings, config, lambda i: token_event(KNOWN_CLIENT_ID, KNOWN_SECRET, MISSING_SCOPE)
    )


def _down(keys_of: Callable[[HostileConfig], int], status: int, retry_after: str | None) -> Any:
    def run(settings: Settings, config: HostileConfig) -> dict[str, Any]:
        keys = keys_of(config)
        return cognito_down(settings, config, keys=keys, status=status, retry_after=retry_after)

    return run


def _one(config: HostileConfig) -> int:
    return 1


def _many(config: HostileConfig) -> int:
    return config.down_keys


#: Every scenario by name, in the order the report shows them.
SCENARIOS: dict[str, Callable[[Settings, HostileConfig], dict[str, Any]]] = {
    "random_secrets": _random_secrets,
    "random_client_ids": _random_client_ids,
    "random_resource": _random_resource,
    "missing_scope": _missing_scope,
    "cognito_down_503_one_key": _down(_one, 503, None),
    "cognito_down_429_retry_after_30_one_key": _down(_one, 429, "30"),
    "cognito_down_503_many_keys": _down(_many, 503, None),
    "cognito_down_429_retry_after_30_many_keys": _down(_many, 429, "30"),
    "invalidation_after_flood": invalidation_after_flood,
}


def run_scenario(settings: Settings, config: HostileConfig, name: str) -> dict[str, Any]:
    """One scenario; runs in a worker process (moto in-process, the function's logs quiet)."""
    from bench.environment import quiet_function_logs
    from local.moto_fidelity import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()
    settings = replace(settings, token_table_name=TABLE_NAME, cognito_token_url=TOKEN_URL)
    started = time.perf_counter()
    with quiet_function_logs():
        figures = SCENARIOS[name](settings, config)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def run(settings: Settings, config: HostileConfig, pool: Any) -> dict[str, Any]:
    """Every scenario on ``pool`` (an executor of worker processes)."""
    futures = {name: pool.submit(run_scenario, settings, config, name) for name in SCENARIOS}
    results: dict[str, Any] = {"config": asdict(config)}
    results.update({name: future.result() for name, future in futures.items()})
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.hostile [--quick] [--out PATH]``: this section alone, as JSON."""
    import argparse
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from bench.environment import local_environment
    from bench.report import available_cpus

    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default: stdout)")
    args = parser.parse_args(argv)
    config = QUICK_CONFIG if args.quick else HostileConfig()
    with local_environment([]) as env:
        settings = env.base_settings
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(2, available_cpus()), mp_context=spawn) as pool:
        results = run(settings, config, pool)
    text = json.dumps(results, indent=2) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
