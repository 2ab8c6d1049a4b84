"""The freshness policy, table by table: a token's state over its life (at every lifetime
Cognito allows), a token's times from Cognito's answer, and which answers are negative."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.clock import T0
from token_proxy.freshness import Freshness, FreshnessPolicy, is_expired, is_negative_answer
from token_proxy.model import CachedToken, UpstreamResponse

POLICY = FreshnessPolicy(refresh_ratio=0.75, min_remaining_ratio=0.10)
#: Cognito's shortest, default and longest access token lifetimes.
LIFETIMES = (300, 3600, 86_400)


def token(lifetime: float, policy: FreshnessPolicy = POLICY) -> CachedToken:
    return CachedToken(
        response={"access_token": "a.b.c", "expires_in": lifetime, "token_type": "Bearer"},
        issued_at=T0,
        expires_at=T0 + lifetime,
        refresh_at=T0 + policy.refresh_ratio * lifetime,
    )


def answer(status: int, body: Any) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamResponse(status=status, body=raw)


@pytest.mark.parametrize("lifetime", LIFETIMES)
@pytest.mark.parametrize(
    ("share_of_life", "state"),
    [
        (0.0, Freshness.FRESH),
        (0.5, Freshness.FRESH),
        (0.7499, Freshness.FRESH),
        (0.75, Freshness.REFRESH),  # refresh_at itself: due
        (0.85, Freshness.REFRESH),
        (0.8999, Freshness.REFRESH),
        (0.9, Freshness.LATE),  # exactly 10% left is no longer more than 10%
        (0.95, Freshness.LATE),
    ],
)
def test_state_over_a_tokens_life(lifetime: int, share_of_life: float, state: Freshness) -> None:
    # GIVEN a token issued at T0 with the default ratios
    # WHEN it is looked at after that share of its life THEN it is in that state
    assert POLICY.state(token(lifetime), T0 + share_of_life * lifetime) is state


@pytest.mark.parametrize("lifetime", LIFETIMES)
@pytest.mark.parametrize(
    ("seconds_left", "state"),
    [(1.0, Freshness.LATE), (0.999, Freshness.EXPIRED), (0.0, Freshness.EXPIRED)],
)
def test_less_than_one_whole_second_left_is_expired(
    lifetime: int, seconds_left: float, state: Freshness
) -> None:
    # GIVEN a token at the very end of its life
    now = T0 + lifetime - seconds_left

    # THEN it is expired only with less than a second left (expires_in would be 0)
    assert POLICY.state(token(lifetime), now) is state
    assert is_expired(token(lifetime), now) is (state is Freshness.EXPIRED)
    assert POLICY.usable(token(lifetime), now) is False


@pytest.mark.parametrize(
    ("state", "usable"),
    [
        (Freshness.FRESH, True),
        (Freshness.REFRESH, True),
        (Freshness.LATE, False),
        (Freshness.EXPIRED, False),
    ],
)
def test_usable_means_fresh_or_due_for_a_refresh(state: Freshness, usable: bool) -> None:
    # GIVEN a one-hour token at a moment in each state
    moments = {
        Freshness.FRESH: T0 + 60,
        Freshness.REFRESH: T0 + 3000,
        Freshness.LATE: T0 + 3500,
        Freshness.EXPIRED: T0 + 3600,
    }
    # THEN only the first two may be served as an answer
    assert POLICY.state(token(3600), moments[state]) is state
    assert POLICY.usable(token(3600), moments[state]) is usable


def test_other_ratios_move_the_boundaries() -> None:
    # GIVEN a policy refreshing at half the life with a quarter kept in reserve
    policy = FreshnessPolicy(refresh_ratio=0.5, min_remaining_ratio=0.25)
    cached = token(1000, policy)

    # THEN the states follow those ratios
    assert [policy.state(cached, T0 + t) for t in (499, 500, 749, 750)] == [
        Freshness.FRESH,
        Freshness.REFRESH,
        Freshness.REFRESH,
        Freshness.LATE,
    ]


@pytest.mark.parametrize(
    ("issued_at", "expires_in", "expires_at", "refresh_at"),
    [
        (T0, 3600, T0 + 3600, T0 + 2700),
        # Cognito truncates iat to the second: the life is counted from the whole second
        (T0 + 0.9, 3600, T0 + 3600, T0 + 2700),
        (T0 + 5.25, 300, T0 + 305, T0 + 5 + 225),
    ],
)
def test_a_tokens_times_come_from_cognitos_answer(
    issued_at: float, expires_in: int, expires_at: float, refresh_at: float
) -> None:
    # GIVEN Cognito's 200 answer, asked for at issued_at
    body = {"access_token": "eyJ.x.y", "expires_in": expires_in, "token_type": "Bearer"}

    # WHEN the policy reads it
    cached = POLICY.token_from(answer(200, body), issued_at)

    # THEN the whole answer is kept, with times counted from the whole second
    assert cached == CachedToken(
        response=body, issued_at=issued_at, expires_at=expires_at, refresh_at=refresh_at
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"access_token": "eyJ.x.y", "token_type": "Bearer"}),  # no expires_in
        (200, {"access_token": "eyJ.x.y", "expires_in": 0}),
        (200, {"access_token": "eyJ.x.y", "expires_in": -5}),
        (200, {"access_token": "eyJ.x.y", "expires_in": "3600"}),
        (200, {"access_token": "eyJ.x.y", "expires_in": 3600.0}),
        (200, {"access_token": "eyJ.x.y", "expires_in": True}),
        (200, {"access_token": "", "expires_in": 3600}),
        (200, {"access_token": 7, "expires_in": 3600}),
        (200, ["a", "list"]),
        (200, b"not json"),
        (200, b"\xff\xfe"),
        (201, {"access_token": "eyJ.x.y", "expires_in": 3600}),
        (400, {"error": "invalid_client"}),
    ],
)
def test_answers_that_are_not_cacheable_tokens(status: int, body: Any) -> None:
    # WHEN the policy reads an answer that is not a 200 with a token and a lifetime
    # THEN there is no token to cache (the answer is relayed as Cognito sent it)
    assert POLICY.token_from(answer(status, body), T0) is None


@pytest.mark.parametrize(
    ("status", "body", "negative"),
    [
        (400, {"error": "invalid_client"}, True),
        (401, {"error": "invalid_client", "error_description": "bad secret"}, True),
        (400, {"error": "invalid_scope"}, True),
        (400, {"error": "unauthorized_client"}, True),
        (400, {"error": "invalid_request", "error_description": "unknown resource"}, True),
        (400, {"error": 7}, False),
        (400, {"no_error": "invalid_client"}, False),
        (403, {"error": "invalid_client"}, False),  # WAF, or a wrong origin value
        (429, {"error": "too_many_requests"}, False),  # throttling is about the rate
        (500, {"error": "invalid_client"}, False),
        (400, b"invalid_client", False),
        (400, ["invalid_client"], False),
    ],
)
def test_cognitos_refusals_of_the_exact_request_are_negative_answers(
    status: int, body: Any, negative: bool
) -> None:
    # WHEN the policy reads Cognito's answer / THEN only a 400 or 401 RFC 6749 error about the
    # request itself is worth remembering under its key
    assert is_negative_answer(answer(status, body)) is negative
