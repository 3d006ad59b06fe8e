"""Schema migrations: the controller's database brought to the schema this release's tables expect, with
alembic and the scripts in ``edgefleet/cloud/migrations/versions/`` (docs/decisions.md, "Schema migrations").

Called by the controller at start (``Controller``, after it took the database's lock and before it reads a row)
and by ``edgefleet cloud migrate``. ``upgrade_schema`` runs every missing script in one transaction:

- on PostgreSQL under a transaction-scoped advisory lock of its own, so two controllers (or a controller and
  ``cloud migrate``) starting together upgrade one after the other, and the second finds nothing to do; the DDL is
  transactional, so a failed script leaves the schema as it was;
- on SQLite inside ``BEGIN IMMEDIATE``: the Python driver would otherwise run each CREATE/ALTER outside a
  transaction, and the write lock is what serialises two migrators of one file.

A database of release 0.1.0 (no ``alembic_version`` table yet) is adopted by the baseline script, which creates
only the tables that are missing. A database at a revision this release does not know was upgraded by a newer
release: ``SchemaTooNewError`` refuses it, naming both revisions, instead of running on a schema it cannot read.

``model_metadata`` is every table of the controller's models, what the newest script must produce (tested with
alembic's autogenerate comparison, so a model change without its script fails the suite).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from edgefleet.cloud.store import Store, StoreError

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"

# A 64-bit advisory lock key of its own, derived from a name like the controller lock's (edgefleet.cloud.leading),
# so that migrating never waits on the controller lock another replica holds for its life.
MIGRATION_LOCK_NAME: Final = "edgefleet.cloud schema migration"
MIGRATION_LOCK_KEY: Final = int.from_bytes(hashlib.sha256(MIGRATION_LOCK_NAME.encode()).digest()[:8], signed=True)


class SchemaTooNewError(StoreError):
    """The database's schema revision is unknown to this release: a newer release upgraded it."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """What ``upgrade_schema`` did: the revision before (None: no revision, an empty or 0.1.0 database) and after."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def model_metadata() -> sa.MetaData:
    """The controller's tables as its models declare them (a fresh MetaData: nothing else registered with
    SQLModel leaks in)."""
    from edgefleet.cloud import event_forwarding, leading, store
    from edgefleet.cloud.access import audit_log, enrollment_tokens, local_users, sessions, token_store
    from edgefleet.cloud.alerting import outbox
    from edgefleet.cloud.alerting import store as alert_store
    from edgefleet.cloud.rollouts import store as rollout_store

    metadata = sa.MetaData()
    for table in (
        *store.TABLES,
        *alert_store.TABLES,
        *outbox.TABLES,
        *rollout_store.TABLES,
        *event_forwarding.TABLES,
        *token_store.TABLES,
        *sessions.TABLES,
        *local_users.TABLES,
        *enrollment_tokens.TABLES,
        *audit_log.TABLES,
        *leading.TABLES,
    ):
        table.to_metadata(metadata)
    return metadata


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest script's revision: the schema this release runs on."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the baseline is always there
        raise StoreError(f"no migration scripts in {MIGRATIONS_DIR}; the installation is incomplete")
    return head


def current_revision(store: Store) -> str | None:
    """The database's schema revision; None when it has none (empty, or made by release 0.1.0)."""
    with store.transaction("read the schema revision") as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(store: Store) -> Migrated:
    """Run every script the database lacks, in one transaction; ``SchemaTooNewError`` when the database is ahead of
    this release. Safe to run twice, and from two processes at once."""
    config = _config()
    scripts = ScriptDirectory.from_config(config)
    head = head_revision()
    with store.transaction("upgrade the schema") as connection:
        _lock(store, connection)
        before = MigrationContext.configure(connection).get_current_revision()
        if before is not None and before not in {script.revision for script in scripts.walk_revisions()}:
            raise SchemaTooNewError(
                f"database {store.url_shown} is at schema revision {before!r}, which this release does not know "
                f"(its newest is {head!r}): a newer edgefleet upgraded it; run that release, or restore the backup "
                "taken before the upgrade (docs/operations.md, 'Upgrading')"
            )
        if before != head:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    return Migrated(before=before, after=head)


def _lock(store: Store, connection: Connection) -> None:
    if store.dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    else:
        # The sqlite3 driver opens no transaction before DDL; this one holds the write lock until the commit.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def new_revision(store: Store, message: str) -> Path:
    """Write the next script from the difference between the models and the database (at head), for a developer
    who changed a model (docs/operations.md, 'Changing the schema'). Returns the script's path."""
    config = _config()
    with store.transaction("compare the models with the schema") as connection:
        config.attributes["connection"] = connection
        script = command.revision(config, message=message, autogenerate=True)
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise StoreError("alembic wrote no single script; check the versions directory for branches")
    return Path(script.path)
