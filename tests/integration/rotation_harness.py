"""The rotator's world on moto: the origin secret and the WAF regex pattern set built from
template.yaml's own definitions, plus the part of Secrets Manager that moto cannot play
without Docker (starting a rotation and cleaning up after it), so tests call the handler step
by step exactly as the service does.

Values are always read with an explicit ``VersionStage`` (moto's default read can be stale
after a stage move).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

from local.cloudformation_intrinsics import IntrinsicResolver, StackContext
from local.cloudformation_template import default_template, resource
from rotator import app
from tests.conftest import REGION
from tests.fakes.lambda_context import ROTATOR_FUNCTION, lambda_context

STACK_NAME = "token-proxy-test"
_DYNAMIC_SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:(?P<id>.+?):SecretString\}\}")


def resolve_dynamic_references(text: str, sm: Any) -> str:
    """CloudFormation's ``{{resolve:secretsmanager:ID:SecretString}}`` (the AWSCURRENT value)."""

    def resolve(match: re.Match[str]) -> str:
        response = sm.get_secret_value(SecretId=match.group("id"), VersionStage="AWSCURRENT")
        return str(response["SecretString"])

    return _DYNAMIC_SECRET_REFERENCE.sub(resolve, text)


def waf_accepts(patterns: list[str] | tuple[str, ...], header_value: str | None) -> bool:
    """Whether a RegexPatternSetReferenceStatement on the header matches, as WAF evaluates it:
    a missing header matches nothing; each regex is searched in the (untransformed) value."""
    if header_value is None:
        return False
    return any(re.search(pattern, header_value) for pattern in patterns)


@dataclass
class RotationWorld:
    sm: Any
    waf: Any
    secret_arn: str
    set_name: str
    set_id: str
    set_scope: str
    set_arn: str
    grace_seconds: int = 900

    # -------------------------------------------------------------- the function's view

    def environment(self) -> dict[str, str]:
        """The rotator's environment as template.yaml sets it (canary off)."""
        return {
            "POWERTOOLS_SERVICE_NAME": "origin-secret-rotator",
            "ORIGIN_SECRET_ARN": self.secret_arn,
            "PATTERN_SET_NAME": self.set_name,
            "PATTERN_SET_ID": self.set_id,
            "PATTERN_SET_SCOPE": self.set_scope,
            "PRUNE_GRACE_SECONDS": str(self.grace_seconds),
            "COGNITO_TOKEN_URL": "https://auth.example.com/oauth2/token",
            "CANARY_SECRET_ARN": "",
            "LOCK_BACKOFF_SECONDS": "0",
            "WAF_PROPAGATION_SECONDS": "0",  # moto's pattern set has no propagation delay
        }

    def invoke(self, event: dict[str, Any]) -> dict[str, object]:
        result: dict[str, object] = app.lambda_handler(event, lambda_context(ROTATOR_FUNCTION))
        return result

    def step(self, step: str, token: str) -> dict[str, object]:
        return self.invoke({"Step": step, "SecretId": self.secret_arn, "ClientRequestToken": token})

    def prune(self) -> dict[str, object]:
        return self.invoke({"action": "prune"})

    # -------------------------------------------------------------- Secrets Manager's part

    def _moto_secret(self) -> Any:
        return secretsmanager_backends[DEFAULT_ACCOUNT_ID][REGION].secrets[self.secret_arn]

    def enable_rotation(self, days: int = 30) -> None:
        """What the template's RotationSchedule does. moto can only enable rotation through
        rotate_secret, which invokes the Lambda (Docker), so the flag is set on its model."""
        secret = self._moto_secret()
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.auto_rotate_after_days = days
        secret.rotation_lambda_arn = ROTATOR_FUNCTION.arn

    def start_rotation(self, token: str) -> None:
        """What RotateSecret does before invoking createSecret: a new version id carrying
        AWSPENDING and no value yet (a retry reuses the same version)."""
        secret = self._moto_secret()
        if token in secret.versions:
            return
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {
            "version_id": token,
            "createdate": int(time.time()),
            "version_stages": ["AWSPENDING"],
        }

    def complete_rotation(self, token: str) -> None:
        """What Secrets Manager does after a successful finishSecret: drop AWSPENDING."""
        self.sm.update_secret_version_stage(
            SecretId=self.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )

    def rotate(self, token: str) -> None:
        """One whole rotation, step by step, as Secrets Manager runs it."""
        self.start_rotation(token)
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.step(step, token)
        self.complete_rotation(token)

    # -------------------------------------------------------------- observations

    def value(self, stage: str) -> str:
        return str(
            self.sm.get_secret_value(SecretId=self.secret_arn, VersionStage=stage)["SecretString"]
        )

    def version_value(self, version_id: str, stage: str) -> str:
        response = self.sm.get_secret_value(
            SecretId=self.secret_arn, VersionId=version_id, VersionStage=stage
        )
        return str(response["SecretString"])

    def stages(self) -> dict[str, set[str]]:
        meta = self.sm.describe_secret(SecretId=self.secret_arn)
        return {
            version: set(labels) for version, labels in meta["VersionIdsToStages"].items() if labels
        }

    def tags(self) -> dict[str, str]:
        meta = self.sm.describe_secret(SecretId=self.secret_arn)
        return {tag["Key"]: tag["Value"] for tag in meta.get("Tags", [])}

    def pattern_set(self) -> dict[str, Any]:
        response = self.waf.get_regex_pattern_set(
            Name=self.set_name, Scope=self.set_scope, Id=self.set_id
        )
        return {
            "patterns": [
                e["RegexString"] for e in response["RegexPatternSet"]["RegularExpressionList"]
            ],
            "lock_token": response["LockToken"],
            "description": response["RegexPatternSet"].get("Description"),
        }

    def patterns(self) -> list[str]:
        return list(self.pattern_set()["patterns"])

    def accepts(self, header_value: str | None) -> bool:
        return waf_accepts(self.patterns(), header_value)

    def write_patterns(self, patterns: list[str]) -> None:
        """Someone else (an operator, CloudFormation) writes the set."""
        current = self.pattern_set()
        self.waf.update_regex_pattern_set(
            Name=self.set_name,
            Scope=self.set_scope,
            Id=self.set_id,
            RegularExpressionList=[{"RegexString": p} for p in patterns],
            LockToken=current["lock_token"],
        )

    def state(self) -> dict[str, Any]:
        """Everything a step may change (values by version, stages, tags, the set and its
        LockToken): equal states mean nothing was written."""
        stages = self.stages()
        values: dict[str, str | None] = {}
        for version, labels in stages.items():
            try:
                values[version] = self.version_value(version, sorted(labels)[0])
            except self.sm.exceptions.ResourceNotFoundException:
                values[version] = None  # a rotation's version before createSecret
        return {"stages": stages, "values": values, "tags": self.tags(), "set": self.pattern_set()}


def build_world(*, enable_rotation: bool = True, grace_seconds: int = 900) -> RotationWorld:
    """The secret and the pattern set as CloudFormation creates them from template.yaml."""
    sm = boto3.client("secretsmanager", region_name=REGION)
    waf = boto3.client("wafv2", region_name=REGION)

    generate = resource("OriginSecret")["Properties"]["GenerateSecretString"]
    initial = sm.get_random_password(
        PasswordLength=generate["PasswordLength"],
        ExcludePunctuation=generate.get("ExcludePunctuation", False),
        IncludeSpace=generate.get("IncludeSpace", False),
    )["RandomPassword"]
    secret_arn = sm.create_secret(Name=f"{STACK_NAME}-OriginSecret", SecretString=initial)["ARN"]

    resolver = IntrinsicResolver(
        default_template(),
        StackContext(stack_name=STACK_NAME, region=REGION, account_id=DEFAULT_ACCOUNT_ID),
        parameters={"CognitoDomain": "auth.example.com", "UserPoolId": f"{REGION}_test"},
        dynamic_references=lambda _service, reference: resolve_dynamic_references(
            "{{resolve:secretsmanager:" + reference + "}}", sm
        ),
    )
    resolver.register("OriginSecret", secret_arn, Id=secret_arn)
    props = resolver.resolve(resource("OriginPatternSet")["Properties"])
    name = props["Name"]
    created = waf.create_regex_pattern_set(
        Name=name,
        Scope=props["Scope"],
        Description=props["Description"],
        RegularExpressionList=[{"RegexString": entry} for entry in props["RegularExpressionList"]],
    )["Summary"]
    world = RotationWorld(
        sm=sm,
        waf=waf,
        secret_arn=secret_arn,
        set_name=name,
        set_id=created["Id"],
        set_scope=props["Scope"],
        set_arn=created["ARN"],
        grace_seconds=grace_seconds,
    )
    if enable_rotation:
        world.enable_rotation()
    return world


def emf_records(captured_stdout: str) -> Iterator[dict[str, Any]]:
    """The EMF documents Powertools Metrics printed."""
    for raw in captured_stdout.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" in document:
            yield document
