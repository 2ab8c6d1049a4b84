"""Secrets Manager: the current value of the proxy's two secrets (the origin-verify value and
the cache key).

One GetSecretValue call per read, at the ``AWSCURRENT`` stage, named explicitly: it is what AWS
returns when no stage is given, and it keeps local endpoints (moto) from serving a version that
is no longer current after a rotation. The value is the version's ``SecretString``; a version
holding ``SecretBinary`` instead is refused
(https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html).
The callers own their caching (a max age, or once per container), so nothing is cached here.

The client is created on first use, never at import time, from boto3's default session (so
``AWS_ENDPOINT_URL`` and the Region work as for the DynamoDB client), with timeouts that fit a
request's deadline (:data:`READ_BOUND_SECONDS`). A plain client call rather than Powertools'
parameters utility: that utility's package also loads its AppConfig, SSM and DynamoDB
providers, about 2 ms of every cold start, for a read this module makes in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from token_proxy.deadline import sdk_call_bound

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

#: Secrets Manager calls fail fast, so that a read fits in a request's deadline.
SECRETS_MANAGER_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "total_max_attempts": 2},
)
#: The longest one read of a secret can take.
READ_BOUND_SECONDS = sdk_call_bound(SECRETS_MANAGER_CONFIG)
CURRENT = "AWSCURRENT"


class SecretReader:
    """Reads the current value of a secret; every failure raises (the caller decides)."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "SecretReader()"

    def current(self, secret_id: str) -> str:
        """The ``SecretString`` of ``secret_id``'s AWSCURRENT version. Raises the SDK's
        exceptions, or TypeError when the version holds no SecretString."""
        if self._client is None:
            self._client = boto3.client("secretsmanager", config=SECRETS_MANAGER_CONFIG)
        answer = self._client.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
        value = answer.get("SecretString")
        if not isinstance(value, str):
            raise TypeError("the secret's current version holds no SecretString")
        return value
