"""The L1's max age: a token is handed out from memory only for a while after it was put."""

from __future__ import annotations

import pytest

from tests.fakes.clock import T0, FakeClock
from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken, UpstreamResponse

DENIED = UpstreamResponse(status=400, body=b'{"error":"invalid_client"}')


def token(n: int) -> CachedToken:
    return CachedToken(
        response={"access_token": f"token-{n}", "expires_in": 3600, "token_type": "Bearer"},
        issued_at=T0,
        expires_at=T0 + 3600,
        refresh_at=T0 + 2700,
    )


def test_a_token_is_served_until_its_max_age_then_only_unverified() -> None:
    # GIVEN an L1 with a 30 s max age and a token put at T0
    clock = FakeClock()
    l1 = TokenL1(4, max_age_seconds=30, clock=clock)
    l1.put("k1", token(1))

    # WHEN 29.9 s pass, THEN get still serves it
    clock.advance(29.9)
    assert l1.get("k1") == token(1)

    # WHEN 30 s have passed, THEN get refuses it but get_unverified still has it
    clock.advance(0.1)
    assert l1.get("k1") is None
    assert l1.get_unverified("k1") == token(1)
    assert len(l1) == 1

    # AND putting it again (revalidated) serves it for another 30 s
    l1.put("k1", token(2))
    clock.advance(29)
    assert l1.get("k1") == token(2)


def test_without_a_max_age_a_token_never_needs_revalidation() -> None:
    clock = FakeClock()
    l1 = TokenL1(4, clock=clock)
    l1.put("k1", token(1))
    clock.advance(10**9)
    assert l1.get("k1") == token(1)


def test_get_unverified_ignores_negative_entries_and_clear_empties_the_cache() -> None:
    # GIVEN a token and a negative answer
    l1 = TokenL1(4, max_age_seconds=30, clock=FakeClock())
    l1.put("k1", token(1))
    l1.put_negative("k2", DENIED, until=T0 + 30)

    # THEN get_unverified returns only tokens
    assert l1.get_unverified("k1") == token(1)
    assert l1.get_unverified("k2") is None
    assert l1.get_unverified("absent") is None

    # WHEN cleared, THEN nothing is left
    l1.clear()
    assert len(l1) == 0
    assert l1.get_unverified("k1") is None
    assert l1.get_negative("k2", T0) is None


@pytest.mark.parametrize("max_age", [0, -1, float("nan")])
def test_a_max_age_must_be_positive(max_age: float) -> None:
    with pytest.raises(ValueError, match="max_age_seconds"):
        TokenL1(4, max_age_seconds=max_age)
