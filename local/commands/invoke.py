"""``make invoke EVENT=events/<file>.json``: a handler run with an event file, as
``sam local invoke`` would, without Docker.

The handler is picked from the event: an HTTP API (payload 2.0) event goes to the token proxy,
a Secrets Manager rotation step or ``{"action": "prune"}`` to the rotator. It runs in this
process against the running local stack's AWS endpoint (``.local/stack.json``); when no stack
runs, a temporary one (moto, the template's resources and the local issuer, no HTTP proxy) is
started for the invocation and stopped afterwards. The response is printed to stdout as JSON;
the function's logs and notes go to stderr.

A rotation step's ``SecretId`` in an event file is a placeholder: it is replaced by the local
secret's ARN. Its ``ClientRequestToken`` names the rotation's new version. In AWS, Secrets
Manager opens a rotation before the first step (the version staged ``AWSPENDING``), and after
a successful ``finishSecret`` removes ``AWSPENDING``; the step events alone cannot do that. So,
as Secrets Manager would have, a version the secret does not have yet is staged ``AWSPENDING``
first (with a new value made as ``createSecret`` makes it: ``make rotate`` does the same), and
``AWSPENDING`` is removed after ``finishSecret`` succeeds. The four ``events/rotation_*.json``
files, run in order (create, set, test, finish), are one whole rotation; a step run out of
order gets the rotator's own refusal (``testSecret`` before ``setSecret``: the pattern set does
not accept the value yet), and a note says what to run. ``make rotate`` rotates with a fresh
version each time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.commands.rotate import finish_rotation, stage_pending_version, version_stages
from local.lambda_runtime import Function, InProcessFunction, Invocation
from local.stack import (
    LocalStack,
    StackConfig,
    proxy_tunables,
    read_running_state,
    rotator_tunables,
    spec_from_state,
    state_file_path,
)

TOKEN_PROXY = "token_proxy"  # noqa: S105 - a function name
ROTATOR = "rotator"


class UnsupportedEventError(ValueError):
    """The event is for neither function."""


def function_for(event: Any) -> str:
    """``token_proxy`` for an HTTP API payload 2.0 event or the invalidate command, ``rotator``
    for a rotation step or the prune event."""
    if not isinstance(event, Mapping):
        raise UnsupportedEventError("the event must be a JSON object")
    if "Step" in event or event.get("action") == "prune":
        return ROTATOR
    if event.get("version") == "2.0" and isinstance(event.get("requestContext"), Mapping):
        return TOKEN_PROXY
    if event.get("action") == "invalidate":  # the token proxy's operator command
        return TOKEN_PROXY
    if "httpMethod" in event:
        raise UnsupportedEventError(
            "this is a REST API (payload 1.0) event; the token proxy sits behind an HTTP API "
            "(payload format 2.0)"
        )
    raise UnsupportedEventError(
        "expected an HTTP API payload 2.0 event, a rotation step, "
        '{"action": "prune"} or {"action": "invalidate", "client_id": ...}'
    )


def _note(message: str) -> None:
    print(f"[local invoke] {message}", file=sys.stderr, flush=True)


def invoke(event: Mapping[str, Any], state: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """Run the event's function against the stack described by ``state``; returns what the
    function returned, or Lambda's error document."""
    function = function_for(event)
    names = proxy_tunables() if function == TOKEN_PROXY else rotator_tunables()
    overrides = {name: environ[name] for name in names if environ.get(name)}
    payload = dict(event)
    if function == ROTATOR and "Step" in payload:
        secret_arn = state["resources"]["secret_arn"]
        if payload.get("SecretId") != secret_arn:
            payload["SecretId"] = secret_arn
            _note(f"SecretId replaced by the local secret's ARN ({secret_arn})")
    spec = spec_from_state(state, function, overrides)
    handler = InProcessFunction(spec, log_stream=sys.stderr)
    try:
        if function == ROTATOR and "Step" in payload:
            return _rotation_step(state, handler, payload)
        _note(f"invoking {spec.handler} ({spec.name})")
        return handler.invoke(payload)
    finally:
        handler.close()


def _rotation_step(
    state: Mapping[str, Any], handler: Function, event: Mapping[str, Any]
) -> Invocation:
    """A rotation step with Secrets Manager's parts around it (see the module docstring)."""
    token = event.get("ClientRequestToken")
    if not isinstance(token, str) or not token:
        _note(f"invoking {handler.spec.handler} ({handler.spec.name})")
        return handler.invoke(event)
    if version_stages(state, token) is None:
        stage_pending_version(state, handler, token)
        _note(
            f"version {token} staged AWSPENDING with a new value, as Secrets Manager opens a "
            "rotation (and createSecret makes the value)"
        )
    _note(f"invoking {handler.spec.handler} ({handler.spec.name}): {event.get('Step')}")
    invocation = handler.invoke(event)
    stages = version_stages(state, token) or frozenset()
    if invocation.ok and event.get("Step") == "finishSecret" and "AWSPENDING" in stages:
        finish_rotation(state, token)
        _note(f"AWSPENDING removed from version {token}: the rotation is complete")
    elif not invocation.ok:
        _note(_rotation_hint(token, stages))
    return invocation


def _rotation_hint(token: str, stages: frozenset[str]) -> str:
    if "AWSPENDING" in stages:
        return (
            "run the rotation events in order (rotation_create_secret, rotation_set_secret, "
            "rotation_test_secret, rotation_finish_secret), or `make rotate` for a whole rotation"
        )
    return (
        f"version {token} was rotated already ({', '.join(sorted(stages)) or 'no stage now'}); "
        "`make rotate` rotates with a fresh version (or give the events a new "
        "ClientRequestToken)"
    )


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.commands.invoke", description="Invoke a handler with an event file"
    )
    parser.add_argument("event", type=Path, help="an event file, e.g. events/token_basic.json")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
        function_for(event)
    except (OSError, ValueError) as exc:
        print(f"local invoke: {args.event}: {exc}", file=sys.stderr)
        return 2

    state = read_running_state(state_file_path(env))
    temporary: LocalStack | None = None
    if state is None:
        _note(
            "no local stack is running (`make run`): starting a temporary one in this process "
            "(moto, the template's resources, the local issuer)"
        )
        temporary = LocalStack(
            StackConfig(
                moto_port=0,
                issuer_port=0,
                serve_proxy=False,
                state_file=None,
                containers=0,
            )
        ).start()
        state = temporary.state()
    else:
        _note(f"using the running local stack (AWS endpoint {state['endpoints']['aws']})")
    try:
        result = invoke(event, state, env)
    finally:
        if temporary is not None:
            temporary.stop()
    print(json.dumps(result.as_lambda_output(), indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
