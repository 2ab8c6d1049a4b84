"""Places where moto 5 behaves unlike AWS in ways the project depends on, mended in place.

DynamoDB: moto 5 evaluates a ConditionExpression and then writes the item in separate steps,
with no lock in between, so under concurrent requests several conditional writes on one item
can all pass their condition. Real DynamoDB serialises writes to an item, which is what the
proxy's single-flight lease relies on. Wrapping the backend's write methods in one lock restores
that guarantee for the local stack, the benchmark and the tests; reads stay concurrent.

Secrets Manager: moto 5 keeps answering GetSecretValue without a stage with the old value after
UpdateSecretVersionStage moved AWSCURRENT (its default version does not follow the label).
AWS answers AWSCURRENT; after the patch moto does too.

CloudFormation: a stack that moto creates by executing a CREATE change set keeps the empty
template it started from, so DescribeStacks reports no Outputs. AWS reports them; SAM CLI
refuses its managed artifact stack without them, which ends the deploy rehearsal
(tests/e2e/test_guided_deploy.py) before it reaches the application's change set.

Secrets Manager: RotateSecret with a RotationLambdaARN fails in moto unless moto's own Lambda
holds that function (it would run it, which needs Docker). The local stack runs the rotator
itself (``make rotate``), so a rotation function moto does not hold is recorded (DescribeSecret
reports it, as AWS does for the stack's schedule) without being invoked, on a secret that has no
version yet (bootstrap enables rotation before it puts the first value).

WAF: moto 5 does not implement GetSampledRequests. It is answered from the samples the local
web ACL recorded (:mod:`local.waf_sampled_requests`), with WAF's errors for a web ACL that does
not exist or arguments WAF refuses.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any

_WRITE_METHODS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
)
_LOCK = threading.RLock()
_MARKER = "__serialised_by_token_proxy__"


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _MARKER, True)
    return wrapper


def make_dynamodb_writes_atomic() -> None:
    """Serialise moto's DynamoDB writes (idempotent; affects this process only)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITE_METHODS:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, _MARKER, False):
            setattr(DynamoDBBackend, name, _serialised(method))


def _default_version_follows_current(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(
        self: Any,
        secret_id: str,
        version_stage: str,
        remove_from_version_id: str,
        move_to_version_id: str,
    ) -> Any:
        result = method(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)
        return result

    setattr(wrapper, _MARKER, True)
    return wrapper


def make_secret_reads_follow_awscurrent() -> None:
    """A read without a stage returns AWSCURRENT after a stage move (idempotent)."""
    from moto.secretsmanager.models import SecretsManagerBackend

    method = SecretsManagerBackend.update_secret_version_stage
    if not getattr(method, _MARKER, False):
        SecretsManagerBackend.update_secret_version_stage = _default_version_follows_current(  # type: ignore[method-assign]
            method
        )


def _stack_takes_the_change_sets_template(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any) -> Any:
        result = method(self)
        stack = self.stack
        stack.template = self.template
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        return result

    setattr(wrapper, _MARKER, True)
    return wrapper


def make_change_set_stacks_report_outputs() -> None:
    """A stack created through a change set has its template's Outputs (idempotent)."""
    from moto.cloudformation.models import ChangeSet

    method = ChangeSet.apply
    if not getattr(method, _MARKER, False):
        ChangeSet.apply = _stack_takes_the_change_sets_template(method)  # type: ignore[method-assign]


def _records_functions_it_cannot_run(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        arn = kwargs.get("rotation_lambda_arn")
        if arn and not _moto_holds_function(self, arn) and not self.secrets[secret_id].versions:
            result = method(self, secret_id, *args, **{**kwargs, "rotation_lambda_arn": None})
            self.secrets[secret_id].rotation_lambda_arn = arn
            return result
        return method(self, secret_id, *args, **kwargs)

    setattr(wrapper, _MARKER, True)
    return wrapper


def _moto_holds_function(backend: Any, arn: str) -> bool:
    from moto.awslambda.utils import get_backend

    try:
        get_backend(backend.account_id, backend.region_name).get_function(arn)
    except Exception:
        return False
    return True


def make_rotation_record_functions_it_cannot_run() -> None:
    """RotateSecret records a rotation function moto does not hold (idempotent)."""
    from moto.secretsmanager.models import SecretsManagerBackend

    method = SecretsManagerBackend.rotate_secret
    if not getattr(method, _MARKER, False):
        SecretsManagerBackend.rotate_secret = _records_functions_it_cannot_run(method)  # type: ignore[method-assign]


def _get_sampled_requests(self: Any) -> tuple[int, dict[str, str], str]:
    """WAFV2's GetSampledRequests, from the local web ACL's samples."""
    from moto.wafv2.exceptions import WAFNonexistentItemException, WAFv2ClientError

    from local.waf_sampled_requests import SAMPLED_REQUESTS, SampledRequestsError

    body = json.loads(self.body)
    arn = str(body.get("WebAclArn", ""))
    if arn not in self.wafv2_backend.wacls:
        raise WAFNonexistentItemException()
    try:
        answer = SAMPLED_REQUESTS.get(
            arn, str(body.get("RuleMetricName", "")), body["TimeWindow"], int(body["MaxItems"])
        )
    except (SampledRequestsError, KeyError, TypeError, ValueError) as exc:
        raise WAFv2ClientError("WAFInvalidParameterException", str(exc)) from None
    return 200, {"Content-Type": "application/json"}, json.dumps(answer)


def make_waf_sampled_requests_served() -> None:
    """WAFV2 answers GetSampledRequests (idempotent)."""
    from moto.wafv2.responses import WAFV2Response

    if not getattr(getattr(WAFV2Response, "get_sampled_requests", None), _MARKER, False):
        setattr(_get_sampled_requests, _MARKER, True)
        WAFV2Response.get_sampled_requests = _get_sampled_requests  # type: ignore[attr-defined]


def make_moto_behave_like_aws() -> None:
    """Every mend (idempotent; this process only)."""
    make_dynamodb_writes_atomic()
    make_secret_reads_follow_awscurrent()
    make_change_set_stacks_report_outputs()
    make_rotation_record_functions_it_cannot_run()
    make_waf_sampled_requests_served()
