"""One line per check, and the closing lines: what ``make verify`` prints.

Each line is ``pass``, ``FAIL`` or ``skip`` (then ``cannot check here:`` and why), the check's
name and what was seen. Nothing printed comes from a secret, a token or an origin value; what a
caller sent the pool is printed only as counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TextIO

Status = Literal["pass", "FAIL", "skip"]
CANNOT_CHECK = "cannot check here: "


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "pass", detail)


def failed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "FAIL", detail)


def cannot_check(name: str, why: str) -> CheckResult:
    return CheckResult(name, "skip", CANNOT_CHECK + why)


def printer(stream: TextIO) -> Callable[[str], None]:
    def emit(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return emit


def summary(results: Iterable[CheckResult]) -> str:
    """The last line: how many checks passed, failed, could not be checked."""
    counts = {"pass": 0, "FAIL": 0, "skip": 0}
    for result in results:
        counts[result.status] += 1
    if counts["FAIL"]:
        verdict = "see the FAIL lines"
    elif counts["skip"]:
        verdict = "nothing failed; the skipped lines say what could not be checked"
    else:
        verdict = "the stack does what it promises"
    return (
        f"make verify: {counts['pass']} pass, {counts['FAIL']} FAIL, "
        f"{counts['skip']} cannot be checked here ({verdict})"
    )
