"""The one Lambda context the tests hand to a handler: the local stack's own
(:class:`local.lambda_runtime.LambdaContext`), for either function as template.yaml sizes it."""

from __future__ import annotations

from local.lambda_runtime import FunctionSpec, LambdaContext
from tests.conftest import REGION

#: The token proxy as the tests invoke it.
TOKEN_PROXY_FUNCTION = FunctionSpec(
    name="token-proxy-TokenProxyFunction-test",
    handler="token_proxy.app.lambda_handler",
    memory_mb=512,
    timeout_seconds=20,
    region=REGION,
)
#: The rotator as the tests invoke it (its ARN is what the secret's rotation names).
ROTATOR_FUNCTION = FunctionSpec(
    name="origin-secret-rotator",
    handler="rotator.app.lambda_handler",
    memory_mb=256,
    timeout_seconds=120,
    region=REGION,
)


def lambda_context(function: FunctionSpec = TOKEN_PROXY_FUNCTION) -> LambdaContext:
    """A Lambda context for one invocation of ``function`` (the token proxy by default)."""
    return LambdaContext(function)
