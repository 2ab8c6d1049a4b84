"""The domain values: immutable, compared by value, and never a secret or a token in a repr."""

from __future__ import annotations

import pytest

from token_proxy.model import (
    CachedToken,
    Deletion,
    HttpResponse,
    LeaseAttempt,
    StoredItem,
    TokenRequest,
    UpstreamResponse,
)
from token_proxy.turn import Lease, Turn

SECRET = "s3cr3t-value-never-shown"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.token-never-shown.sig"
BASIC = "Basic Y2xpZW50OnMzY3IzdC12YWx1ZS1uZXZlci1zaG93bg=="
BLOB = b"\x01sealed-blob-never-shown"


def values() -> list[object]:
    body = f'{{"access_token":"{TOKEN}","expires_in":3600}}'
    token = CachedToken({"access_token": TOKEN}, 100.0, 3700.0, 2800.0)
    return [
        TokenRequest("client-1", SECRET, ("a/b",), (), "basic", BASIC),
        UpstreamResponse(200, body.encode()),
        token,
        StoredItem(BLOB, "owner", 110.0),
        LeaseAttempt(True, StoredItem(BLOB)),
        HttpResponse(200, body, {"Cache-Control": "no-store"}),
        Turn(Lease.ACQUIRED, found=token, fallback=token),
    ]


@pytest.mark.parametrize("value", values(), ids=lambda v: type(v).__name__)
def test_no_repr_holds_a_secret_or_a_token(value: object) -> None:
    # GIVEN a value built from a client secret, a Basic header, a token or a sealed blob
    # WHEN it is shown (a log line, a failed assertion, a debugger)
    shown = repr(value) + str(value)

    # THEN none of them is in it, while the type is named
    for secret in (SECRET, TOKEN, BASIC, BLOB.decode("latin-1"), "sealed-blob"):
        assert secret not in shown
    assert shown.startswith(type(value).__name__ + "(")


def test_values_compare_by_value_and_cannot_change() -> None:
    # GIVEN two requests built alike, and one with another secret
    one = TokenRequest("client-1", SECRET, ("a/b",))
    same = TokenRequest("client-1", SECRET, ("a/b",))
    other = TokenRequest("client-1", SECRET + "x", ("a/b",))

    # THEN equal values are equal (and hash alike), a different secret is a different value
    assert one == same and hash(one) == hash(same)
    assert one != other
    assert Deletion(2, complete=True) == Deletion(2, True)
    assert Turn(Lease.TAKEN, proven=True) == Turn(Lease.TAKEN, proven=True)
    assert Turn(Lease.TAKEN) != Turn(Lease.TAKEN, proven=True)
    # AND a value cannot be changed in place
    with pytest.raises(AttributeError):
        one.client_secret = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        StoredItem(BLOB).lease_owner = "someone"  # type: ignore[misc]
