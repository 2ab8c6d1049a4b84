"""WAFv2 adapter: the regex pattern set holding the accepted x-origin-verify values.

Every write carries the LockToken of the read it is based on; WAF answers
``WAFOptimisticLockException`` when someone else wrote in between, which becomes
:class:`rotator.errors.StaleLockTokenError` (the steps re-read and retry within a bound).
An update replaces the whole resource, so the description read is written back unchanged.
Errors of a write are not chained: WAF's validation messages may quote a regex, i.e. a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from rotator.errors import PatternSetUnavailableError, StaleLockTokenError
from rotator.model import PatternSetSnapshot

if TYPE_CHECKING:
    from mypy_boto3_wafv2.client import WAFV2Client
    from mypy_boto3_wafv2.literals import ScopeType


class WafRegexPatternSet:
    """:class:`rotator.model.PatternSet` over one WAFv2 regex pattern set."""

    def __init__(self, client: WAFV2Client, name: str, set_id: str, scope: ScopeType) -> None:
        self._client = client
        self._name = name
        self._id = set_id
        self._scope: ScopeType = scope

    def read(self) -> PatternSetSnapshot:
        try:
            response = self._client.get_regex_pattern_set(
                Name=self._name, Scope=self._scope, Id=self._id
            )
        except (ClientError, BotoCoreError) as exc:
            raise PatternSetUnavailableError(f"GetRegexPatternSet failed on {self._name}") from exc
        pattern_set = response["RegexPatternSet"]
        patterns = tuple(
            entry["RegexString"] for entry in pattern_set.get("RegularExpressionList", [])
        )
        return PatternSetSnapshot(
            patterns=patterns,
            lock_token=response["LockToken"],
            description=pattern_set.get("Description") or None,
        )

    def write(self, patterns: Sequence[str], snapshot: PatternSetSnapshot) -> None:
        kwargs: dict[str, Any] = {
            "Name": self._name,
            "Scope": self._scope,
            "Id": self._id,
            "RegularExpressionList": [{"RegexString": pattern} for pattern in patterns],
            "LockToken": snapshot.lock_token,
        }
        if snapshot.description:
            kwargs["Description"] = snapshot.description
        try:
            self._client.update_regex_pattern_set(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "WAFOptimisticLockException":
                raise StaleLockTokenError(f"{self._name} changed since it was read") from exc
            # not chained: WAF's validation messages may quote the offending regex (a value)
            raise PatternSetUnavailableError(
                f"UpdateRegexPatternSet failed on {self._name} ({code})"
            ) from None
        except BotoCoreError as exc:
            raise PatternSetUnavailableError(
                f"UpdateRegexPatternSet failed on {self._name}"
            ) from exc
