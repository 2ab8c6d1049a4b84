"""The Secrets Manager and WAFv2 adapters on moto: what they read, what they write, and how AWS
errors become the rotator's own exceptions (never quoting a value)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from rotator.errors import (
    PatternSetUnavailableError,
    SecretStoreUnavailableError,
    StaleLockTokenError,
)
from rotator.model import CURRENT, PENDING, RotationMarker
from rotator.pattern_set import WafRegexPatternSet
from rotator.secret_store import MARKER_SINCE_TAG, MARKER_VERSION_TAG, SecretsManagerStore
from tests.conftest import REGION

VALUE = "V" * 64


@pytest.fixture
def sm(aws: None) -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def waf(aws: None) -> Any:
    return boto3.client("wafv2", region_name=REGION)


def _pattern_set(waf: Any) -> tuple[WafRegexPatternSet, str]:
    summary = waf.create_regex_pattern_set(
        Name="origin-verify",
        Scope="REGIONAL",
        Description="Accepted x-origin-verify values",
        RegularExpressionList=[{"RegexString": f"^{VALUE}$"}],
    )["Summary"]
    return WafRegexPatternSet(waf, "origin-verify", summary["Id"], "REGIONAL"), summary["Id"]


def test_the_pattern_set_is_read_and_written_with_its_lock_token_keeping_the_description(
    waf: Any,
) -> None:
    # GIVEN a pattern set
    adapter, set_id = _pattern_set(waf)

    # WHEN it is read and written back with two values
    snapshot = adapter.read()
    adapter.write([f"^{VALUE}$", "^W$"], snapshot)

    # THEN the list changed, the description did not, and the lock token moved on
    after = waf.get_regex_pattern_set(Name="origin-verify", Scope="REGIONAL", Id=set_id)
    assert snapshot.patterns == (f"^{VALUE}$",)
    assert snapshot.description == "Accepted x-origin-verify values"
    assert [e["RegexString"] for e in after["RegexPatternSet"]["RegularExpressionList"]] == [
        f"^{VALUE}$",
        "^W$",
    ]
    assert after["RegexPatternSet"]["Description"] == "Accepted x-origin-verify values"
    assert after["LockToken"] != snapshot.lock_token


def test_a_write_with_a_stale_lock_token_is_signalled_without_quoting_the_list(waf: Any) -> None:
    # GIVEN a read, then someone else's write
    adapter, _ = _pattern_set(waf)
    stale = adapter.read()
    adapter.write(["^other$"], stale)

    # WHEN we write with the old token
    with pytest.raises(StaleLockTokenError) as failure:
        adapter.write([f"^{VALUE}$"], stale)

    # THEN it is a stale-token signal and nothing was written
    assert VALUE not in str(failure.value)
    assert adapter.read().patterns == ("^other$",)


def test_a_missing_pattern_set_is_unavailable(waf: Any) -> None:
    adapter = WafRegexPatternSet(waf, "nope", "00000000-0000-0000-0000-000000000000", "REGIONAL")
    with pytest.raises(PatternSetUnavailableError, match="GetRegexPatternSet failed on nope"):
        adapter.read()


def test_the_secret_store_reads_stages_values_and_the_marker(sm: Any) -> None:
    # GIVEN a secret with a current value and a marker written by the store
    arn = sm.create_secret(Name="origin", SecretString=VALUE)["ARN"]
    store = SecretsManagerStore(sm, arn)
    (version,) = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.record_marker(RotationMarker(version, moment))

    # WHEN it is described and read
    state = store.describe()

    # THEN stages, marker and values come back; an absent stage is None
    assert state.stages == {version: frozenset({CURRENT})}
    assert state.marker == RotationMarker(version, moment)
    assert state.rotation_enabled is False
    assert store.value(CURRENT) == VALUE
    assert store.value(PENDING) is None
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=arn)["Tags"]}
    assert tags == {MARKER_VERSION_TAG: version, MARKER_SINCE_TAG: "2030-01-02T03:04:05Z"}


def test_an_unreadable_marker_counts_as_missing(sm: Any) -> None:
    arn = sm.create_secret(
        Name="origin",
        SecretString=VALUE,
        Tags=[
            {"Key": MARKER_VERSION_TAG, "Value": "v"},
            {"Key": MARKER_SINCE_TAG, "Value": "yesterday"},
        ],
    )["ARN"]
    assert SecretsManagerStore(sm, arn).describe().marker is None


def test_pending_values_are_random_alphanumeric_and_put_on_the_token(sm: Any) -> None:
    # GIVEN a secret
    arn = sm.create_secret(Name="origin", SecretString=VALUE)["ARN"]
    store = SecretsManagerStore(sm, arn)

    # WHEN a random value is put as AWSPENDING on a version
    value = store.random_value(64)
    store.put_pending("5c3e1f0a-0b1c-4d2e-8f3a-4b5c6d7e8f90", value)

    # THEN it is 64 alphanumeric characters, readable by version and stage
    assert len(value) == 64 and value.isascii() and value.isalnum()
    assert store.value(PENDING, "5c3e1f0a-0b1c-4d2e-8f3a-4b5c6d7e8f90") == value
    assert store.value(CURRENT) == VALUE


def test_secrets_manager_errors_become_store_errors(sm: Any) -> None:
    store = SecretsManagerStore(
        sm, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf"
    )
    with pytest.raises(SecretStoreUnavailableError, match="DescribeSecret failed"):
        store.describe()
    with pytest.raises(SecretStoreUnavailableError, match="moving AWSCURRENT"):
        store.move_current("a", "b")
