"""The DynamoDB token store: one item per cache key (the only package that reads or writes it).

Item kinds, by what they hold:

- a token item: ``pk`` (the cache key), ``blob`` (the sealed record: the token response, its
  times and client id; :mod:`token_proxy.token_record`), plain ``client_id``, ``scope``,
  ``issued_at`` and ``expires_at`` for operators (never trusted), ``ttl`` (DynamoDB TTL: the
  item stays while it still proves that its key once produced a token, see ``keep_until``) and
  ``schema_version``; while its key is being fetched or backed off, also the lease fields
  ``lease_owner``, ``lease_until`` and ``backoff_until``;
- a lease item: only the lease fields and ``ttl``, while a key that never produced a token is
  being fetched. It is deleted when the fetch ends without a token (``release_lease``), so
  keys that never produce a token leave nothing behind;
- a budget counter (``pk`` ``budget#...``): ``window`` and ``calls``, see ``count_call``.

Nothing a caller sent that Cognito has not confirmed is written: lease items and counters hold
no client id, and answers that are not tokens are not stored at all.

Reads never fail on a malformed attribute: what the store acts on (the blob, the lease fields,
the back-off) is ``None`` when it is not of its type, and everything else is the sealed record's
business. Every AWS failure becomes :class:`~token_proxy.errors.StoreUnavailable`.

One module per kind of work on the table, each a part of :class:`DynamoTokenStore`:
:mod:`~token_proxy.store.tokens` (reading items, writing tokens),
:mod:`~token_proxy.store.leases` (the lease and the back-off),
:mod:`~token_proxy.store.counters` (the budget's counters) and
:mod:`~token_proxy.store.invalidation` (an operator's deletion of a client's items, through the
global secondary index :data:`CLIENT_INDEX`); :mod:`~token_proxy.store.attributes` holds how
they write and read attribute values.
"""

from __future__ import annotations

from token_proxy.store.attributes import (
    MAX_LEASE_SECONDS,
    MAX_TOKEN_LIFETIME_SECONDS,
    SCHEMA_VERSION,
    TTL_GRACE_SECONDS,
)
from token_proxy.store.counters import BudgetCounters
from token_proxy.store.invalidation import BATCH_DELETE_SIZE, CLIENT_INDEX, ClientInvalidation
from token_proxy.store.leases import Leases
from token_proxy.store.tokens import TokenItems

__all__ = [
    "BATCH_DELETE_SIZE",
    "CLIENT_INDEX",
    "MAX_LEASE_SECONDS",
    "MAX_TOKEN_LIFETIME_SECONDS",
    "SCHEMA_VERSION",
    "TTL_GRACE_SECONDS",
    "DynamoTokenStore",
]


class DynamoTokenStore(TokenItems, Leases, BudgetCounters, ClientInvalidation):
    """The token table, every kind of work on it (:class:`~token_proxy.ports.TokenStore`);
    every AWS failure becomes StoreUnavailable."""
