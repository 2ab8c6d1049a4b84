"""What the rotator reasons about: the secret's versions and stages, the pattern set's
accepted values, and the ports (protocols) the adapters implement.

Nothing here talks to AWS; ``secret_store.py`` and ``pattern_set.py`` do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
PREVIOUS = "AWSPREVIOUS"


class Step(StrEnum):
    """The four steps of the Secrets Manager rotation contract, plus our scheduled prune."""

    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"
    PRUNE = "prune"


def accepted_pattern(value: str) -> str:
    """The pattern-set entry that accepts exactly ``value`` (and nothing else) as a header."""
    return "^" + re.escape(value) + "$"


@dataclass(frozen=True, slots=True)
class RotationMarker:
    """When a version became AWSCURRENT, as recorded by finishSecret (or, if that record is
    missing, by the first prune that noticed the version) - never earlier than the real move."""

    version_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class SecretState:
    """The secret's metadata (DescribeSecret): no values."""

    rotation_enabled: bool
    stages: Mapping[str, frozenset[str]]
    marker: RotationMarker | None = None

    def version_with(self, stage: str) -> str | None:
        for version_id, labels in self.stages.items():
            if stage in labels:
                return version_id
        return None

    @property
    def current_version(self) -> str:
        version_id = self.version_with(CURRENT)
        if version_id is None:
            # Secrets Manager always keeps AWSCURRENT on one version; this is a broken secret.
            raise LookupError("the secret has no AWSCURRENT version")
        return version_id

    @property
    def rotation_in_progress(self) -> bool:
        """An AWSPENDING version other than AWSCURRENT exists (a rotation started and has
        not finished, or failed and waits for a retry)."""
        pending = self.version_with(PENDING)
        return pending is not None and pending != self.version_with(CURRENT)

    def marker_for_current(self) -> RotationMarker | None:
        if self.marker is not None and self.marker.version_id == self.version_with(CURRENT):
            return self.marker
        return None


@dataclass(frozen=True, slots=True)
class PatternSetSnapshot:
    """One read of the regex pattern set; ``lock_token`` guards the next write."""

    patterns: tuple[str, ...]
    lock_token: str
    description: str | None = None

    def accepts(self, value: str) -> bool:
        return accepted_pattern(value) in self.patterns


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What a step did, for the handler's return value and logs (never a secret value)."""

    step: Step
    outcome: str
    accepted_values: int | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {"step": str(self.step), "outcome": self.outcome}
        if self.accepted_values is not None:
            result["acceptedValues"] = self.accepted_values
        result.update(self.details)
        return result


class SecretStore(Protocol):
    """The origin-verify secret in Secrets Manager."""

    def describe(self) -> SecretState: ...

    def value(self, stage: str, version_id: str | None = None) -> str | None:
        """The value carrying ``stage`` (and being ``version_id`` if given); None if absent."""
        ...

    def random_value(self, length: int) -> str: ...

    def put_pending(self, version_id: str, value: str) -> None: ...

    def move_current(self, to_version_id: str, from_version_id: str) -> None: ...

    def record_marker(self, marker: RotationMarker) -> None: ...


class PatternSet(Protocol):
    """The WAF regex pattern set the web ACL's rule references."""

    def read(self) -> PatternSetSnapshot: ...

    def write(self, patterns: Sequence[str], snapshot: PatternSetSnapshot) -> None:
        """Replace the list, guarded by ``snapshot.lock_token``; raises StaleLockTokenError."""
        ...


class Canary(Protocol):
    """A real client_credentials request through WAF carrying a candidate origin value."""

    def check(self, origin_value: str) -> None:
        """Returns once a token request with ``origin_value`` succeeded, else CanaryFailedError."""
        ...


# Metric names (EMF, namespace from POWERTOOLS_METRICS_NAMESPACE; dimension "Step").
STEP_SUCCEEDED = "RotationStepSucceeded"
STEP_FAILED = "RotationStepFailed"
LOCK_CONFLICT = "PatternSetLockConflict"
PATTERN_SET_UPDATED = "PatternSetUpdated"
ACCEPTED_VALUES = "AcceptedOriginValues"
CANARY_ATTEMPT = "CanaryAttempt"
