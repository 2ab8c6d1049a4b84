"""Finding the stack to check: its parameters, outputs and resources, and where its pool is.

A deployed stack is read with CloudFormation's DescribeStacks (status, Parameters, Outputs) and
ListStackResources (each resource's type and physical ID; for an ``AWS::CloudWatch::Alarm`` the
physical ID is the alarm's name, the primary identifier of the type's schema in the
CloudFormation registry, which cfn-lint ships).
The local stack writes the same description into its state file (``LOCAL=1``).

The stack's name comes from ``STACK=`` or from ``samconfig.toml`` (``stack_name``, where
``sam deploy --guided`` saves it), and its Region from the usual AWS configuration or, when that
names none, from ``samconfig.toml``'s ``region``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.moto_server import aws_client

#: Seconds an AWS call may take: the whole check has a minute.
AWS_CALL_TIMEOUT = 10
_AWS_CONFIG = Config(
    connect_timeout=AWS_CALL_TIMEOUT,
    read_timeout=AWS_CALL_TIMEOUT,
    retries={"max_attempts": 2, "mode": "standard"},
)
ALARM_TYPE = "AWS::CloudWatch::Alarm"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path

ClientFactory = Callable[[str], Any]


class StackNotFoundError(RuntimeError):
    """The stack cannot be found or read (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class StackResource:
    logical_id: str
    type: str
    physical_id: str


@dataclass(frozen=True)
class Deployment:
    """The stack being checked, as CloudFormation describes it, and how to reach its AWS
    APIs (``client("wafv2")``) and its user pool's token endpoint."""

    name: str
    region: str
    status: str
    origin: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]
    resources: tuple[StackResource, ...]
    pool_token_url: str
    client: ClientFactory = field(repr=False)
    is_local: bool = False
    #: The local stack runs the shipped demo clients (whose fake secrets are published).
    shipped_clients: bool = False

    def parameter(self, name: str, default: str = "") -> str:
        return str(self.parameters.get(name, default))

    def output(self, name: str) -> str | None:
        value = self.outputs.get(name)
        return None if value is None else str(value)

    def physical_ids(self, resource_type: str) -> dict[str, str]:
        return {r.logical_id: r.physical_id for r in self.resources if r.type == resource_type}

    @property
    def web_acl_mode(self) -> str:
        """``Create`` (the stack's own web ACL) or ``External`` (the pool's own web ACL)."""
        return self.parameter("WebAcl", "Create")


def describe(
    description: Mapping[str, Any],
    resources: list[Mapping[str, Any]],
    *,
    region: str,
    origin: str,
    pool_token_url: str | None,
    client: ClientFactory,
    is_local: bool = False,
    shipped_clients: bool = False,
) -> Deployment:
    """A Deployment from DescribeStacks' stack and ListStackResources' summaries."""
    parameters = {
        str(p["ParameterKey"]): str(p.get("ParameterValue", ""))
        for p in description.get("Parameters") or []
    }
    outputs = {
        str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in description.get("Outputs") or []
    }
    if pool_token_url is None:
        domain = parameters.get("CognitoDomain", "")
        if not domain:
            raise StackNotFoundError("the stack has no CognitoDomain parameter")
        pool_token_url = f"https://{domain}{TOKEN_PATH}"
    return Deployment(
        name=str(description["StackName"]),
        region=region,
        status=str(description.get("StackStatus", "")),
        origin=origin,
        parameters=parameters,
        outputs=outputs,
        resources=tuple(
            StackResource(
                str(r["LogicalResourceId"]),
                str(r["ResourceType"]),
                str(r.get("PhysicalResourceId", "")),
            )
            for r in resources
        ),
        pool_token_url=pool_token_url,
        client=client,
        is_local=is_local,
        shipped_clients=shipped_clients,
    )


def from_cloudformation(stack_name: str, region: str | None) -> Deployment:
    """The deployed stack, read with the caller's AWS credentials."""
    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    if not session.region_name:
        raise StackNotFoundError(
            "no AWS Region is configured: set AWS_REGION (or AWS_DEFAULT_REGION), or deploy "
            "with sam deploy --guided, which saves it in samconfig.toml"
        )

    def client(service: str) -> Any:
        return session.client(service, config=_AWS_CONFIG)  # type: ignore[call-overload]

    cloudformation = client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        resources = [summary for page in pages for summary in page["StackResourceSummaries"]]
    except cloudformation.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise StackNotFoundError(
            f"CloudFormation could not describe stack {stack_name} in {session.region_name}: "
            f"{error.get('Code', 'error')}: {error.get('Message', '')}"
        ) from None
    return describe(
        stacks[0],
        resources,
        region=session.region_name,
        origin=f"CloudFormation stack in {session.region_name}",
        pool_token_url=None,
        client=client,
    )


def from_local_state(state: Mapping[str, Any]) -> Deployment:
    """The local stack, from the description ``make run`` wrote into its state file."""
    if "stack" not in state:
        raise StackNotFoundError(
            "the local stack's state file has no stack description: restart make run"
        )
    endpoint, region = str(state["endpoints"]["aws"]), str(state["region"])
    description = state["stack"]

    def client(service: str) -> Any:
        return aws_client(service, endpoint, region)

    return describe(
        description,
        list(description.get("StackResourceSummaries") or []),
        region=region,
        origin=f"the local stack, moto at {endpoint}",
        pool_token_url=str(state["endpoints"]["issuer_token_url"]),
        client=client,
        is_local=True,
        shipped_clients=bool(state.get("shipped_clients")),
    )


def samconfig_defaults(path: Path) -> tuple[str | None, str | None]:
    """``stack_name`` and ``region`` from samconfig.toml's default environment (either may be
    absent; a missing or unreadable file gives neither)."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None, None
    default = config.get("default") or {}
    found: dict[str, str] = {}
    # The command's own section wins over global, as SAM CLI reads them.
    for section in ("global", "deploy"):
        parameters = (default.get(section) or {}).get("parameters") or {}
        for key in ("stack_name", "region"):
            if isinstance(parameters.get(key), str) and parameters[key]:
                found[key] = parameters[key]
    return found.get("stack_name"), found.get("region")
