"""Faults injected where botocore sends a request, for every client created while active.

:class:`AwsFaults` is a ``before-send`` hook in front of moto's (see :func:`install`): it
counts every attempt per operation and, for the services or operations named, answers with
the service's own error (an HTTP status and error code, as the service's JSON protocol spells
them) or fails the connection (``EndpointConnectionError``). botocore's retry policy therefore
runs for real; :func:`install` sets its backoff pauses to zero."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from botocore.retries.standard import ExponentialBackoff
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

THROTTLED = (
    400,
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded",
)
WAF_INTERNAL_ERROR = (500, "WAFInternalErrorException", "Your request is valid, but WAF failed")


class AwsFaults:
    """Counts attempts per operation ("dynamodb.GetItem"); fails the chosen ones."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        #: target ("dynamodb" or "dynamodb.GetItem") -> (status, error code, message)
        self.errors: dict[str, tuple[int, str, str]] = {}
        #: targets whose connections fail
        self.refused: set[str] = set()

    def __call__(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        operation = event_name.removeprefix("before-send.")
        targets = {operation, operation.split(".", 1)[0]}
        self.attempts[operation] += 1
        if targets & self.refused:
            raise EndpointConnectionError(endpoint_url=request.url)
        for target in targets:
            if target in self.errors:
                status, code, message = self.errors[target]
                body = json.dumps({"__type": code, "message": message, "Message": message})
                headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
                return AWSResponse(request.url, status, headers, MockRawResponse(body))
        return None

    def count(self, service: str) -> int:
        return sum(n for op, n in self.attempts.items() if op.startswith(service + "."))

    def clear(self) -> None:
        self.attempts.clear()
        self.errors.clear()
        self.refused.clear()


def install(monkeypatch: pytest.MonkeyPatch) -> AwsFaults:
    """The hook in every client created from now on (a new default session is made too).

    botocore calls every ``before-send`` handler and uses the first answer, so moto's stubber
    would still carry out a request the hook fails: the hook takes its place and hands it only
    the requests it lets through.
    """
    hook = AwsFaults()

    def faults_then_moto(**kwargs: Any) -> AWSResponse | None:
        answer = hook(**kwargs)
        return answer if answer is not None else botocore_stubber(**kwargs)

    handlers = [
        (entry[0], faults_then_moto, *entry[2:]) if entry[1] is botocore_stubber else entry
        for entry in botocore.handlers.BUILTIN_HANDLERS
    ]
    assert any(entry[1] is faults_then_moto for entry in handlers), "moto is not loaded"
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    return hook
