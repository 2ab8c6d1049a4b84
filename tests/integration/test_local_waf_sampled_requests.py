"""WAF's sampled requests in the local stack: the local issuer records what its web ACL's rules
matched, and moto answers GetSampledRequests from that, in GetSampledRequests' own shape, with
WAF's errors for what WAF refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import botocore.exceptions
import pytest
import requests

from local.cloudformation_resources import LocalAwsResources, bootstrap
from local.cognito_token_endpoint import ClientRegistration, LocalIssuer, WebAclSource
from local.cognito_token_endpoint import serve_in_thread as serve_issuer
from local.moto_server import RunningMotoServer, aws_client
from local.waf_sampled_requests import SAMPLED_REQUESTS

REGION = "eu-west-1"
CLIENT = ClientRegistration("sampled-client", "sampled-secret-0001", ("api/read",))


@pytest.fixture(scope="module")
def counting(moto: RunningMotoServer) -> LocalAwsResources:
    return bootstrap(
        moto.endpoint_url,
        cognito_token_url="http://127.0.0.1:9/oauth2/token",
        stack_name="sampled",
        parameters={"OriginRuleAction": "Count"},
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sampled(
    moto: RunningMotoServer, stack: LocalAwsResources, metric: str, since: dt.datetime
) -> dict[str, Any]:
    """GetSampledRequests for one rule metric of the stack's web ACL, from ``since`` to now."""
    answer: dict[str, Any] = aws_client("wafv2", moto.endpoint_url, REGION).get_sampled_requests(
        WebAclArn=stack.web_acl_arn,
        RuleMetricName=metric,
        Scope="REGIONAL",
        TimeWindow={"StartTime": since, "EndTime": now()},
        MaxItems=100,
    )
    return answer


def test_the_requests_the_rules_counted_are_sampled_under_the_reference_rule(
    moto: RunningMotoServer, counting: LocalAwsResources
) -> None:
    # GIVEN the local pool behind the stack's web ACL (OriginRuleAction Count), recording samples
    source = WebAclSource(
        moto.endpoint_url, REGION, resource_arn=counting.user_pool_arn, max_age_seconds=0
    )
    issuer = serve_issuer(LocalIssuer([CLIENT], web_acl=source, sampled_requests=SAMPLED_REQUESTS))
    started = now() - dt.timedelta(seconds=1)
    try:
        # WHEN a client asks the pool directly, and a code exchange does too
        token = requests.post(
            issuer.token_url,
            data={"grant_type": "client_credentials"},
            auth=(CLIENT.client_id, CLIENT.client_secret),
            headers={"User-Agent": "direct-client/1"},
            timeout=30,
        )
        code = requests.post(
            issuer.token_url, data={"grant_type": "authorization_code"}, timeout=30
        )
    finally:
        issuer.stop()
    answer = sampled(moto, counting, "origin-verify", started)

    # THEN the counted request (it still got its token) is the one sample: action COUNT, named
    # "<group>#<rule>", with its headers; the code exchange matched no rule
    assert token.status_code == 200
    assert code.status_code == 400
    assert answer["PopulationSize"] == 1
    (sample,) = answer["SampledRequests"]
    assert sample["Action"] == "COUNT"
    assert sample["RuleNameWithinRuleGroup"] == "sampled#token-endpoint-requires-origin-verify"
    assert sample["Request"]["URI"] == "/oauth2/token"
    assert sample["Request"]["Method"] == "POST"
    headers = {h["Name"].lower(): h["Value"] for h in sample["Request"]["Headers"]}
    assert headers["user-agent"] == "direct-client/1"
    assert started <= sample["Timestamp"] <= now()
    # AND another rule's metric name has no samples
    other = sampled(moto, counting, "another-rule", started)
    assert (other["PopulationSize"], other["SampledRequests"]) == (0, [])


def test_waf_refuses_what_it_would_refuse(
    moto: RunningMotoServer, counting: LocalAwsResources
) -> None:
    waf = aws_client("wafv2", moto.endpoint_url, REGION)
    window = {"StartTime": now() - dt.timedelta(minutes=5), "EndTime": now()}
    base = {"RuleMetricName": "origin-verify", "Scope": "REGIONAL", "TimeWindow": window}

    # WHEN / THEN an unknown web ACL, too many items, a window older than 3 hours are refused
    with pytest.raises(botocore.exceptions.ClientError, match="WAFNonexistentItemException"):
        waf.get_sampled_requests(
            WebAclArn=counting.web_acl_arn.replace(counting.web_acl_id, "0" * 8), MaxItems=1, **base
        )
    with pytest.raises(botocore.exceptions.ClientError, match="MaxItems"):
        waf.get_sampled_requests(WebAclArn=counting.web_acl_arn, MaxItems=501, **base)
    old = {"StartTime": now() - dt.timedelta(hours=4), "EndTime": now()}
    with pytest.raises(botocore.exceptions.ClientError, match="3 hours"):
        waf.get_sampled_requests(
            WebAclArn=counting.web_acl_arn, MaxItems=1, **{**base, "TimeWindow": old}
        )
