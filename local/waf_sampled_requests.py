"""WAF's sampled requests for the local web ACLs: what ``GetSampledRequests`` answers.

AWS WAF keeps a sample of the web requests each rule matched when the rule's visibility
config has ``SampledRequestsEnabled``, and ``GetSampledRequests`` returns up to 500 of them
for a web ACL and a rule's metric name, from any time range in the previous three hours
(https://docs.aws.amazon.com/waf/latest/APIReference/API_GetSampledRequests.html). Each sample
holds the request (client IP, URI, method, HTTP version, headers), the action WAF applied, for
a rule group's rule ``"<group name>#<rule name>"``, and the action a rule action override
replaced (https://docs.aws.amazon.com/waf/latest/APIReference/API_SampledHTTPRequest.html).
Requests a web ACL rule matched are sampled under that rule's metric name; a request matched
by a Count rule and then by another rule shows under both
(https://docs.aws.amazon.com/waf/latest/developerguide/web-acl-testing-view-sample.html).

moto does not implement the call. The local issuer records every request its web ACL's rules
matched in :data:`SAMPLED_REQUESTS`, and moto answers ``GetSampledRequests`` from it
(:func:`local.moto_fidelity.make_waf_sampled_requests_served`) in the same process (the
local stack runs moto and the issuer together), so ``make verify`` asks the local stack what
it asks AWS. Locally the sample is every matched request of the time range up to ``MaxItems``
(AWS picks at random among the first 5,000), each with weight 1. Like WAF's, the samples hold
the request headers as they came, so they stay in this process's memory, never on disk.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local.waf_web_acl import Request, Verdict

#: How long WAF keeps samples (GetSampledRequests takes any range in the previous 3 hours).
RETENTION_SECONDS = 3 * 3600
#: WAF samples among the first 5,000 requests of a time range.
MAX_POPULATION = 5000
MAX_ITEMS = 500


class SampledRequestsError(ValueError):
    """A GetSampledRequests call WAF would refuse (its message says why)."""


@dataclass(frozen=True, slots=True)
class _Sample:
    web_acl_arn: str
    metric_name: str
    timestamp: float
    entry: dict[str, Any]


class SampledRequests:
    """The sampled requests of every local web ACL, in memory, for three hours."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        max_per_web_acl: int = MAX_POPULATION * 4,
    ) -> None:
        self._clock = clock
        self._max = max_per_web_acl
        self._lock = threading.Lock()
        self._samples: dict[str, deque[_Sample]] = {}

    def record(
        self,
        web_acl_arn: str,
        request: Request,
        verdict: Verdict,
        *,
        client_ip: str,
        http_version: str = "HTTP/1.1",
    ) -> None:
        """Keep one sample per rule that matched ``request`` and samples (its visibility)."""
        now = self._clock()
        http_request = {
            "ClientIP": client_ip,
            "Country": "",
            "URI": request.path,
            "Method": request.method,
            "HTTPVersion": http_version,
            "Headers": [{"Name": name, "Value": value} for name, value in request.header_pairs()],
        }
        with self._lock:
            kept = self._samples.setdefault(web_acl_arn, deque(maxlen=self._max))
            for match in verdict.matches:
                if not match.sampled:
                    continue
                entry: dict[str, Any] = {
                    "Request": http_request,
                    "Weight": 1,
                    "Timestamp": now,
                    "Action": match.action,
                }
                if match.rule_name_within_rule_group:
                    entry["RuleNameWithinRuleGroup"] = match.rule_name_within_rule_group
                if match.overridden_action:
                    entry["OverriddenAction"] = match.overridden_action
                terminating = verdict.rule_name == match.rule_name and match.action != "COUNT"
                if terminating and verdict.blocked:
                    entry["ResponseCodeSent"] = verdict.status
                kept.append(_Sample(web_acl_arn, match.metric_name, now, entry))

    def get(
        self, web_acl_arn: str, metric_name: str, window: Mapping[str, Any], max_items: int
    ) -> dict[str, Any]:
        """The GetSampledRequests answer for one web ACL and rule metric name."""
        if not 1 <= max_items <= MAX_ITEMS:
            raise SampledRequestsError(f"MaxItems must be between 1 and {MAX_ITEMS}")
        start, end = float(window["StartTime"]), float(window["EndTime"])
        now = self._clock()
        if start > end:
            raise SampledRequestsError("TimeWindow's StartTime is after its EndTime")
        if start < now - RETENTION_SECONDS - 60:
            raise SampledRequestsError("TimeWindow must be within the previous 3 hours")
        with self._lock:
            population = [
                sample
                for sample in self._samples.get(web_acl_arn, ())
                if sample.metric_name == metric_name and start <= sample.timestamp <= end
            ][:MAX_POPULATION]
        if len(population) == MAX_POPULATION:  # WAF then reports the first 5,000's range
            end = population[-1].timestamp
        return {
            "SampledRequests": [sample.entry for sample in population[:max_items]],
            "PopulationSize": len(population),
            "TimeWindow": {"StartTime": start, "EndTime": end},
        }

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()


#: The store of this process: the local stack's issuer records into it, its moto reads it.
SAMPLED_REQUESTS = SampledRequests()
