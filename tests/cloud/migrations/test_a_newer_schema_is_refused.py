"""A database a newer release upgraded (a revision this release does not know) is refused in one line naming both
revisions, by ``cloud migrate`` and by ``cloud serve``, before anything runs on a schema it cannot read."""

from __future__ import annotations

from edgefleet.cloud.migrating import head_revision, upgrade_schema
from edgefleet.cloud.store import Store
from tests.cli.entry import edgefleet
from tests.support.peers import free_port


def upgraded_by_a_newer_release(url: str) -> None:
    store = Store(url)
    try:
        upgrade_schema(store)
        with store.transaction("play a newer release") as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    finally:
        store.close()


def test_migrate_and_serve_refuse_a_newer_schema(database_url: str) -> None:
    upgraded_by_a_newer_release(database_url)

    migrate = edgefleet("cloud", "migrate", "--database", database_url)
    serve = edgefleet(
        "cloud",
        "serve",
        "--database",
        database_url,
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--sites",
        "sites",
        env={"EDGEFLEET_BROKER_URL": "mqtt://127.0.0.1:1"},
    )

    for done in (migrate, serve):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "'0099_from_the_future', which this release does not know" in done.stderr
        assert f"(its newest is {head_revision()!r})" in done.stderr
