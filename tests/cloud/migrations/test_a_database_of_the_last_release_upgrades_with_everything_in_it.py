"""A database written by release 0.1.0 (no migrations yet: its tables came from ``create_schema()``) is upgraded by
``edgefleet cloud migrate`` and every row of every table is still there, read back by today's stores.

The old schema is the DDL 0.1.0 sent, frozen beside this test (``schema-0.1.0.<dialect>.sql``), never today's
models; its rows go in with plain SQL. Runs on SQLite, and on PostgreSQL when EDGEFLEET_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from edgefleet.cloud.alerting.store import AlertStore
from edgefleet.cloud.migrating import current_revision, head_revision, upgrade_schema
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId
from tests.cli.entry import edgefleet

HERE: Final = Path(__file__).parent

# One representative row per table of 0.1.0, NULLs and 64-bit counters included.
ROWS: Final[dict[str, list[dict[str, Any]]]] = {
    "box_state": [
        {
            "box": "sh-pudong-01",
            "site": "sh-pudong",
            "boot": "b-1",
            "boot_started_at": 1_700_000_000.0,
            "seq": 2**40,
            "first_seen": 1_700_000_010.0,
            "last_seen": 1_700_000_500.0,
            "clock_skew_s": -0.25,
            "status_state": "online",
            "status_reason": None,
            "status_session": 3,
            "status_at": 1_700_000_011.0,
            "status_boot": "b-1",
            "status_seq": 7,
            "heartbeat": None,
        }
    ],
    "health_sample": [
        {
            "id": 1,
            "box": "sh-pudong-01",
            "at": 1_700_000_500.0,
            "cpu_percent": 31.5,
            "memory_used_percent": 40.0,
            "disk_used_percent": 55.0,
            "gpu_temperature_max_c": 71.0,
            "gpu_utilization_avg_percent": None,
        }
    ],
    "health_rollup": [
        {
            "box": "sh-pudong-01",
            "at": 1_699_999_800.0,
            "cpu_percent": 20.0,
            "memory_used_percent": 38.0,
            "disk_used_percent": 54.0,
            "gpu_temperature_max_c": 69.0,
            "gpu_utilization_avg_percent": 12.5,
            "samples": 30,
        }
    ],
    "unknown_box": [
        {
            "box": "stray-9",
            "claimed_site": "sh-pudong",
            "first_seen": 1_700_000_100.0,
            "last_seen": 1_700_000_200.0,
            "messages": 2**33,
        }
    ],
    "alert": [
        {
            "id": "0123456789abcdef-1700000300",
            "fingerprint": "0123456789abcdef",
            "kind": "box-lost",
            "site": "sh-pudong",
            "box": "sh-pudong-01",
            "detail": None,
            "severity": "critical",
            "summary": "Box sh-pudong-01 lost",
            "description": "No heartbeat for 35 s",
            "labels": '{"team":"ops"}',
            "details": '{"silent_s":35.0}',
            "started_at": 1_700_000_290.0,
            "fired_at": 1_700_000_300.0,
            "updated_at": 1_700_000_310.0,
            "state": "acknowledged",
            "muted": None,
            "muted_by": "[]",
            "acknowledged_by": "li.wei",
            "acknowledged_at": 1_700_000_305.0,
            "resolved_by": None,
            "resolved_at": None,
        }
    ],
    "silence": [
        {
            "id": "s-1",
            "site": "sh-pudong",
            "box": None,
            "kind": "box-lost",
            "starts_at": 1_700_000_000.0,
            "ends_at": 1_700_003_600.0,
            "planned_ends_at": 1_700_003_600.0,
            "created_by": "li.wei",
            "comment": "power work",
            "ended_by": None,
        }
    ],
    "alert_outbox": [
        {
            "position": 1,
            "message_id": "m-1",
            "channel_kind": "webhook",
            "channel_name": "ops",
            "groups": "sh-pudong",
            "alerts": 1,
            "listed": 1,
            "body": b'{"alerts":[]}',
            "created_at": 1_700_000_300.0,
            "state": "pending",
            "attempts": 2,
            "next_attempt_at": 1_700_000_330.0,
            "last_attempt_at": 1_700_000_310.0,
            "last_error": "HTTP 503",
            "delivered_at": None,
            "failed_at": None,
        }
    ],
    "alert_notifier_state": [{"id": 1, "version": 1, "sequence": 2**35, "state": b"\x00\x01binary"}],
    "rollout": [
        {
            "id": "r-1",
            "app": "scan-upload",
            "release_name": "scan-upload-1.14.0",
            "release_yaml": "app: scan-upload\nversion: 1.14.0\n",
            "spec": '{"release":"scan-upload-1.14.0"}',
            "status": '{"state":"done"}',
            "gates": "{}",
            "state": "done",
            "active": False,
            "created_at": 1_700_000_000.0,
            "created_by": "release.manager",
            "updated_at": 1_700_000_900.0,
            "idempotency_key": "k-1",
        }
    ],
    "rollout_site": [
        {
            "rollout_id": "r-1",
            "site": "sh-pudong",
            "previous_release": "scan-upload-1.13.1",
            "previous_yaml": "app: scan-upload\nversion: 1.13.1\n",
            "baseline": '{"fps":24.5}',
            "recorded_at": 1_700_000_050.0,
        }
    ],
    "site_hold": [{"site": "bj-daxing", "reason": "peak day", "held_by": "ops", "since": 1_700_000_000.0}],
    "rollout_audit": [
        {
            "id": 1,
            "rollout_id": "r-1",
            "at": 1_700_000_060.0,
            "who": "controller",
            "what": "applied scan-upload-1.14.0 to sh-pudong",
            "before": "scan-upload-1.13.1",
            "after": "scan-upload-1.14.0",
        }
    ],
}


# Tables whose rows a migration moved elsewhere: where each row of ROWS is now.
MOVED: Final[dict[str, dict[str, Any]]] = {
    "rollout_audit": {
        "id": 1,
        "at": 1_700_000_060.0,
        "principal": "controller",
        "role": None,
        "action": "applied",
        "target_kind": "rollout",
        "target_id": "r-1",
        "site": None,
        "summary": "applied scan-upload-1.14.0 to sh-pudong",
        "before": '"scan-upload-1.13.1"',
        "after": '"scan-upload-1.14.0"',
        "source": None,
    }
}


def write_release_0_1_0(url: str) -> Store:
    """The database as 0.1.0 left it: its own DDL, then a row in every table."""
    store = Store(url)
    lines = (HERE / f"schema-0.1.0.{store.dialect}.sql").read_text().splitlines()
    ddl = "\n".join(line for line in lines if not line.startswith("--"))
    statements = [s.strip() for s in ddl.split(";") if s.strip()]
    with store.transaction("write the 0.1.0 schema") as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
        for table, rows in ROWS.items():
            columns = list(rows[0])
            insert = sa.text(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
            ).bindparams(*(sa.bindparam(c, type_=sa.LargeBinary) for c in columns if isinstance(rows[0][c], bytes)))
            connection.execute(insert, rows)
    return store


def test_release_0_1_0_schema_is_what_every_table_of_today_started_from(database_url: str) -> None:
    """Guards the fixture: ROWS covers every table of 0.1.0, and 0.1.0 had every table the baseline knows."""
    store = write_release_0_1_0(database_url)
    try:
        assert set(sa.inspect(store.engine).get_table_names()) == set(ROWS)
        assert current_revision(store) is None
    finally:
        store.close()


def test_migrate_upgrades_a_database_of_0_1_0_and_every_row_is_still_there(database_url: str) -> None:
    write_release_0_1_0(database_url).close()

    done = edgefleet("cloud", "migrate", "--database", database_url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"from none to {head_revision()}" in done.stdout
    store = Store(database_url)
    try:
        assert current_revision(store) == head_revision()
        with store.transaction("read every table") as connection:
            for table, rows in ROWS.items():
                if table in MOVED:
                    continue
                found = [dict(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}")).mappings()]
                # SQLite gives booleans back as 0/1, which compare equal to False/True.
                assert found == rows, table
            # The rollout audit's rows moved into the one audit log (revision 0004), and its table is gone.
            moved = [dict(row) for row in connection.execute(sa.text("SELECT * FROM audit_log")).mappings()]
            assert moved == [MOVED["rollout_audit"]]
            assert "rollout_audit" not in sa.inspect(connection).get_table_names()
        # Today's code reads the old rows through its own stores.
        boxes, unknown = store.load()
        assert [(b.box, b.site, b.seq, b.last_seen) for b in boxes] == [
            ("sh-pudong-01", "sh-pudong", 2**40, 1_700_000_500.0)
        ]
        assert [(u.box, u.messages) for u in unknown] == [("stray-9", 2**33)]
        assert [p.at for p in store.history(BoxId("sh-pudong-01"))] == [1_699_999_800.0, 1_700_000_500.0]
        alert = AlertStore(store).get("0123456789abcdef-1700000300")
        assert alert is not None
        assert (alert.state, alert.acknowledged_by, alert.labels) == ("acknowledged", "li.wei", {"team": "ops"})
        silence = AlertStore(store).get_silence("s-1")
        assert silence is not None
        rollouts = RolloutStore(store)
        assert rollouts.previous("r-1")[SiteId("sh-pudong")].baseline == {"fps": 24.5}
        assert set(rollouts.holds()) == {"bj-daxing"}
        assert [a.what for a in rollouts.audit("r-1")] == ["applied scan-upload-1.14.0 to sh-pudong"]
        # A second run finds nothing to do.
        assert upgrade_schema(store).changed is False
    finally:
        store.close()
