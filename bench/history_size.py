"""History size: bytes a health sample and a 5-minute bucket cost on SQLite and PostgreSQL, and the disk a fleet
of N boxes needs at the defaults (issue 13, item 7).

Fills a fresh database through ``Store.save`` and ``Store.trim_history`` as the persister would, for ``--boxes``
boxes over ``--hours`` hours at 10 s heartbeats (samples received every 10 s, trimmed every minute), then
measures each table with its indexes: SQLite by ``dbstat`` (pages in use), PostgreSQL by
``pg_total_relation_size``. Prints bytes a row and the projection for ``--fleet`` boxes at the defaults.

    .venv/bin/python bench/history_size.py [--boxes 50] [--hours 3] [--postgres postgresql://postgres@127.0.0.1/postgres]

Results and how to read them: docs/operations.md, section "Disk".
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from edgefleet.cloud.fleet import HealthPoint  # noqa: E402
from edgefleet.cloud.persisting import FULL_RESOLUTION_S  # noqa: E402
from edgefleet.cloud.settings import DEFAULT_HISTORY_RETENTION_S  # noqa: E402
from edgefleet.cloud.store import DOWNSAMPLE_S, Store  # noqa: E402
from edgefleet.ids import BoxId  # noqa: E402
from tests.support.peers import postgres_database  # noqa: E402

T0 = 1_800_000_000.0
INTERVAL_S = 10.0


def fill(store: Store, boxes: int, hours: float) -> None:
    names = [BoxId(f"sh-pudong-gpu-{i:03d}") for i in range(boxes)]
    for minute in range(int(hours * 60)):
        start = T0 + 60 * minute
        samples = [
            (box, HealthPoint(start + INTERVAL_S * i, 12.5 + i, 41.3, 63.0, 61.0 + i, 40.0))
            for i in range(6)
            for box in names
        ]
        store.save([], samples, [])
        now = start + 60
        before = math.floor((now - FULL_RESOLUTION_S) / DOWNSAMPLE_S) * DOWNSAMPLE_S
        store.trim_history(older_than=now - DEFAULT_HISTORY_RETENTION_S, downsample_before=before)
        if store.dialect == "postgresql" and minute % 12 == 11:
            vacuum(store)


def vacuum(store: Store) -> None:
    """What autovacuum does for a running controller about every 12 minutes (20% of the samples dead): the
    deleted rows' space is reused, not returned."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))


def table_bytes(store: Store) -> dict[str, int]:
    tables = {"health_sample": ("health_sample", "ix_health_sample_at", "ix_health_sample_box_at")}
    tables["health_rollup"] = ("health_rollup", "ix_health_rollup_at", "sqlite_autoindex_health_rollup_1")
    with store.engine.connect() as connection:
        if store.dialect == "sqlite":
            return {
                table: int(
                    connection.execute(sa.text(f"SELECT sum(pgsize) FROM dbstat WHERE name IN {names!r}")).scalar_one()
                )
                for table, names in tables.items()
            }
        return {
            table: int(connection.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar_one())
            for table in tables
        }


def measure(url: str, args: argparse.Namespace) -> None:
    store = Store(url)
    store.create_schema()
    fill(store, args.boxes, args.hours)
    sizes = table_bytes(store)
    samples, rollups = store.count_samples(), store.count_rollups()
    per_sample, per_rollup = sizes["health_sample"] / samples, sizes["health_rollup"] / rollups
    per_box = (FULL_RESOLUTION_S + DOWNSAMPLE_S) / INTERVAL_S * per_sample + (
        (DEFAULT_HISTORY_RETENTION_S - FULL_RESOLUTION_S) / DOWNSAMPLE_S + 1
    ) * per_rollup
    print(
        f"{store.dialect:>10}: {samples} samples {per_sample:.0f} B each, {rollups} buckets {per_rollup:.0f} B each; "
        f"at the defaults {per_box / 1e3:.0f} kB a box, {per_box * args.fleet / 1e6:.0f} MB for {args.fleet} boxes"
    )
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--fleet", type=int, default=2000)
    parser.add_argument("--postgres", help="a PostgreSQL server to measure on too (a scratch database is made)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        measure(f"sqlite:///{directory}/edgefleet.db", args)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            measure(url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
