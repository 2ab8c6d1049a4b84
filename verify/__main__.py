"""``python -m verify`` (``make verify``): check a deployed stack, or ``--local`` the local one.

The stack: ``--stack NAME`` (``STACK=``), else ``stack_name`` from samconfig.toml. Its Region:
``--region`` or the usual AWS configuration, else samconfig.toml's ``region``. The client:
``CLIENT_ID``, ``CLIENT_SECRET`` (asked for without echo when it is not set and a terminal is
attached) and ``SCOPE`` from the environment; locally the shipped demo client by default.
Exit status: 0 when no check failed, 1 when one did, 2 for a command line that cannot run.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from local.cognito_token_endpoint import DEMO_CLIENTS_PATH, ClientRegistration, load_clients
from local.stack import read_running_state, state_file_path
from verify.checks import Verification
from verify.probes import Credentials
from verify.report import CheckResult, failed, printer, summary
from verify.stack import (
    Deployment,
    StackNotFoundError,
    from_cloudformation,
    from_local_state,
    samconfig_defaults,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMCONFIG = REPO_ROOT / "samconfig.toml"


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: Callable[[str], None] | None = None,
    ask_secret: Callable[[str], str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="make verify",
        description="Check a deployed stack (or the local stack) end to end, in under a minute.",
    )
    parser.add_argument("--local", action="store_true", help="check the stack of make run")
    parser.add_argument("--stack", help="the stack's name (default: samconfig.toml's)")
    parser.add_argument("--region", help="the stack's Region (default: the AWS configuration)")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    emit = out or printer(sys.stdout)
    try:
        deployment = _find(args, env)
    except StackNotFoundError as exc:
        emit(failed("stack", str(exc)).line())
        return 1
    credentials = _credentials(deployment, env, ask_secret)
    client = f", client {credentials.client_id}" if credentials else ", no client"
    emit(f"make verify: stack {deployment.name} in {deployment.region}{client}")
    verification = Verification(deployment, credentials)
    results: list[CheckResult] = verification.run(lambda result: emit(result.line()))
    for line in verification.closing:
        emit(line)
    emit(summary(results))
    return 1 if any(result.failed for result in results) else 0


def _find(args: argparse.Namespace, env: Mapping[str, str]) -> Deployment:
    if args.local:
        state = read_running_state(state_file_path(env))
        if state is None:
            raise StackNotFoundError(
                f"no local stack is running (no live {state_file_path(env)}): start it with "
                "make run"
            )
        return from_local_state(state)
    name, region = samconfig_defaults(SAMCONFIG)
    stack_name = args.stack or env.get("STACK") or name
    if not stack_name:
        raise StackNotFoundError(
            "no stack name: set STACK=<name>, or deploy with sam deploy --guided (it saves "
            "stack_name in samconfig.toml); LOCAL=1 checks the local stack"
        )
    configured = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    try:
        return from_cloudformation(stack_name, args.region or configured or region)
    except StackNotFoundError:
        raise
    except Exception as exc:  # no credentials, no network: one line, no traceback
        raise StackNotFoundError(
            f"CloudFormation could not be asked for stack {stack_name}: {type(exc).__name__} "
            "(are AWS credentials configured?)"
        ) from None


def _credentials(
    deployment: Deployment,
    env: Mapping[str, str],
    ask_secret: Callable[[str], str] | None,
) -> Credentials | None:
    client_id = env.get("CLIENT_ID", "").strip()
    secret = env.get("CLIENT_SECRET", "")
    scope = env.get("SCOPE", "").strip()
    if deployment.is_local and (not client_id or not secret):
        shipped = _shipped_client(deployment, client_id)
        if shipped is not None:
            return Credentials(
                shipped.client_id, shipped.client_secret, scope or " ".join(shipped.scopes[:1])
            )
    if not client_id:
        return None
    if not secret:
        ask = ask_secret or (getpass.getpass if sys.stdin.isatty() else None)
        if ask is None:
            return None
        secret = ask(f"Client secret of {client_id} (not shown): ")
    return Credentials(client_id, secret, scope) if secret else None


def _shipped_client(deployment: Deployment, client_id: str) -> ClientRegistration | None:
    """The shipped demo client (its fake secret is published), when the local stack uses the
    shipped clients."""
    if not deployment.shipped_clients:
        return None
    clients = load_clients(DEMO_CLIENTS_PATH)
    if not client_id:
        return clients[0]
    return next((c for c in clients if c.client_id == client_id), None)


if __name__ == "__main__":
    raise SystemExit(main())
