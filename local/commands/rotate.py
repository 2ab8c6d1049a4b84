"""``make rotate`` / ``make prune``: the rotator run against the running local stack.

``python -m local.commands.rotate rotate`` does one full rotation of the local origin-verify
secret as Secrets Manager does it: a fresh ``ClientRequestToken`` staged ``AWSPENDING``, then the
rotator's ``createSecret``, ``setSecret``, ``testSecret`` and ``finishSecret`` in order with
that token, then ``AWSPENDING`` removed from the finished version. Each step's outcome is
printed; no value ever is.

One difference from AWS: Secrets Manager stages the new version before ``createSecret`` with no
value yet, which no public API (and so not moto's server) can do. Here the pending value is put
with the rotator's own adapter, the way ``createSecret`` makes it (GetRandomPassword, the
configured length, alphanumeric), and ``createSecret`` then finds it ("already-created", its
idempotent path, as on a retried rotation).

``python -m local.commands.rotate prune`` sends ``{"action": "prune"}``. The rotator's tunables
are taken from the environment when set: ``PRUNE_GRACE_SECONDS=0 make prune`` prunes right away (the
template's default grace is 900 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from local.lambda_runtime import Function, FunctionSpec, InProcessFunction, Invocation
from local.moto_server import aws_client
from local.stack import read_running_state, rotator_tunables, spec_from_state, state_file_path

ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")

Printer = Callable[[str], None]


class RotationFailedError(RuntimeError):
    """A step of the rotation failed (its type and message name no value)."""


def rotator_spec(state: Mapping[str, Any], environ: Mapping[str, str]) -> FunctionSpec:
    """The rotator function of the running stack, with the environment's rotator tunables
    (``PRUNE_GRACE_SECONDS`` ...) applied."""
    overrides = {name: environ[name] for name in rotator_tunables() if environ.get(name)}
    return spec_from_state(state, "rotator", overrides)


def rotator(state: Mapping[str, Any], environ: Mapping[str, str]) -> InProcessFunction:
    """The rotator in this process (its logs to stderr)."""
    return InProcessFunction(rotator_spec(state, environ), log_stream=sys.stderr)


def _secretsmanager(state: Mapping[str, Any]) -> Any:
    return aws_client("secretsmanager", state["endpoints"]["aws"], state["region"])


def version_stages(state: Mapping[str, Any], token: str) -> frozenset[str] | None:
    """The staging labels of version ``token`` of the local origin secret (None: no such
    version)."""
    described = _secretsmanager(state).describe_secret(SecretId=state["resources"]["secret_arn"])
    stages = described.get("VersionIdsToStages", {}).get(token)
    return None if stages is None else frozenset(stages)


def stage_pending_version(state: Mapping[str, Any], function: Function, token: str) -> None:
    """Secrets Manager's part before ``createSecret``: version ``token`` staged AWSPENDING."""
    from rotator.secret_store import SecretsManagerStore
    from rotator.settings import RotatorSettings

    settings = RotatorSettings.from_env(function.spec.environment)
    store = SecretsManagerStore(_secretsmanager(state), settings.origin_secret_arn)
    store.put_pending(token, store.random_value(settings.value_length))


def finish_rotation(state: Mapping[str, Any], token: str) -> None:
    """Secrets Manager's part after a successful ``finishSecret``: AWSPENDING removed."""
    _secretsmanager(state).update_secret_version_stage(
        SecretId=state["resources"]["secret_arn"],
        VersionStage="AWSPENDING",
        RemoveFromVersionId=token,
    )


def _describe(invocation: Invocation) -> str:
    if invocation.ok:
        return json.dumps(invocation.payload, sort_keys=True)
    return json.dumps(invocation.as_lambda_output(), sort_keys=True)


def rotate(
    state: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    out: Printer = print,
    token: str | None = None,
    function: Function | None = None,
) -> list[dict[str, Any]]:
    """One full rotation, step by step; returns the steps' results. Raises
    :class:`RotationFailedError` at the first failed step (the rotation then stays pending, as
    in AWS, and the next ``rotate`` starts over with a new version). ``function`` is the rotator
    to call (default: :func:`rotator`, in this process, closed afterwards)."""
    token = token or str(uuid.uuid4())
    secret_arn = str(state["resources"]["secret_arn"])
    owned = function is None
    function = function or rotator(state, environ)
    results: list[dict[str, Any]] = []
    try:
        out(f"Rotating {state['resources']['secret_name']}: new version {token}")
        stage_pending_version(state, function, token)
        out("  (Secrets Manager's part) version staged AWSPENDING")
        for step in ROTATION_STEPS:
            event = {"Step": step, "SecretId": secret_arn, "ClientRequestToken": token}
            invocation = function.invoke(event)
            out(f"  {step:<13} {_describe(invocation)}")
            if not invocation.ok:
                raise RotationFailedError(f"{step} failed: {_describe(invocation)}")
            results.append(dict(invocation.payload))
        finish_rotation(state, token)
        out("  (Secrets Manager's part) AWSPENDING removed; the rotation is complete")
    finally:
        if owned:
            function.close()
    return results


def prune(
    state: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    out: Printer = print,
    function: Function | None = None,
) -> Any:
    """The schedule's prune event; returns the rotator's result (``function`` as in
    :func:`rotate`)."""
    owned = function is None
    function = function or rotator(state, environ)
    try:
        grace = function.spec.environment.get("PRUNE_GRACE_SECONDS", "the default")
        out(f"Pruning the pattern set of {state['resources']['secret_name']} (grace {grace} s)")
        invocation = function.invoke({"action": "prune"})
        out(f"  prune         {_describe(invocation)}")
        if not invocation.ok:
            raise RotationFailedError(f"prune failed: {_describe(invocation)}")
        return invocation.payload
    finally:
        if owned:
            function.close()


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.commands.rotate",
        description="Rotate or prune the local origin secret",
    )
    parser.add_argument("action", choices=("rotate", "prune"))
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    state = read_running_state(state_file_path(env))
    if state is None:
        print(
            f"No local stack is running (no live {state_file_path(env)}). "
            "Start it with `make run`.",
            file=sys.stderr,
        )
        return 1
    try:
        if args.action == "rotate":
            rotate(state, env)
        else:
            prune(state, env)
    except RotationFailedError as exc:
        print(f"local rotate: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
