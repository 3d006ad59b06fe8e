"""The backup and restore docs/operations.md gives ("Backup and restore"), run for real: ``pg_dump -Fc`` of a
controller's database (upgraded, with rows) restored with ``pg_restore`` into an empty database holds every row and
the schema revision, so ``edgefleet cloud migrate`` finds it at head. PostgreSQL only (EDGEFLEET_TEST_DATABASE_URL),
and only where the PostgreSQL client programs are installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from edgefleet.cloud.migrating import current_revision, head_revision
from edgefleet.cloud.store import Store
from tests.cli.entry import edgefleet
from tests.cloud.migrations.test_a_database_of_the_last_release_upgrades_with_everything_in_it import (
    MOVED,
    ROWS,
    write_release_0_1_0,
)
from tests.support.peers import postgres_database


def libpq(url: str) -> str:
    """The URL as libpq reads it: no SQLAlchemy driver name (``postgresql+psycopg://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.postgres
def test_pg_dump_and_pg_restore_carry_every_row_and_the_revision(tmp_path: Path) -> None:
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed (Debian: postgresql-client)")
    backup = tmp_path / "edgefleet.dump"
    with postgres_database(server) as source, postgres_database(server) as target:
        write_release_0_1_0(source).close()
        assert edgefleet("cloud", "migrate", "--database", source).returncode == 0

        subprocess.run(["pg_dump", "--format=custom", "--file", str(backup), libpq(source)], check=True, timeout=60)
        subprocess.run(["pg_restore", "--no-owner", "--dbname", libpq(target), str(backup)], check=True, timeout=60)

        again = edgefleet("cloud", "migrate", "--database", target)
        assert again.returncode == 0, again.stderr
        assert f"is at {head_revision()} already" in again.stdout
        store = Store(target)
        try:
            assert current_revision(store) == head_revision()
            with store.transaction("read every table") as connection:
                for table, rows in ROWS.items():
                    if table in MOVED:
                        continue
                    found = [dict(r) for r in connection.execute(sa.text(f"SELECT * FROM {table}")).mappings()]
                    assert found == rows, table
                moved = [dict(r) for r in connection.execute(sa.text("SELECT * FROM audit_log")).mappings()]
                assert moved == list(MOVED.values())
        finally:
            store.close()
