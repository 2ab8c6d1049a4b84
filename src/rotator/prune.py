"""The prune's decision: what the pattern set keeps once a rotation is over.

The scheduled prune accepts only AWSCURRENT again, once the grace period since AWSCURRENT
moved (the :class:`~rotator.model.RotationMarker`) is over: warm proxies may send the previous
value until then. Before that it changes nothing, except that a set which lost AWSCURRENT gets
it back (repaired). A missing marker (finishSecret crashed right after moving the stage) is
recorded now, which starts the grace period no earlier than the real move. The caller reads the
secret after the set, and never prunes while a rotation is in progress.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.model import PatternSetSnapshot, RotationMarker, SecretState
from rotator.pattern_set_update import Plan


def prune_plan(
    snapshot: PatternSetSnapshot,
    state: SecretState,
    current: str,
    now: datetime,
    grace: timedelta,
) -> Plan:
    """What to write to the set read as ``snapshot``, AWSCURRENT's pattern being ``current``."""
    others = [pattern for pattern in snapshot.patterns if pattern != current]
    repaired = [*snapshot.patterns, current] if current not in snapshot.patterns else None
    if not others:
        return Plan(repaired, "repaired" if repaired else "nothing-to-prune")
    marker = state.marker_for_current()
    if marker is None:
        # finishSecret's record is missing (e.g. a crash right after the stage move):
        # start the grace period now, which is never earlier than the real move.
        marker = RotationMarker(state.current_version, now)
        return Plan(
            repaired,
            "marker-recorded",
            record_marker=marker,
            details={"pruneNotBefore": _iso(now + grace)},
        )
    if now - marker.since < grace:
        return Plan(
            repaired,
            "within-grace",
            details={"pruneNotBefore": _iso(marker.since + grace)},
        )
    return Plan([current], "pruned")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
