"""The four rotation steps and the scheduled prune, each idempotent.

Values a proxy may be sending at any moment, and why each is accepted:

* AWSCURRENT - every step keeps it in the pattern set (and the prune repairs a set that lost it).
* AWSPENDING - added by setSecret before finishSecret may make it current; finishSecret refuses
  to move AWSCURRENT to a value the set does not accept.
* the previous current value - warm proxies keep it for up to their max age after finishSecret,
  so nothing removes it until the grace period has passed since it stopped being current
  (the :class:`~rotator.model.RotationMarker`), and never while a rotation is in progress.

Pattern-set writes use the LockToken of the read they are computed from; when WAF reports a
concurrent change, the set (and the secret state it depends on) is re-read, the target
recomputed and the write retried with backoff, up to a bound, then the step fails loudly
(:mod:`rotator.pattern_set_update`). What the prune keeps is decided by
:func:`rotator.prune.prune_plan`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from function_setup.metrics import MetricsSink, NullMetrics
from rotator.errors import (
    MissingValueError,
    NotPendingError,
    PatternSetMismatchError,
    RotationNotEnabledError,
    SecretStoreUnavailableError,
    UnknownVersionError,
)
from rotator.model import (
    ACCEPTED_VALUES,
    CURRENT,
    PENDING,
    PREVIOUS,
    Canary,
    PatternSet,
    PatternSetSnapshot,
    RotationMarker,
    SecretState,
    SecretStore,
    Step,
    StepOutcome,
    accepted_pattern,
)
from rotator.pattern_set_update import PatternSetUpdate, Plan
from rotator.prune import prune_plan

logger = Logger(child=True)


class OriginSecretRotation:
    """Rotates the origin-verify secret and moves the WAF pattern set along with it."""

    def __init__(
        self,
        store: SecretStore,
        pattern_set: PatternSet,
        *,
        grace: timedelta,
        value_length: int = 64,
        lock_max_attempts: int = 5,
        lock_backoff_seconds: float = 0.2,
        canary: Canary | None = None,
        propagation_seconds: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._store = store
        self._pattern_set = pattern_set
        self._grace = grace
        self._value_length = value_length
        self._canary = canary
        self._propagation_seconds = propagation_seconds
        self._sleep = sleep
        self._metrics = metrics or NullMetrics()
        self._update = PatternSetUpdate(
            pattern_set,
            lock_max_attempts=lock_max_attempts,
            lock_backoff_seconds=lock_backoff_seconds,
            sleep=sleep,
            jitter=jitter,
            metrics=self._metrics,
        )

    # ------------------------------------------------------------------ rotation steps

    def run(self, step: Step, token: str, now: datetime) -> StepOutcome:
        """One Secrets Manager rotation step for the version ``token``, with the guards."""
        if step is Step.PRUNE:
            raise ValueError("prune is not a rotation step; call prune()")
        state = self._store.describe()
        if not state.rotation_enabled:
            raise RotationNotEnabledError("rotation is not enabled on the origin secret")
        labels = state.stages.get(token)
        if labels is None:
            raise UnknownVersionError(f"version {token} has no stage on the origin secret")
        if CURRENT in labels:
            logger.info(
                "version is already AWSCURRENT: nothing to do",
                extra={"step": str(step), "version_id": token},
            )
            return StepOutcome(step, "already-current")
        if PENDING not in labels:
            raise NotPendingError(f"version {token} is not AWSPENDING on the origin secret")
        if step is Step.CREATE:
            return self._create(token)
        if step is Step.SET:
            return self._set(token, state, now)
        if step is Step.TEST:
            return self._test(token)
        return self._finish(token, state, now)

    def _create(self, token: str) -> StepOutcome:
        self._require_value(CURRENT)
        if self._store.value(PENDING, token) is not None:
            logger.info(
                "pending value already exists", extra={"step": "createSecret", "version_id": token}
            )
            return StepOutcome(Step.CREATE, "already-created")
        self._store.put_pending(token, self._store.random_value(self._value_length))
        logger.info("pending value created", extra={"step": "createSecret", "version_id": token})
        return StepOutcome(Step.CREATE, "created")

    def _set(self, token: str, state: SecretState, now: datetime) -> StepOutcome:
        current = accepted_pattern(self._require_value(CURRENT))
        pending = accepted_pattern(self._require_value(PENDING, token))
        previous_value = self._store.value(PREVIOUS)
        previous = accepted_pattern(previous_value) if previous_value is not None else None
        keep_previous = not self._grace_over(state, now)

        def plan(snapshot: PatternSetSnapshot) -> Plan:
            target = [current] if current == pending else [current, pending]
            # A rotation that starts soon after the last one must not drop the value warm
            # proxies may still hold: the previous value stays until its grace period is over.
            if keep_previous and previous in snapshot.patterns and previous not in target:
                target.append(previous)
            if set(target) == set(snapshot.patterns):
                return Plan(None, "already-set")
            return Plan(target, "set")

        outcome, accepted = self._update.apply(Step.SET, plan)
        logger.info(
            "pattern set accepts AWSCURRENT and AWSPENDING",
            extra={
                "step": "setSecret",
                "version_id": token,
                "outcome": outcome.outcome,
                "accepted_values": accepted,
            },
        )
        return StepOutcome(Step.SET, outcome.outcome, accepted)

    def _test(self, token: str) -> StepOutcome:
        current = self._require_value(CURRENT)
        pending = self._store.value(PENDING, token)
        if pending is None or pending == current:
            return self._configuration_test(token, pending)
        snapshot = self._pattern_set.read()
        self._metrics.add_metric(ACCEPTED_VALUES, MetricUnit.Count, len(snapshot.patterns))
        missing = [
            stage
            for stage, value in ((CURRENT, current), (PENDING, pending))
            if not snapshot.accepts(value)
        ]
        if missing:
            raise PatternSetMismatchError(
                f"the pattern set does not accept {' and '.join(missing)}"
            )
        if self._canary is not None:
            self._canary.check(pending)  # retries until WAF accepts the pending value
        elif self._propagation_seconds > 0:
            # Without a canary nothing shows that every WAF node has the new pattern set: wait
            # before finishSecret makes the pending value the one proxies read and send.
            logger.info(
                "waiting for the pattern set to propagate",
                extra={"step": "testSecret", "seconds": self._propagation_seconds},
            )
            self._sleep(self._propagation_seconds)
        logger.info(
            "pattern set accepts both values",
            extra={"step": "testSecret", "version_id": token, "canary": self._canary is not None},
        )
        return StepOutcome(Step.TEST, "tested", len(snapshot.patterns))

    def _configuration_test(self, token: str, pending: str | None) -> StepOutcome:
        """Secrets Manager's test of the rotation configuration, not a rotation.

        When rotation is configured without rotating at once (the template's
        RotateImmediatelyOnUpdate false), Secrets Manager runs only testSecret, on an AWSPENDING
        version it creates for the test and removes afterwards
        (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html,
        RotateImmediately); that version has no value, or AWSCURRENT's. A rotation's testSecret
        always follows createSecret, which stored a new random value, and setSecret, which read
        it: so a missing or unchanged pending value can only be this test. There is nothing to
        propagate and nobody will send the value, so it succeeds at once; finishSecret still
        refuses to promote a version whose value is missing or not accepted by the pattern set.
        """
        logger.info(
            "rotation configuration test: no new value to test",
            extra={
                "step": "testSecret",
                "version_id": token,
                "pending_value": "absent" if pending is None else "same as AWSCURRENT",
            },
        )
        return StepOutcome(Step.TEST, "configuration-tested")

    def _finish(self, token: str, state: SecretState, now: datetime) -> StepOutcome:
        old_version = state.current_version
        pending = self._require_value(PENDING, token)
        snapshot = self._pattern_set.read()
        if not snapshot.accepts(pending):
            raise PatternSetMismatchError(
                "the pattern set does not accept AWSPENDING; refusing to make it AWSCURRENT"
            )
        self._store.move_current(token, old_version)
        self._record_marker(RotationMarker(token, now), Step.FINISH)
        logger.info(
            "AWSCURRENT moved; the previous value stays accepted until the prune",
            extra={"step": "finishSecret", "version_id": token, "previous_version_id": old_version},
        )
        return StepOutcome(Step.FINISH, "finished", len(snapshot.patterns))

    # ------------------------------------------------------------------ prune

    def prune(self, now: datetime) -> StepOutcome:
        """Accept only AWSCURRENT once the grace period since the last rotation is over and no
        rotation is in progress; otherwise change nothing (but re-add AWSCURRENT if missing)."""

        def plan(snapshot: PatternSetSnapshot) -> Plan:
            # The secret is read after the set: a rotation that starts in between either shows
            # up here as AWSPENDING, or changes the set (and its LockToken) before our write.
            state = self._store.describe()
            if state.rotation_in_progress:
                return Plan(None, "rotation-in-progress")
            current = accepted_pattern(self._require_value(CURRENT))
            return prune_plan(snapshot, state, current, now, self._grace)

        outcome, accepted = self._update.apply(Step.PRUNE, plan)
        if outcome.record_marker is not None:
            self._record_marker(outcome.record_marker, Step.PRUNE)
        logger.info(
            "prune",
            extra={
                "outcome": outcome.outcome,
                "accepted_values": accepted,
                **(outcome.details or {}),
            },
        )
        return StepOutcome(Step.PRUNE, outcome.outcome, accepted, outcome.details or {})

    # ------------------------------------------------------------------ helpers

    def _grace_over(self, state: SecretState, now: datetime) -> bool:
        marker = state.marker_for_current()
        return marker is not None and now - marker.since >= self._grace

    def _require_value(self, stage: str, version_id: str | None = None) -> str:
        value = self._store.value(stage, version_id)
        if value is None:
            which = f"version {version_id} ({stage})" if version_id else stage
            raise MissingValueError(f"the origin secret has no value for {which}")
        return value

    def _record_marker(self, marker: RotationMarker, step: Step) -> None:
        try:
            self._store.record_marker(marker)
        except SecretStoreUnavailableError:
            # Not fatal: the prune notices a missing marker and starts the grace period then.
            logger.warning(
                "rotation marker not recorded; the prune will record it",
                extra={"step": str(step), "version_id": marker.version_id},
                exc_info=True,
            )
