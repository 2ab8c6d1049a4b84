"""``make invalidate CLIENT_ID=...``: drop every cached token of one client from the local stack.

It sends the operator's admin event ``{"action": "invalidate", "client_id": ...}`` to the
token proxy's own handler, in this process, with the running stack's function environment
(``.local/stack.json``, written by ``make run``) - exactly what
``aws lambda invoke --function-name <TokenProxyFunctionName> ...`` does in AWS - and prints
how many cache items were deleted. The stack's warm proxy containers revalidate their in-memory
copies within ``L1_MAX_AGE_SECONDS`` (30 s by default), as deployed ones do. An invalidation
that ran out of time before every item was deleted says so (``"complete": false``) and asks to
be run again.

Without a running stack it falls back to ``AWS_ENDPOINT_URL`` and ``TOKEN_TABLE_NAME`` (and
``AWS_REGION``) from the environment and deletes through the table's ``client-id`` index.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from local.lambda_runtime import SRC_DIR, InProcessFunction
from local.moto_server import FAKE_CREDENTIALS
from local.stack import read_running_state, spec_from_state, state_file_path

TOKEN_PROXY = "token_proxy"  # noqa: S105 - a function name
DEFAULT_REGION = "eu-west-1"

Printer = Callable[[str], None]


class InvalidationError(RuntimeError):
    """The invalidation did not complete (its message names no secret)."""


def admin_event(client_id: str) -> dict[str, str]:
    return {"action": "invalidate", "client_id": client_id}


def invalidate_in_stack(state: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    """The token proxy handler's answer to the admin event, run with the stack's environment."""
    function = InProcessFunction(spec_from_state(state, TOKEN_PROXY), log_stream=sys.stderr)
    try:
        invocation = function.invoke(admin_event(client_id))
    finally:
        function.close()
    if not invocation.ok:
        raise InvalidationError(json.dumps(invocation.as_lambda_output(), sort_keys=True))
    return dict(invocation.payload)


def invalidate_table(endpoint_url: str, region: str, table_name: str, client_id: str) -> int:
    """Delete the client's items straight through the store (no running stack to ask, and no
    deadline: the batches go on until every item is deleted)."""
    if str(SRC_DIR) not in sys.path:  # the handlers' packages, as in the Lambda artifact
        sys.path.insert(0, str(SRC_DIR))
    from token_proxy.errors import StoreUnavailable
    from token_proxy.store import DynamoTokenStore

    dynamodb = boto3.resource(
        "dynamodb", endpoint_url=endpoint_url, region_name=region, **FAKE_CREDENTIALS
    )
    try:
        deletion = DynamoTokenStore(dynamodb.Table(table_name)).delete_client_items(
            client_id, should_stop=lambda: False
        )
        return deletion.deleted
    except StoreUnavailable as exc:
        raise InvalidationError(f"the table {table_name} could not be updated") from exc


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.commands.invalidate",
        description="Invalidate every cached token of one app client in the local stack",
    )
    parser.add_argument("client_id", help="the app client id whose cached tokens are dropped")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    if not args.client_id.strip():
        print("local invalidate: CLIENT_ID is empty", file=sys.stderr)
        return 2
    state = read_running_state(state_file_path(env))
    try:
        if state is not None:
            result = invalidate_in_stack(state, args.client_id)
            deleted = int(result["deleted_items"])
            print(json.dumps(result, sort_keys=True))
            if not result.get("complete", True):
                print(
                    f"Invalidated {deleted} cached item(s) of client {args.client_id} before "
                    "the invocation's time ran out; run it again to delete the rest."
                )
                return 3
            print(
                f"Invalidated {deleted} cached item(s) of client {args.client_id}; warm proxy "
                f"containers drop their copies within {result['complete_within_seconds']:g} s."
            )
            return 0
        endpoint, table = env.get("AWS_ENDPOINT_URL"), env.get("TOKEN_TABLE_NAME")
        if endpoint and table:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
            deleted = invalidate_table(endpoint, region, table, args.client_id)
            print(f"Invalidated {deleted} cached item(s) of client {args.client_id} in {table}.")
            return 0
    except InvalidationError as exc:
        print(f"local invalidate: {exc}", file=sys.stderr)
        return 1
    print(
        f"No local stack is running (no live {state_file_path(env)}), and AWS_ENDPOINT_URL and "
        "TOKEN_TABLE_NAME are not both set. Start the stack with `make run`.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
