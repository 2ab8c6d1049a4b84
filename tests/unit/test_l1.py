"""The L1: bounded, thread-safe LRUs of tokens and, apart, negative answers."""

from __future__ import annotations

import threading

import pytest

from token_proxy.l1 import TokenL1
from token_proxy.model import CachedToken, UpstreamResponse

T0 = 1_700_000_000.0


def token(n: int) -> CachedToken:
    return CachedToken(
        response={"access_token": f"token-{n}", "expires_in": 3600, "token_type": "Bearer"},
        issued_at=T0,
        expires_at=T0 + 3600,
        refresh_at=T0 + 2700,
    )


DENIED = UpstreamResponse(status=400, body=b'{"error":"invalid_client"}')


def test_get_returns_what_was_put_and_none_otherwise() -> None:
    # GIVEN an L1 holding one token
    l1 = TokenL1(4)
    l1.put("k1", token(1))

    # THEN it is returned for its key only
    assert l1.get("k1") == token(1)
    assert l1.get("k2") is None
    assert len(l1) == 1


def test_bound_evicts_least_recently_used() -> None:
    # GIVEN a full L1 of three, where k1 was read after k2 and k3 were written
    l1 = TokenL1(3)
    for n in (1, 2, 3):
        l1.put(f"k{n}", token(n))
    assert l1.get("k1") == token(1)

    # WHEN a fourth key is put
    l1.put("k4", token(4))

    # THEN the least recently used key (k2) is gone, and the bound holds
    assert len(l1) == 3
    assert l1.get("k2") is None
    assert [l1.get(k) for k in ("k1", "k3", "k4")] == [token(1), token(3), token(4)]


def test_put_replaces_and_refreshes_recency() -> None:
    # GIVEN k1 rewritten after k2
    l1 = TokenL1(2)
    l1.put("k1", token(1))
    l1.put("k2", token(2))
    l1.put("k1", token(11))

    # WHEN k3 is put
    l1.put("k3", token(3))

    # THEN k2 was evicted and k1 holds its new value
    assert l1.get("k2") is None
    assert l1.get("k1") == token(11)
    assert len(l1) == 2


def test_discard() -> None:
    l1 = TokenL1(2)
    l1.put("k1", token(1))
    l1.discard("k1")
    l1.discard("never-there")
    assert l1.get("k1") is None
    assert len(l1) == 0


def test_disabled_l1_stores_nothing() -> None:
    # GIVEN an L1 of size 0
    l1 = TokenL1(0)

    # WHEN tokens and negatives are put
    l1.put("k1", token(1))
    l1.put_negative("k2", DENIED, until=T0 + 30)

    # THEN nothing is ever returned
    assert l1.get("k1") is None
    assert l1.get_negative("k2", T0) is None
    assert len(l1) == 0


def test_negative_entries_expire_and_are_separate_from_tokens() -> None:
    # GIVEN a negative entry until T0+30
    l1 = TokenL1(4)
    l1.put_negative("k1", DENIED, until=T0 + 30)

    # THEN it is a negative (not a token) until T0+30, then it is dropped
    assert l1.get("k1") is None
    assert l1.get_negative("k1", T0 + 29.9) == DENIED
    assert l1.get_negative("k1", T0 + 30) is None
    assert len(l1) == 0


def test_token_and_negative_share_one_slot_per_key() -> None:
    # GIVEN a token for k1, then a negative answer for the same key
    l1 = TokenL1(4)
    l1.put("k1", token(1))
    l1.put_negative("k1", DENIED, until=T0 + 30)

    # THEN the negative replaced the token
    assert l1.get("k1") is None
    assert l1.get_negative("k1", T0) == DENIED

    # WHEN a token is put again, it replaces the negative
    l1.put("k1", token(2))
    assert l1.get_negative("k1", T0) is None
    assert l1.get("k1") == token(2)
    assert len(l1) == 1


def test_negative_entries_never_evict_tokens() -> None:
    # GIVEN an L1 of two holding two tokens
    l1 = TokenL1(2)
    l1.put("k1", token(1))
    l1.put("k2", token(2))

    # WHEN a flood of negative answers is put (wrong secrets)
    for n in range(1100):
        l1.put_negative(f"wrong-{n}", DENIED, until=T0 + 30)

    # THEN the tokens are still there: each kind has its own bound
    assert [l1.get("k1"), l1.get("k2")] == [token(1), token(2)]
    assert (l1.token_count, l1.negative_count, len(l1)) == (2, 2, 4)
    assert l1.get_negative("wrong-1099", T0) == DENIED
    assert l1.get_negative("wrong-0", T0) is None  # the oldest negative answers went


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        TokenL1(-1)


def test_concurrent_use_keeps_the_bound() -> None:
    # GIVEN an L1 of 50 used by 16 threads writing 200 keys each
    l1 = TokenL1(50)

    def work(worker: int) -> None:
        for n in range(200):
            l1.put(f"w{worker}-{n}", token(n))
            l1.get(f"w{worker}-{n // 2}")
            l1.put_negative(f"neg-{n}", DENIED, until=T0 + 30)
            l1.get_negative(f"neg-{n // 3}", T0)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN each bound held and the maps are still consistent
    assert (l1.token_count, l1.negative_count) == (50, 50)
    assert sum(l1.get(f"w{w}-199") is not None for w in range(16)) <= 50
    assert sum(l1.get_negative(f"neg-{n}", T0) is not None for n in range(200)) <= 50
