"""A fake source of the origin-verify secret (the Cognito client's port): a list of values,
moving to the next one on each refresh, or failing as Secrets Manager would."""

from __future__ import annotations

from token_proxy.deadline import Deadline
from token_proxy.errors import OriginSecretUnavailable

ORIGIN_V1 = "originValueOne1"
ORIGIN_V2 = "originValueTwo2"


class FakeOriginSecret:
    """An origin-secret source that moves to the next value on each refresh."""

    def __init__(self, *values: str, fail: bool = False) -> None:
        self.values = list(values or (ORIGIN_V1, ORIGIN_V2))
        self.refreshes = 0
        self.fail = fail

    def get(self, deadline: Deadline | None = None) -> str:
        if self.fail:
            raise OriginSecretUnavailable("origin-verify secret could not be read")
        return self.values[min(self.refreshes, len(self.values) - 1)]

    def refresh(self, deadline: Deadline | None = None) -> str:
        self.refreshes += 1
        return self.get()
