"""API tokens: the secret is shown once and only its hash is stored; expired and revoked tokens admit no one;
names are checked and stay taken. Runs on the ``database_url`` fixture's database (SQLite, or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.access.tokens import TokenError, admit, digest, parse_expiry
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId

NOW = 1_800_000_000.0


@pytest.fixture
def tokens(database_url: str) -> Iterator[TokenStore]:
    store = Store(database_url)
    found = TokenStore(store)
    found.create_schema()
    yield found
    store.close()


def test_the_secret_is_shown_once_and_stored_only_as_its_hash(tokens: TokenStore) -> None:
    secret, record = tokens.create("alice", "ops", None, now=NOW, expires_in_s=None)
    assert secret.startswith("ef_")
    assert len(secret) > 40
    with tokens.store.transaction("read the raw rows") as connection:
        rows = [tuple(r) for r in connection.execute(sa.text("SELECT * FROM api_token")).all()]
    assert not any(secret in str(value) for row in rows for value in row)
    assert record.digest == digest(secret)
    found = tokens.find(secret)
    assert found is not None
    assert admit(found, now=NOW) is not None
    assert admit(found, now=NOW).name == "alice"  # type: ignore[union-attr]
    assert tokens.find(secret + "x") is None


def test_site_staff_keep_their_sites(tokens: TokenStore) -> None:
    secret, _ = tokens.create("berlin-desk", "site-staff", frozenset({SiteId("berlin-1")}), now=NOW, expires_in_s=None)
    principal = admit(tokens.find(secret), now=NOW)
    assert principal is not None
    assert principal.role == "site-staff"
    assert principal.sites == frozenset({SiteId("berlin-1")})


def test_an_expired_token_admits_no_one(tokens: TokenStore) -> None:
    secret, _ = tokens.create("temp", "viewer", None, now=NOW, expires_in_s=parse_expiry("1h"))
    record = tokens.find(secret)
    assert admit(record, now=NOW + 3599) is not None
    assert admit(record, now=NOW + 3600) is None
    assert record is not None
    assert record.state(NOW + 3600) == "expired"


def test_a_revoked_token_admits_no_one_and_its_name_stays_taken(tokens: TokenStore) -> None:
    secret, _ = tokens.create("bob", "admin", None, now=NOW, expires_in_s=None)
    revoked = tokens.revoke("bob", now=NOW + 10)
    assert revoked.state(NOW + 10) == "revoked"
    assert admit(tokens.find(secret), now=NOW + 10) is None
    assert tokens.revoke("bob", now=NOW + 99).revoked_at == NOW + 10
    with pytest.raises(TokenError, match="exists already"):
        tokens.create("bob", "admin", None, now=NOW + 20, expires_in_s=None)
    assert [t.name for t in tokens.tokens()] == ["bob"]


@pytest.mark.parametrize(
    ("name", "role", "sites", "hint"),
    [
        ("Bad Name", "viewer", None, "token name 'Bad Name' is not valid"),
        ("desk", "site-staff", None, "needs at least one site"),
        ("desk", "ops", frozenset({SiteId("berlin-1")}), "drop --site"),
    ],
)
def test_a_bad_request_is_refused_with_the_fix(
    tokens: TokenStore, name: str, role: str, sites: frozenset[SiteId] | None, hint: str
) -> None:
    with pytest.raises(ValueError, match=hint):
        tokens.create(name, role, sites, now=NOW, expires_in_s=None)  # type: ignore[arg-type]
    assert tokens.tokens() == []


def test_revoking_an_unknown_name_says_where_to_look(tokens: TokenStore) -> None:
    with pytest.raises(TokenError, match="'edgefleet tokens list' shows them"):
        tokens.revoke("nobody", now=NOW)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400.0), ("12h", 43200.0), ("90m", 5400.0), ("2w", 1209600.0)]
)
def test_expiry_reads_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize("text", ["30", "0d", "-1d", "1y", "d"])
def test_a_bad_expiry_says_how_to_write_one(text: str) -> None:
    with pytest.raises(TokenError, match="write a positive number and a unit"):
        parse_expiry(text)
