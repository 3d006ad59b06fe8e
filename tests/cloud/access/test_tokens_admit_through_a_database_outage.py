"""While the database refuses, a token found before keeps admitting its holder (as last read; expiry still judged
at now), and an unknown secret is refused with the database's error, never admitted. The table dropped stands in
for a database that refuses every read (the real outage: tests/faults/test_a_30_s_database_outage.py). Runs on the
``database_url`` fixture's database (SQLite, or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.access.tokens import admit, parse_expiry
from edgefleet.cloud.store import Store, StoreError

NOW = 1_800_000_000.0


@pytest.fixture
def tokens(database_url: str) -> Iterator[TokenStore]:
    store = Store(database_url)
    found = TokenStore(store)
    found.create_schema()
    yield found
    store.close()


def _refuse_reads(tokens: TokenStore) -> None:
    with tokens.store.transaction("drop the token table") as connection:
        connection.execute(sa.text("DROP TABLE api_token"))


def test_a_token_found_before_admits_while_the_database_refuses(tokens: TokenStore) -> None:
    secret, _ = tokens.create("ops", "admin", None, now=NOW, expires_in_s=parse_expiry("1h"))
    never_read, _ = tokens.create("other", "admin", None, now=NOW, expires_in_s=None)
    assert tokens.find(secret) is not None

    _refuse_reads(tokens)
    record = tokens.find(secret)
    assert record is not None
    assert record.name == "ops"
    assert admit(record, now=NOW + 60) is not None
    assert admit(record, now=NOW + 3600) is None  # expired during the outage: refused as always
    # A token not read before the outage, and a guess: the database's error, never an admission.
    with pytest.raises(StoreError):
        tokens.find(never_read)
    with pytest.raises(StoreError):
        tokens.find(secret + "x")


def test_a_revoked_token_is_not_admitted_from_memory(tokens: TokenStore) -> None:
    secret, _ = tokens.create("leaving", "admin", None, now=NOW, expires_in_s=None)
    assert tokens.find(secret) is not None
    tokens.revoke("leaving", now=NOW + 10)
    _refuse_reads(tokens)
    record = tokens.find(secret)
    assert record is not None
    assert admit(record, now=NOW + 20) is None
