"""The first checks of ``make verify``: the stack itself, and a token through the proxy.

A stack's status names a settled stack when it ends in ``_COMPLETE``; ``ROLLBACK_COMPLETE``
(a failed creation) and the ``_FAILED`` and ``DELETE_`` states do not
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html, StackStatus).
The proxy is asked for a token with the client's real credentials, then again a second later:
the cache must answer with the same token and a smaller ``expires_in``.
"""

from __future__ import annotations

from collections.abc import Callable

from verify.probes import Credentials, Prober
from verify.report import CheckResult, cannot_check, failed, passed
from verify.stack import Deployment

STACK = "stack"
PROXY = "token through the proxy"
CACHE = "cached token"


def check_stack(d: Deployment) -> CheckResult:
    """The stack is deployed, settled, and has the outputs the other checks read."""
    status = d.status
    settled = status.endswith("_COMPLETE") and status not in (
        "ROLLBACK_COMPLETE",
        "DELETE_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    )
    mode = (
        f"WebAcl={d.web_acl_mode}, OriginRuleAction={d.parameter('OriginRuleAction')}, "
        f"OriginRuleCoverage={d.parameter('OriginRuleCoverage')}"
    )
    missing = [
        name
        for name in ("TokenEndpoint", "UserPoolArn", "OriginSecretArn", "OriginPatternSetId")
        if not d.output(name)
    ]
    where = f"{d.name}, {status}, {d.origin}; {mode}"
    if status.endswith("_IN_PROGRESS"):
        return cannot_check(
            STACK, f"{d.name} is being changed ({status}): run make verify when it is done"
        )
    if not settled:
        return failed(STACK, f"{d.name} is not deployed ({status}): see the stack's events")
    if missing:
        return failed(STACK, f"{d.name} ({status}) lacks the outputs {', '.join(missing)}")
    note = " (its last update was rolled back)" if "ROLLBACK" in status else ""
    return passed(STACK, where + note)


def check_token_and_cache(
    d: Deployment,
    credentials: Credentials | None,
    prober: Prober,
    *,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> list[CheckResult]:
    """A token through the proxy, then the same token again from its cache, with a smaller
    ``expires_in`` (the token's real remaining life)."""
    if credentials is None:
        why = "no client credentials: set CLIENT_ID and CLIENT_SECRET (an app client with "
        why += "the client credentials grant)"
        return [cannot_check(PROXY, why), cannot_check(CACHE, why)]
    url = str(d.output("TokenEndpoint"))
    answers = [prober.token(url, credentials)]
    answered_at = [monotonic()]
    first = answers[0]
    if first.status != 200 or first.token_digest is None or first.expires_in is None:
        return [
            failed(PROXY, f"{url} answered {first.describe()}, not a token"),
            cannot_check(CACHE, "no token came through the proxy"),
        ]
    token = passed(
        PROXY,
        f"{url} answered 200 with a {first.token_type} token, expires_in {first.expires_in} s",
    )
    # expires_in is whole seconds of the token's real remaining life: a second later the
    # cached token says less. A token refreshed ahead in between starts a new pair.
    for _ in range(2):
        sleep(1.1)
        answers.append(prober.token(url, credentials))
        answered_at.append(monotonic())
        before, after = answers[-2], answers[-1]
        later = f"{answered_at[-1] - answered_at[-2]:.1f} s later"
        if after.status != 200 or after.expires_in is None:
            return [token, failed(CACHE, f"a second request got {after.describe()}")]
        if after.token_digest == before.token_digest and after.expires_in < (
            before.expires_in or 0
        ):
            return [
                token,
                passed(
                    CACHE,
                    f"the same token again {later}, expires_in {after.expires_in} s "
                    f"(was {before.expires_in} s): served from the cache with its real "
                    "remaining life",
                ),
            ]
    before, after = answers[-2], answers[-1]
    if after.token_digest != before.token_digest:
        why = "requests 1 s apart got different tokens: the second was not served from the cache"
    else:
        why = (
            f"the same token 1 s later still says expires_in {after.expires_in} s "
            f"(was {before.expires_in} s): it must be the real remaining life"
        )
    return [token, failed(CACHE, why)]
