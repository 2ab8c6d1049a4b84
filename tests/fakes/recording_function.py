"""A stand-in for a function behind the local front ends (:mod:`local.http_api`,
:mod:`local.function_url`): it records each event it is invoked with and answers with a fixed
result, or fails as a crashed function would."""

from __future__ import annotations

from typing import Any

from local.lambda_runtime import Invocation


class RecordingFunction:
    """Records each event; answers ``result`` (default: a 204), or an error when not ``ok``."""

    def __init__(self, result: Any = None, *, ok: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.result = result if result is not None else {"statusCode": 204}
        self.ok = ok

    def invoke(self, event: Any) -> Invocation:
        self.events.append(event)
        if not self.ok:
            return Invocation(ok=False, error_type="RuntimeError")
        return Invocation(ok=True, payload=self.result)
