"""2. A simulated day: clients polling for a token every few minutes, on a controllable clock.

Each client asks for a token, waits ``poll_seconds`` after the answer, and asks again, all day
(clients that never cache a token themselves: the case a token proxy exists for). Clients start
at random moments of the first poll interval. The same schedule drives three worlds:

- no proxy: every poll is a call to the issuer;
- the API Gateway cache recipe (:mod:`bench.apigw`), TTL 3600 s;
- this proxy: ``instances`` TokenService instances (requests routed at random, as Lambda
  routes them to warm containers) on one DynamoDB table in moto (in-process, in a worker
  process of its own), their L1 on the simulated clock too.

The issuer is Cognito on the simulated clock: each call issues a new JWT-shaped token of a
realistic size whose ``exp`` is the call's whole second plus the lifetime (Cognito stamps
``iat``/``exp`` in whole seconds), and takes ``upstream_seconds``. Every answer a client gets
is checked against the token's real ``exp``: the smallest remaining lifetime served, what
``expires_in`` claimed for it, how many were served after expiry or below the proxy's minimum
remaining lifetime, and the largest over-claim (``expires_in`` minus the real remaining life:
how long a client trusting ``expires_in`` would use the token after it expired).

The proxy's world is split by client into ``shards`` worker processes (clients never share a
key, so the split changes no figure), because moto spends a few milliseconds per DynamoDB call.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import random
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.apigw import RECIPE_TTL_SECONDS, ApiGatewayCacheModel
from bench.clocks import SIM_EPOCH, SimClock
from bench.tokens import response_fields
from token_proxy.model import LeaseAttempt, StoredItem, TokenRequest, UpstreamResponse
from token_proxy.settings import Settings

DAY_SECONDS = 86_400.0
SIM_ISSUER_URL = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_BenchPool"
SIM_SCOPE = "bench-api/read"
REGION = "us-east-1"
TABLE_NAME = "token-proxy-bench-day"


@dataclass(frozen=True, slots=True)
class DayConfig:
    clients: int = 100
    poll_seconds: float = 300.0
    token_lifetime: int = 3600
    duration_seconds: float = DAY_SECONDS
    instances: int = 4
    #: Client <-> endpoint time of one request, and the time of one call to Cognito.
    request_seconds: float = 0.02
    upstream_seconds: float = 0.1
    seed: int = 5


# ---------------------------------------------------------------------- the simulated world
class SimIssuer:
    """Cognito's token endpoint on the simulated clock; remembers each token's real ``exp``."""

    def __init__(self, clock: SimClock, lifetime: int, upstream_seconds: float) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._half_trip = upstream_seconds / 2
        self.calls = 0
        self.expiry: dict[str, float] = {}

    def fetch(self, request: TokenRequest, deadline: object = None) -> UpstreamResponse:
        self._clock.advance(self._half_trip)
        issued = int(self._clock())
        token = _jwt_shaped(
            {
                "sub": request.client_id,
                "token_use": "access",
                "scope": request.scope,
                "auth_time": issued,
                "iss": SIM_ISSUER_URL,
                "exp": issued + self._lifetime,
                "iat": issued,
                "version": 2,
                "jti": str(uuid.uuid4()),
                "client_id": request.client_id,
            }
        )
        self.calls += 1
        self.expiry[token] = float(issued + self._lifetime)
        self._clock.advance(self._half_trip)
        body = {"access_token": token, "expires_in": self._lifetime, "token_type": "Bearer"}
        return UpstreamResponse(200, json.dumps(body).encode(), "application/json")


def _jwt_shaped(claims: dict[str, Any]) -> str:
    """A token the size of a Cognito RS256 access token (the signature is random bytes)."""

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = encode(json.dumps({"kid": "bench-key", "alg": "RS256"}).encode())
    return f"{header}.{encode(json.dumps(claims).encode())}.{encode(secrets.token_bytes(256))}"


@dataclass
class ServedLifetimes:
    """What clients were handed, measured against each token's real expiry."""

    min_remaining_allowed: float
    requests: int = 0
    min_remaining_seconds: float = math.inf
    expires_in_at_min: int | None = None
    served_after_expiry: int = 0
    served_below_min_remaining: int = 0
    max_overclaim_seconds: float = -math.inf

    def record(self, expires_in: int, remaining: float) -> None:
        self.requests += 1
        if remaining < self.min_remaining_seconds:
            self.min_remaining_seconds, self.expires_in_at_min = remaining, expires_in
        if remaining <= 0:
            self.served_after_expiry += 1
        if remaining < self.min_remaining_allowed:
            self.served_below_min_remaining += 1
        self.max_overclaim_seconds = max(self.max_overclaim_seconds, expires_in - remaining)

    def merge(self, other: ServedLifetimes) -> None:
        self.requests += other.requests
        if other.min_remaining_seconds < self.min_remaining_seconds:
            self.min_remaining_seconds = other.min_remaining_seconds
            self.expires_in_at_min = other.expires_in_at_min
        self.served_after_expiry += other.served_after_expiry
        self.served_below_min_remaining += other.served_below_min_remaining
        self.max_overclaim_seconds = max(self.max_overclaim_seconds, other.max_overclaim_seconds)

    def figures(self) -> dict[str, Any]:
        return {
            "min_remaining_seconds": round(self.min_remaining_seconds, 2),
            "expires_in_claimed_at_min": self.expires_in_at_min,
            "served_after_expiry": self.served_after_expiry,
            "served_below_min_remaining": self.served_below_min_remaining,
            "max_overclaim_seconds": round(self.max_overclaim_seconds, 2),
        }


def client_request(config: DayConfig, index: int) -> TokenRequest:
    client_id = f"bench-day-{index:04d}"
    secret = f"bench-day-secret-{index:04d}-not-for-production-0123456789"
    raw = f"{client_id}:{secret}".encode()
    return TokenRequest(
        client_id=client_id,
        client_secret=secret,
        scopes=(SIM_SCOPE,),
        auth_method="basic",
        basic_authorization="Basic " + base64.b64encode(raw).decode(),
    )


#: Answers client ``index``'s poll with (access_token, expires_in).
Answer = Callable[[int], tuple[str, int]]


def simulate(
    config: DayConfig,
    indices: list[int],
    *,
    clock: SimClock,
    issuer: SimIssuer,
    answer: Answer,
    min_remaining_allowed: float,
) -> ServedLifetimes:
    """Run the day's polls of the clients ``indices`` in time order."""
    starts = random.Random(config.seed)
    first = {i: SIM_EPOCH + starts.uniform(0, config.poll_seconds) for i in range(config.clients)}
    queue = [(first[i], i) for i in indices]
    heapq.heapify(queue)
    end = SIM_EPOCH + config.duration_seconds
    served = ServedLifetimes(min_remaining_allowed)
    while queue:
        when, index = heapq.heappop(queue)
        clock.set(when)
        clock.advance(config.request_seconds / 2)
        token, expires_in = answer(index)
        clock.advance(config.request_seconds / 2)
        served.record(expires_in, issuer.expiry[token] - clock())
        following = clock() + config.poll_seconds
        if following < end:
            heapq.heappush(queue, (following, index))
    return served


def _world_figures(
    config: DayConfig, indices: list[int], calls: int, served: ServedLifetimes
) -> dict[str, Any]:
    days = config.duration_seconds / DAY_SECONDS
    return {
        "requests": served.requests,
        "upstream_calls": calls,
        "calls_per_client_day": round(calls / len(indices) / days, 3),
        "hit_ratio": round(1 - calls / served.requests, 5) if served.requests else 0.0,
        **served.figures(),
    }


def run_no_proxy(config: DayConfig, min_remaining_allowed: float) -> dict[str, Any]:
    clock = SimClock()
    issuer = SimIssuer(clock, config.token_lifetime, config.upstream_seconds)
    requests = [client_request(config, i) for i in range(config.clients)]

    def answer(index: int) -> tuple[str, int]:
        return response_fields(issuer.fetch(requests[index]).body)

    indices = list(range(config.clients))
    served = simulate(
        config,
        indices,
        clock=clock,
        issuer=issuer,
        answer=answer,
        min_remaining_allowed=min_remaining_allowed,
    )
    return _world_figures(config, indices, issuer.calls, served)


def run_apigw(config: DayConfig, min_remaining_allowed: float) -> dict[str, Any]:
    clock = SimClock()
    issuer = SimIssuer(clock, config.token_lifetime, config.upstream_seconds)
    requests = [client_request(config, i) for i in range(config.clients)]
    by_authorization = {str(r.basic_authorization): r for r in requests}

    def upstream(authorization: str, scope: str) -> tuple[int, bytes]:
        response = issuer.fetch(by_authorization[authorization])
        return response.status, response.body

    model = ApiGatewayCacheModel(upstream, ttl_seconds=RECIPE_TTL_SECONDS, clock=clock)

    def answer(index: int) -> tuple[str, int]:
        _, body = model.request(str(requests[index].basic_authorization), SIM_SCOPE)
        return response_fields(body)

    indices = list(range(config.clients))
    served = simulate(
        config,
        indices,
        clock=clock,
        issuer=issuer,
        answer=answer,
        min_remaining_allowed=min_remaining_allowed,
    )
    return {
        **_world_figures(config, indices, issuer.calls, served),
        "ttl_seconds": RECIPE_TTL_SECONDS,
    }


# ---------------------------------------------------------------------- the proxy's world
class CountingStore:
    """A TokenStore that counts the DynamoDB operations it forwards."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.counts: Counter[str] = Counter()

    def get(self, key: str, *, consistent: bool = False) -> StoredItem | None:
        self.counts["get_consistent" if consistent else "get_eventual"] += 1
        result: StoredItem | None = self._store.get(key, consistent=consistent)
        return result

    def put_token(self, key: str, **fields: Any) -> None:
        self.counts["put_token"] += 1
        self._store.put_token(key, **fields)

    def try_acquire_lease(
        self, key: str, *, owner: str, now: float, lease_seconds: float
    ) -> LeaseAttempt:
        self.counts["lease"] += 1
        attempt: LeaseAttempt = self._store.try_acquire_lease(
            key, owner=owner, now=now, lease_seconds=lease_seconds
        )
        return attempt

    def release_lease(self, key: str, *, owner: str, delete_item: bool) -> None:
        self.counts["release"] += 1
        self._store.release_lease(key, owner=owner, delete_item=delete_item)

    def back_off(self, key: str, *, owner: str, until: float) -> bool:
        self.counts["back_off"] += 1
        held: bool = self._store.back_off(key, owner=owner, until=until)
        return held

    def count_call(self, counter: str, *, window: int, limit: int, expires_at: float) -> bool:
        self.counts["count_call"] += 1
        counted: bool = self._store.count_call(
            counter, window=window, limit=limit, expires_at=expires_at
        )
        return counted

    def __getattr__(self, name: str) -> Any:  # operations the day never uses (delete, admin)
        return getattr(self._store, name)


def proxy_shard(
    config: DayConfig, indices: list[int], settings: Settings, min_remaining_allowed: float
) -> dict[str, Any]:
    """The proxy's day for some clients; runs in a worker process (it starts moto in-process)."""
    import boto3
    from moto import mock_aws

    from bench.environment import quiet_function_logs
    from function_setup.metrics import RecordingMetrics
    from local.cloudformation_template import create_token_table
    from local.moto_fidelity import make_dynamodb_writes_atomic
    from local.moto_server import FAKE_CREDENTIALS
    from token_proxy.cache_key import CacheKeys
    from token_proxy.l1 import TokenL1
    from token_proxy.service import TokenService
    from token_proxy.store import DynamoTokenStore
    from token_proxy.wiring import DYNAMODB_CONFIG, build_token_service

    make_dynamodb_writes_atomic()
    settings = replace(settings, token_table_name=TABLE_NAME)
    with quiet_function_logs(), mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, **FAKE_CREDENTIALS)
        create_token_table(client, TABLE_NAME)
        clock = SimClock()
        issuer = SimIssuer(clock, config.token_lifetime, config.upstream_seconds)
        metrics = RecordingMetrics()
        keys = CacheKeys.ephemeral()  # the shard's fleet shares one server key
        stores: list[CountingStore] = []
        services: list[TokenService] = []
        for _ in range(config.instances):
            table = boto3.resource(
                "dynamodb", region_name=REGION, config=DYNAMODB_CONFIG, **FAKE_CREDENTIALS
            ).Table(TABLE_NAME)
            store = CountingStore(DynamoTokenStore(table))
            stores.append(store)
            services.append(
                build_token_service(
                    settings,
                    store=store,
                    cognito=issuer,
                    keys=keys,
                    l1=TokenL1(
                        settings.l1_max_entries,
                        max_age_seconds=settings.l1_max_age_seconds,
                        clock=clock,
                    ),
                    clock=clock,
                    sleep=clock.sleep,
                    metrics=metrics,
                )
            )
        requests = [client_request(config, i) for i in range(config.clients)]
        route = random.Random(config.seed + indices[0])

        def answer(index: int) -> tuple[str, int]:
            response = services[route.randrange(config.instances)].handle(requests[index])
            return response_fields(response.body)

        served = simulate(
            config,
            indices,
            clock=clock,
            issuer=issuer,
            answer=answer,
            min_remaining_allowed=min_remaining_allowed,
        )
        item = client.get_item(
            TableName=TABLE_NAME, Key={"pk": {"S": keys.key_for(requests[indices[0]])}}
        )["Item"]
    operations: Counter[str] = Counter()
    for store in stores:
        operations.update(store.counts)
    layers = Counter({k: v for k, v in metrics.counts.items() if k != "UpstreamCall"})
    return {
        "indices": len(indices),
        "calls": issuer.calls,
        "served": asdict(served),
        "dynamodb_operations": dict(operations),
        "service_metrics": dict(layers),
        "item_bytes": dynamodb_item_bytes(item),
    }


def dynamodb_item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: names plus values (numbers approximated as
    1 byte per two significant digits plus one)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "B":
            size += len(raw)
        elif kind == "N":
            digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
            size += math.ceil(len(digits) / 2) + 1
        else:
            size += len(json.dumps(raw))
    return size


@dataclass
class PendingDay:
    """The proxy's shards, running in worker processes."""

    config: DayConfig
    shards: list[tuple[list[int], Future[dict[str, Any]]]] = field(default_factory=list)


def submit_proxy(pool: Executor, config: DayConfig, settings: Settings, shards: int) -> PendingDay:
    pending = PendingDay(config)
    allowed = settings.min_remaining_ratio * config.token_lifetime
    for shard in range(shards):
        indices = list(range(shard, config.clients, shards))
        if indices:
            future = pool.submit(proxy_shard, config, indices, settings, allowed)
            pending.shards.append((indices, future))
    return pending


def collect(
    pending: PendingDay, settings: Settings, no_proxy: dict[str, Any], apigw: dict[str, Any]
) -> dict[str, Any]:
    config = pending.config
    allowed = settings.min_remaining_ratio * config.token_lifetime
    served = ServedLifetimes(allowed)
    calls = 0
    operations: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    item_bytes = 0
    for _, future in pending.shards:
        shard = future.result()
        calls += shard["calls"]
        served.merge(ServedLifetimes(**shard["served"]))
        operations.update(shard["dynamodb_operations"])
        layers.update(shard["service_metrics"])
        item_bytes = max(item_bytes, shard["item_bytes"])
    indices = list(range(config.clients))
    proxy = _world_figures(config, indices, calls, served)
    proxy.update(
        {
            "instances": config.instances,
            "service_metrics": dict(sorted(layers.items())),
            "dynamodb_operations": dict(sorted(operations.items())),
            "dynamodb_item_bytes": item_bytes,
        }
    )
    refresh_interval = settings.refresh_ratio * config.token_lifetime
    return {
        "config": asdict(config),
        "min_remaining_allowed_seconds": allowed,
        "ideal_calls_per_client_day": math.ceil(config.duration_seconds / refresh_interval)
        * DAY_SECONDS
        / config.duration_seconds,
        "no_proxy": no_proxy,
        "apigw_recipe": apigw,
        "proxy": proxy,
    }
