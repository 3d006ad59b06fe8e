"""The database keeps box state, a bounded health history and unknown boxes, on SQLite and PostgreSQL
(edgefleet.cloud.store); its errors name the database without the password."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from msgspec.structs import replace

from edgefleet.cloud.fleet import BoxLive, HealthHistory, HealthPoint, UnknownBox, apply_heartbeat, apply_status
from edgefleet.cloud.store import Store, StoreError
from edgefleet.errors import UnreachableError
from edgefleet.ids import BoxId
from edgefleet.messages import AppReport, AppState
from tests.cloud.builders import BOOT_A, BOX, BOX_2, SITE, T0, heartbeat, status
from tests.support.peers import free_port


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_schema()
    yield store
    store.close()


def live_box(box: BoxId = BOX, seq: int = 7) -> BoxLive:
    live = BoxLive(box, SITE)
    apply_heartbeat(live, heartbeat(seq, box=box), received_at=T0 + 70)
    apply_status(live, status("online", box=box, session=2, reason="connected"), received_at=T0 + 71)
    return live


def point(at: float, cpu: float | None = 10.0) -> HealthPoint:
    return HealthPoint(at, cpu, 50.0, 75.0, 70.0, None)


def saved(**values: object) -> BoxLive:
    """A box as it must load back, every field spelt out: a field added to BoxLive fails here until it is said
    whether the store keeps it. What the persister tracks in memory (``dirty``, ``unsaved_points``) loads as new,
    and ``history`` is read from the database apart from the box."""
    missing = {f.name for f in fields(BoxLive)} - values.keys()
    assert not missing, f"say what the store keeps of {sorted(missing)}"
    return BoxLive(**values)  # type: ignore[arg-type]


def expected_boxes() -> list[BoxLive]:
    """``live_box(BOX)`` and ``live_box(BOX_2, seq=3)`` written out by hand, not through the code under test."""
    common = {
        "site": SITE,
        "boot": BOOT_A,
        "boot_started_at": T0,  # the heartbeat's sent_at - uptime_s
        "first_seen": T0 + 70,
        "last_seen": T0 + 70,
        "status_state": "online",
        "status_reason": "connected",
        "status_session": 2,
        "status_at": T0 + 1,
        "history": HealthHistory(),
        "dirty": False,
        "status_boot": BOOT_A,
        "unsaved_points": 0,
        # The live-run bookkeeping is in memory only: a restarted controller follows runs afresh.
        "run_boot": None,
        "run_seq": 0,
        "run_since": None,
        "run_last": 0.0,
        "status_taken_at": None,
    }
    return [
        # Sent at T0 + 70 and received then: no skew.
        saved(box=BOX, seq=7, heartbeat=heartbeat(7, box=BOX), clock_skew_s=0.0, status_seq=7, **common),
        # Sent at T0 + 30 and received at T0 + 70: the box's clock is 40 s behind.
        saved(box=BOX_2, seq=3, heartbeat=heartbeat(3, box=BOX_2), clock_skew_s=-40.0, status_seq=3, **common),
    ]


def test_saved_state_loads_back_equal(store: Store) -> None:
    boxes = [live_box(BOX), live_box(BOX_2, seq=3)]
    unknown = [UnknownBox("stray-box-01", "sh-test", T0, T0 + 5, messages=3, dirty=True)]
    store.save(boxes, [(BOX, point(T0 + 70))], unknown)
    loaded, loaded_unknown = store.load()
    assert sorted(loaded, key=lambda b: b.box) == sorted(expected_boxes(), key=lambda b: b.box)
    assert loaded[0].heartbeat is not None
    assert loaded[0].heartbeat.gpu.gpus[1].temperature_c == 70.0
    assert loaded_unknown == [UnknownBox("stray-box-01", "sh-test", T0, T0 + 5, messages=3, dirty=False)]


def test_save_again_updates_in_place(store: Store) -> None:
    box = live_box(seq=7)
    store.save([box], [], [UnknownBox("stray-box-01", None, T0, T0)])
    apply_heartbeat(box, heartbeat(8), received_at=T0 + 80)
    apply_status(box, status("offline", session=2, reason="shut\x00down"), received_at=T0 + 81)
    store.save([box], [], [UnknownBox("stray-box-01", "sh-test", T0, T0 + 9, messages=2)])
    (loaded,), (unknown,) = store.load()
    assert (loaded.seq, loaded.last_seen, loaded.status_state) == (8, T0 + 80, "offline")
    # PostgreSQL text cannot hold NUL: it is replaced rather than failing every later flush.
    assert loaded.status_reason == "shut\ufffddown"
    assert (unknown.claimed_site, unknown.last_seen, unknown.messages) == ("sh-test", T0 + 9, 2)


def test_box_never_heard_from_round_trips(store: Store) -> None:
    store.save([BoxLive(BOX, SITE, dirty=True)], [], [])
    (loaded,), _ = store.load()
    assert loaded == BoxLive(BOX, SITE)


def test_huge_sequence_numbers_fit(store: Store) -> None:
    box = live_box(seq=2**63 - 1)
    store.save([box], [], [])
    (loaded,), _ = store.load()
    assert loaded.seq == 2**63 - 1


def test_history_reads_a_window_oldest_first(store: Store) -> None:
    samples = [(BOX, point(T0 + i)) for i in range(10)] + [(BOX_2, point(T0 + 100))]
    store.save([], samples, [])
    assert [p.at for p in store.history(BOX)] == [T0 + i for i in range(10)]
    assert [p.at for p in store.history(BOX, since=T0 + 7)] == [T0 + 7, T0 + 8, T0 + 9]
    assert [p.at for p in store.history(BOX, since=T0 + 2, before=T0 + 4)] == [T0 + 2, T0 + 3]
    assert [p.at for p in store.history(BOX, limit=2)] == [T0 + 8, T0 + 9]
    assert store.history(BOX)[0] == point(T0)


def test_trim_keeps_the_retention_window_and_the_newest_points_per_box(store: Store) -> None:
    store.save([], [(BOX, point(T0 + i)) for i in range(20)] + [(BOX_2, point(T0 + i)) for i in range(5)], [])
    deleted = store.trim_history(older_than=T0 + 2, boxes=[BOX], keep=5)
    assert deleted == 2 + 2 + 13  # two of each box by age, then BOX down to 5
    assert [p.at for p in store.history(BOX)] == [T0 + i for i in range(15, 20)]
    assert [p.at for p in store.history(BOX_2)] == [T0 + 2, T0 + 3, T0 + 4]
    assert store.trim_history(older_than=T0, boxes=[BOX, BOX_2], keep=5) == 0


def test_save_is_one_transaction(store: Store) -> None:
    good = live_box()
    broken = UnknownBox("stray-box-01", None, T0, T0)
    broken.first_seen = None  # type: ignore[assignment]  # the column is NOT NULL: the last statement fails
    with pytest.raises(StoreError, match="failed to save the fleet state"):
        store.save([good], [(BOX, point(T0))], [broken])
    assert store.load() == ([], [])
    assert store.history(BOX) == []


def test_check_passes_on_a_working_database(store: Store) -> None:
    store.check()


def test_unreachable_postgres_names_the_url_without_password() -> None:
    store = Store(f"postgresql://edgefleet:hunter2@127.0.0.1:{free_port()}/fleet")
    with pytest.raises(UnreachableError) as caught:
        store.create_schema()
    message = str(caught.value)
    assert "cannot reach the database at postgresql+psycopg://edgefleet:***@127.0.0.1:" in message
    assert "hunter2" not in message
    assert "check that PostgreSQL runs there" in message


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/missing-dir/fleet.db")
    with pytest.raises(UnreachableError, match="directory exists and is writable"):
        store.check()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root:hunter2@db/fleet", "'mysql' database is not supported"),
        ("::not a url::", "is no database URL"),
    ],
)
def test_bad_url_is_refused_clearly(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says) as caught:
        Store(url)
    assert "hunter2" not in str(caught.value)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/fleet.db")
    store.create_schema()
    store.close()
    with sqlite3.connect(tmp_path / "fleet.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_in_memory_sqlite_is_one_database_for_every_thread() -> None:
    store = Store("sqlite://")
    store.create_schema()
    store.save([live_box()], [], [])
    assert len(store.load()[0]) == 1


def test_app_figures_load_back_with_their_heartbeat(store: Store) -> None:
    """The health gate's baselines come from the figures the boxes last sent: a restarted controller has them."""
    sent = heartbeat(7)
    apps = AppReport(
        source="metaserver:http://127.0.0.1:10550",
        apps=[AppState(name="sorting-recognition", version="3.5.0", state="running", figures={"fps": 26.5})],
    )
    box = BoxLive(BOX, SITE)
    apply_heartbeat(box, replace(sent, apps=apps), received_at=T0 + 70)
    store.save([box], [], [])
    (loaded,), _ = store.load()
    assert loaded.heartbeat is not None
    assert loaded.heartbeat.apps == apps
