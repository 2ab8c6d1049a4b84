"""OriginVerifySecret against moto's Secrets Manager: max age, refresh, and serving the last known
value when Secrets Manager fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from function_setup.metrics import RecordingMetrics
from tests.conftest import REGION
from tests.fakes.clock import FakeClock
from token_proxy.errors import OriginSecretUnavailable
from token_proxy.origin_verify import ORIGIN_SECRET_ERROR, OriginVerifySecret
from token_proxy.secrets_manager import SecretReader

SECRET_NAME = "token-proxy-origin-verify"
VALUE_1 = "OriginValueNumberOne1"
VALUE_2 = "OriginValueNumberTwo2"
MAX_AGE = 60.0
BACKOFF = 5.0


class CountingProvider:
    """A real SecretReader whose boto3 client counts GetSecretValue calls."""

    def __init__(self) -> None:
        self.client = boto3.client("secretsmanager", region_name=REGION)
        self.calls = 0
        self.client.meta.events.register("before-call.secrets-manager.GetSecretValue", self._count)
        self.reader = SecretReader(self.client)

    def _count(self, **_: Any) -> None:
        self.calls += 1


@pytest.fixture
def sm(aws: None) -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def secret_arn(sm: Any) -> str:
    return str(sm.create_secret(Name=SECRET_NAME, SecretString=VALUE_1)["ARN"])


@pytest.fixture
def counting(aws: None) -> CountingProvider:
    return CountingProvider()


def make_origin(
    arn: str, counting: CountingProvider, clock: FakeClock, **kwargs: Any
) -> OriginVerifySecret:
    return OriginVerifySecret(
        arn,
        max_age_seconds=kwargs.pop("max_age_seconds", MAX_AGE),
        reader=counting.reader,
        clock=clock,
        failure_backoff_seconds=BACKOFF,
        **kwargs,
    )


def test_value_is_read_from_secrets_manager(secret_arn: str, counting: CountingProvider) -> None:
    # GIVEN the secret holds VALUE_1
    origin = make_origin(secret_arn, counting, FakeClock())

    # WHEN the value is asked for
    value = origin.get()

    # THEN it is the secret string, read once
    assert value == VALUE_1
    assert counting.calls == 1


def test_value_is_cached_within_max_age_and_reread_after(
    sm: Any, secret_arn: str, counting: CountingProvider
) -> None:
    # GIVEN the value was read, then the secret was rotated to VALUE_2
    clock = FakeClock()
    origin = make_origin(secret_arn, counting, clock)
    assert origin.get() == VALUE_1
    sm.put_secret_value(SecretId=secret_arn, SecretString=VALUE_2)

    # WHEN it is asked for again just before the max age
    clock.advance(MAX_AGE - 0.001)
    before = origin.get()
    # AND again once the max age has passed
    clock.advance(0.001)
    after = origin.get()

    # THEN the old value is served until max age, then the new one, with one read each
    assert before == VALUE_1
    assert after == VALUE_2
    assert counting.calls == 2
    # AND the new value is cached in turn
    assert origin.get() == VALUE_2
    assert counting.calls == 2


def test_zero_max_age_reads_every_time(
    sm: Any, secret_arn: str, counting: CountingProvider
) -> None:
    # GIVEN a max age of 0
    origin = make_origin(secret_arn, counting, FakeClock(), max_age_seconds=0)

    # WHEN asked three times, the secret changing in between
    first = origin.get()
    sm.put_secret_value(SecretId=secret_arn, SecretString=VALUE_2)
    second = origin.get()
    third = origin.get()

    # THEN every call read Secrets Manager
    assert (first, second, third) == (VALUE_1, VALUE_2, VALUE_2)
    assert counting.calls == 3


def test_refresh_rereads_now(sm: Any, secret_arn: str, counting: CountingProvider) -> None:
    # GIVEN a cached value and a rotated secret
    clock = FakeClock()
    origin = make_origin(secret_arn, counting, clock)
    assert origin.get() == VALUE_1
    sm.put_secret_value(SecretId=secret_arn, SecretString=VALUE_2)

    # WHEN refresh is called well within the max age
    refreshed = origin.refresh()

    # THEN it read the new value, which get() now serves from memory
    assert refreshed == VALUE_2
    assert origin.get() == VALUE_2
    assert counting.calls == 2


def test_forced_rereads_happen_at_most_once_a_second(
    sm: Any, secret_arn: str, counting: CountingProvider
) -> None:
    # GIVEN a cached value, and a secret rotated since
    clock = FakeClock()
    origin = make_origin(secret_arn, counting, clock)
    assert origin.get() == VALUE_1
    sm.put_secret_value(SecretId=secret_arn, SecretString=VALUE_2)

    # WHEN many requests hit a 403 at once and each asks for a refresh
    values = [origin.refresh() for _ in range(20)]

    # THEN one re-read served them all the new value
    assert values == [VALUE_2] * 20
    assert counting.calls == 2
    # AND a refresh a second later reads again
    clock.advance(1.0)
    assert origin.refresh() == VALUE_2
    assert counting.calls == 3


def test_failure_with_known_value_keeps_serving_it_and_backs_off(
    sm: Any, secret_arn: str, counting: CountingProvider, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the value was read, then Secrets Manager started failing for this secret
    caplog.set_level(logging.DEBUG, logger="token_proxy")
    clock = FakeClock()
    metrics = RecordingMetrics()
    origin = make_origin(secret_arn, counting, clock, metrics=metrics)
    assert origin.get() == VALUE_1
    sm.delete_secret(SecretId=secret_arn, RecoveryWindowInDays=7)

    # WHEN the max age passes and the value is asked for
    clock.advance(MAX_AGE + 1)
    served = origin.get()

    # THEN the old value is still served, with a warning that does not contain it
    assert served == VALUE_1
    assert counting.calls == 2
    assert metrics.counts == {ORIGIN_SECRET_ERROR: 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for record in caplog.records:
        assert VALUE_1 not in record.getMessage() + repr(vars(record))

    # WHEN asked again within the back-off
    clock.advance(BACKOFF - 0.001)
    # THEN no new read is tried
    assert origin.get() == VALUE_1
    assert counting.calls == 2

    # WHEN Secrets Manager recovers (with a rotated value) and the back-off has passed
    sm.restore_secret(SecretId=secret_arn)
    sm.put_secret_value(SecretId=secret_arn, SecretString=VALUE_2)
    clock.advance(0.001)
    # THEN the next call reads again and serves the new value
    assert origin.get() == VALUE_2
    assert counting.calls == 3


def test_refresh_failure_with_known_value_returns_it(
    sm: Any, secret_arn: str, counting: CountingProvider
) -> None:
    # GIVEN a known value and a failing Secrets Manager
    origin = make_origin(secret_arn, counting, FakeClock())
    assert origin.get() == VALUE_1
    sm.delete_secret(SecretId=secret_arn, RecoveryWindowInDays=7)

    # WHEN refresh is forced
    value = origin.refresh()

    # THEN the last known value comes back after one failed read
    assert value == VALUE_1
    assert counting.calls == 2


def test_failure_without_known_value_raises(sm: Any, counting: CountingProvider) -> None:
    # GIVEN a secret that does not exist
    missing_arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:missing-AbCdEf"
    metrics = RecordingMetrics()
    origin = make_origin(missing_arn, counting, FakeClock(), metrics=metrics)

    # WHEN the value is asked for, and refreshed
    # THEN both raise the domain error, and each tried a read
    with pytest.raises(OriginSecretUnavailable, match="could not be read"):
        origin.get()
    with pytest.raises(OriginSecretUnavailable):
        origin.refresh()
    assert counting.calls == 2
    assert metrics.counts == {ORIGIN_SECRET_ERROR: 2}


def test_binary_or_empty_secret_is_not_a_usable_value(sm: Any, counting: CountingProvider) -> None:
    # GIVEN a secret stored as SecretBinary
    arn = sm.create_secret(Name="binary-origin", SecretBinary=b"\x00\x01")["ARN"]
    origin = make_origin(arn, counting, FakeClock())

    # WHEN the value is asked for THEN it is unavailable (never sent as a header)
    with pytest.raises(OriginSecretUnavailable, match="TypeError"):
        origin.get()


def test_default_provider_reads_the_secret(secret_arn: str) -> None:
    # GIVEN an OriginVerifySecret that builds its own provider on first use
    origin = OriginVerifySecret(secret_arn, max_age_seconds=MAX_AGE)

    # WHEN the value is asked for THEN it comes from Secrets Manager
    assert origin.get() == VALUE_1
    assert VALUE_1 not in repr(origin)


@pytest.fixture
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_default_provider_honours_aws_endpoint_url(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN AWS_ENDPOINT_URL points at a Secrets Manager on loopback holding the secret
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="endpoint-origin", SecretString=VALUE_2)["ARN"]

    # WHEN an OriginVerifySecret with the default provider reads it
    origin = OriginVerifySecret(arn, max_age_seconds=MAX_AGE)

    # THEN the value came from that endpoint
    assert origin.get() == VALUE_2
