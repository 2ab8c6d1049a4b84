"""Secrets Manager adapter: the origin-verify secret's versions, values and rotation marker.

Values are always read with an explicit ``VersionStage`` (and ``VersionId`` where the step
names one), never with the default, so a read right after a stage move cannot be stale.
AWS errors become our own exceptions; messages name versions, never values.

The rotation marker (see :class:`rotator.model.RotationMarker`) lives in two tags of the
secret, written in one ``TagResource`` call, so ``DescribeSecret`` returns the stages and the
marker together.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from rotator.errors import CanaryFailedError, SecretStoreUnavailableError
from rotator.model import CURRENT, PENDING, RotationMarker, SecretState

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

MARKER_VERSION_TAG = "origin-verify:current-version"
MARKER_SINCE_TAG = "origin-verify:current-since"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _format_since(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_marker(tags: list[Any]) -> RotationMarker | None:
    by_key = {str(tag.get("Key")): str(tag.get("Value")) for tag in tags}
    version_id = by_key.get(MARKER_VERSION_TAG)
    since = by_key.get(MARKER_SINCE_TAG)
    if not version_id or not since:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        return None  # unreadable: treated as missing, which makes the prune wait (safe side)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return RotationMarker(version_id=version_id, since=moment)


class SecretsManagerStore:
    """:class:`rotator.model.SecretStore` over one secret."""

    def __init__(self, client: SecretsManagerClient, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id

    def describe(self) -> SecretState:
        try:
            meta = self._client.describe_secret(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise SecretStoreUnavailableError("DescribeSecret failed on the origin secret") from exc
        stages = {
            version_id: frozenset(labels)
            for version_id, labels in meta.get("VersionIdsToStages", {}).items()
        }
        return SecretState(
            rotation_enabled=bool(meta.get("RotationEnabled", False)),
            stages=stages,
            marker=_parse_marker(list(meta.get("Tags", []))),
        )

    def value(self, stage: str, version_id: str | None = None) -> str | None:
        kwargs: dict[str, str] = {"SecretId": self._secret_id, "VersionStage": stage}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = self._client.get_secret_value(**kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                return None
            raise SecretStoreUnavailableError(
                f"GetSecretValue failed for stage {stage} ({_error_code(exc)})"
            ) from exc
        except BotoCoreError as exc:
            raise SecretStoreUnavailableError(f"GetSecretValue failed for stage {stage}") from exc
        secret = response.get("SecretString")
        return secret if isinstance(secret, str) else None

    def random_value(self, length: int) -> str:
        try:
            response = self._client.get_random_password(
                PasswordLength=length,
                ExcludePunctuation=True,
                IncludeSpace=False,
                RequireEachIncludedType=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SecretStoreUnavailableError("GetRandomPassword failed") from exc
        value = response["RandomPassword"]
        if len(value) != length or not (value.isascii() and value.isalnum()):
            raise SecretStoreUnavailableError(
                "GetRandomPassword returned a value of the wrong shape"
            )
        return value

    def put_pending(self, version_id: str, value: str) -> None:
        try:
            self._client.put_secret_value(
                SecretId=self._secret_id,
                ClientRequestToken=version_id,
                SecretString=value,
                VersionStages=[PENDING],
            )
        except (ClientError, BotoCoreError) as exc:
            raise SecretStoreUnavailableError(
                f"PutSecretValue failed for version {version_id}"
            ) from exc

    def move_current(self, to_version_id: str, from_version_id: str) -> None:
        try:
            self._client.update_secret_version_stage(
                SecretId=self._secret_id,
                VersionStage=CURRENT,
                MoveToVersionId=to_version_id,
                RemoveFromVersionId=from_version_id,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SecretStoreUnavailableError(
                f"moving AWSCURRENT from {from_version_id} to {to_version_id} failed"
            ) from exc

    def record_marker(self, marker: RotationMarker) -> None:
        try:
            self._client.tag_resource(
                SecretId=self._secret_id,
                Tags=[
                    {"Key": MARKER_VERSION_TAG, "Value": marker.version_id},
                    {"Key": MARKER_SINCE_TAG, "Value": _format_since(marker.since)},
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise SecretStoreUnavailableError("TagResource failed on the origin secret") from exc


def read_client_credentials(client: SecretsManagerClient, secret_id: str) -> tuple[str, str]:
    """The canary app client's ``(client_id, client_secret)`` from a JSON secret."""
    try:
        raw = client.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise CanaryFailedError("the canary client secret could not be read") from exc
    try:
        document = json.loads(raw)
        client_id, client_secret = document["client_id"], document["client_secret"]
    except (ValueError, KeyError, TypeError):
        # not chained: a parser error could quote part of the secret
        raise CanaryFailedError(
            'the canary client secret must be JSON {"client_id": ..., "client_secret": ...}'
        ) from None
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise CanaryFailedError(
            "the canary client secret's client_id and client_secret must be strings"
        )
    return client_id, client_secret
