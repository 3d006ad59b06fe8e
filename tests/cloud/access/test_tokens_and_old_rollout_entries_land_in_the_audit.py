"""The audit log holds what happened outside the API too: ``edgefleet tokens create|revoke`` write their entries in
the same transaction as the token (the principal: the operating system's user; the source: the command and host),
and a database at revision 0003 keeps its rollout audit: revision 0004 moves every row into the one log, in order,
a hold filed under its site. Runs on the ``database_url`` fixture's database (SQLite, or PostgreSQL)."""

from __future__ import annotations

import getpass
import json
import socket

import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext

from edgefleet.cloud.access.audit_log import Actor, AuditLog, AuditQuery, AuditRecord, Target
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.migrating import _config, current_revision, head_revision, upgrade_schema
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId
from tests.cli.entry import edgefleet

DESK = Actor("root", None, "edgefleet tokens on build-host")


def test_a_token_created_and_revoked_is_audited_without_its_secret(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade_schema(store)
        tokens = TokenStore(store)
        secret, record = tokens.create("berlin-desk", "site-staff", frozenset({SiteId("berlin-1")}), now=10.0,
                                       expires_in_s=None, actor=DESK)  # fmt: skip
        tokens.revoke("berlin-desk", now=20.0, actor=DESK)
        tokens.revoke("berlin-desk", now=30.0, actor=DESK)  # revoked already: nothing changes, nothing is audited

        revoked, created = AuditLog(store).page()
    finally:
        store.close()
    assert (created.action, created.at, created.actor, created.before) == ("create-token", 10.0, DESK, None)
    assert created.after == {"role": "site-staff", "sites": ["berlin-1"]}
    assert created.target is not None
    assert (created.target.kind, created.target.id, created.target.site) == ("token", "berlin-desk", None)
    assert (revoked.action, revoked.at, revoked.after) == ("revoke-token", 20.0, {**created.after, "revoked_at": 20.0})
    assert secret not in json.dumps([created.after, revoked.before, revoked.after])
    assert record.digest not in json.dumps([created.after, revoked.before, revoked.after])


def test_the_tokens_command_names_the_user_and_host(database_url: str) -> None:
    env = {"EDGEFLEET_DATABASE_URL": database_url}
    made = edgefleet("tokens", "create", "--name", "ops-desk", "--role", "ops", env=env)
    revoked = edgefleet("tokens", "revoke", "ops-desk", env=env)
    refused = edgefleet("tokens", "revoke", "nobody", env=env)  # refused: nothing to audit

    assert made.returncode == 0, made.stderr
    assert revoked.returncode == 0, revoked.stderr
    assert refused.returncode == 1
    store = Store(database_url)
    try:
        entries = AuditLog(store).page()
    finally:
        store.close()
    assert [e.action for e in entries] == ["revoke-token", "create-token"]
    for entry in entries:
        assert entry.actor == Actor(getpass.getuser(), None, f"edgefleet tokens on {socket.gethostname()}")


OLD_ROWS = [
    {"rollout_id": "r-1", "at": 100.0, "who": "li.wei", "what": "start rollout of scan-upload-2.0.0", "before": None,
     "after": "scan-upload-2.0.0"},
    {"rollout_id": None, "at": 110.0, "who": "staff", "what": "hold site sh-pudong", "before": None,
     "after": "peak day"},
    {"rollout_id": "r-1", "at": 120.0, "who": "reconciler", "what": "apply scan-upload-2.0.0 at bj-daxing",
     "before": "scan-upload-1.0.0", "after": "scan-upload-2.0.0"},
    {"rollout_id": None, "at": 130.0, "who": "exclusive-windows", "what": "taint node n1 of cluster c",
     "before": None, "after": "edgefleet.io/exclusive=x:NoSchedule"},
]  # fmt: skip


def test_a_database_at_0003_moves_its_rollout_audit_into_the_log(database_url: str) -> None:
    store = Store(database_url)
    try:
        with store.transaction("upgrade to 0003") as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0003_api_token")
        with store.transaction("write the 0003 rollout audit") as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0003_api_token"
            connection.execute(
                sa.text(
                    "INSERT INTO rollout_audit (rollout_id, at, who, what, before, after) "
                    "VALUES (:rollout_id, :at, :who, :what, :before, :after)"
                ),
                OLD_ROWS,
            )

        upgraded = upgrade_schema(store)

        assert (upgraded.before, upgraded.after) == ("0003_api_token", head_revision())
        assert current_revision(store) == head_revision()
        with store.transaction("list the tables") as connection:
            assert "rollout_audit" not in sa.inspect(connection).get_table_names()
        entries = list(reversed(AuditLog(store).page()))
        assert [(e.at, e.actor.name, e.summary) for e in entries] == [(r["at"], r["who"], r["what"]) for r in OLD_ROWS]
        assert [e.action for e in entries] == ["start", "hold", "apply", "taint"]
        assert [None if e.target is None else (e.target.kind, e.target.id, e.target.site) for e in entries] == [
            ("rollout", "r-1", None),
            ("site", "sh-pudong", "sh-pudong"),
            ("rollout", "r-1", None),
            None,
        ]
        # The rollout's own view reads them as before, and site staff of sh-pudong find the hold.
        rollouts = RolloutStore(store)
        assert [(e.what, e.before, e.after) for e in rollouts.audit("r-1")] == [
            ("start rollout of scan-upload-2.0.0", None, "scan-upload-2.0.0"),
            ("apply scan-upload-2.0.0 at bj-daxing", "scan-upload-1.0.0", "scan-upload-2.0.0"),
        ]
        scoped = AuditLog(store).page(AuditQuery(sites={SiteId("sh-pudong")}))
        assert [e.summary for e in scoped] == ["hold site sh-pudong"]
        # New entries follow the moved ones.
        rollouts.record(rollouts.audit("r-1")[0])
        assert (AuditLog(store).page(limit=1)[0].id or 0) > (entries[-1].id or 0)
    finally:
        store.close()


def test_entries_the_database_refuses_wait_and_go_in_first_in_order(database_url: str) -> None:
    """``AuditLog.keep`` (the routes whose change lives in memory): a refused entry waits, and the next write that
    succeeds puts it in before its own. The database refuses here because the table is away (renamed)."""
    store = Store(database_url)
    try:
        upgrade_schema(store)
        log = AuditLog(store)
        first, second = (AuditRecord(float(i), DESK, "acknowledge-alert", Target("alert", f"a{i}"), f"ack a{i}")
                         for i in (1, 2))  # fmt: skip
        with store.transaction("take the table away") as connection:
            connection.execute(sa.text("ALTER TABLE audit_log RENAME TO audit_log_away"))

        assert log.keep(first) is False
        assert log.waiting == 1

        with store.transaction("bring the table back") as connection:
            connection.execute(sa.text("ALTER TABLE audit_log_away RENAME TO audit_log"))
        assert log.keep(second) is True
        assert log.waiting == 0
        assert [e.summary for e in reversed(log.page())] == ["ack a1", "ack a2"]
    finally:
        store.close()
