"""Fault: the SQLite database unusable for 30 s, twice, under one running ``edgefleet cloud serve`` on its own
SQLite file (the embedded default), a real Mosquitto and three simulated boxes beating every second.

What is injected, one after the other in the same controller run:

1. **The file locked**: another process opens the database with Python's ``sqlite3`` and holds ``BEGIN
   EXCLUSIVE`` (in WAL mode, the write lock; readers go on) for 30 s, then rolls back. Every write of the
   controller waits its busy timeout (5 s) and fails with ``database is locked``.
2. **The disk full**: the controller's ``RLIMIT_FSIZE`` is set to 0 with ``prlimit`` (no root needed, same user)
   for 30 s, then set back. Every ``write()`` of the controller to a regular file fails with ``EFBIG`` (CPython
   ignores ``SIGXFSZ``), as on a full disk, while reads and the WAL index (shared memory) go on. SQLite reports
   a failed ``write()`` whose errno is not ``ENOSPC`` as ``SQLITE_IOERR_WRITE`` ("disk I/O error"), not
   ``SQLITE_FULL`` ("database or disk is full"): the same failure, told differently; the controller treats both
   alike (a write error it keeps retrying). A real ``ENOSPC`` needs a small filesystem of its own (root, or a user
   namespace CI may not allow). The controller's output reaches its log file through a pipe, which the limit does
   not touch.

What should happen, and is checked for each (docs/reliability.md, "A 30 s database outage"):

- The ingest keeps the live state: every box stays online in ``GET /api/v1/sites/{site}/boxes`` at every check
  and the sequences advance; the API reads keep answering 200, a read of the database (``GET
  /api/v1/silences``) too. A write (``POST /api/v1/silences``) is refused 503 ``unavailable`` quoting the
  database's error, never a 500, and taken once the database is back.
- ``/healthz`` answers, 200 or 503, never a connection error or a 500; it says "degraded" (the database answers
  reads but refuses writes) and names the database's error while the saves fail; ok again afterwards.
- The lone SQLite controller keeps its leadership (the lock file is the fence; nothing to renew).
- Nothing heard is lost: every health point the controller holds from the outage is in the database afterwards,
  and the saved sequences catch up.
- The log says what is wrong a bounded number of times, not once per heartbeat, flush or request.

No real-time threshold is judged (boxes beat every second and are lost after 10 missed beats; every wait is a
generous bound), so the test runs in the suite's parallel phase. Its wall time is 80-100 s (two 30 s outages,
the start and the catch-ups)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId
from simulator.running import SimulatorOptions, start_in_background
from tests.alerting.wiring.fleets import KEEPALIVE_S, write_sites
from tests.faults import database_outage
from tests.faults.test_the_leader_is_killed import Replica
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, wait_for

pytestmark = [pytest.mark.slow]

SITE = "outage-01"
BOXES = [f"{SITE}-edge-01", f"{SITE}-gpu-01", f"{SITE}-gpu-02"]
OUTAGE_S = 30.0
# Generous: the persister flushes every 2 s, a locked write waits 5 s first; the figures are printed.
CATCH_UP_BOUND_S = 60.0
# Lines an outage may leave in the log about the database, however long it lasts: the persister's failure and
# recovery, the health check's change and recovery, the skipped flushes (a locked write outlives the flush
# interval), the alert loop's, the trim's. One a heartbeat would be ~90 here, one a flush ~15.
MAX_DATABASE_LINES = 8

# Holds the write lock on the database until its stdin closes, then rolls back.
_HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
connection.close()
"""


@dataclass
class Outage:
    """What was seen through one outage."""

    name: str
    started: float = 0.0
    ended: float = 0.0
    checks: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    problems: set[str] = field(default_factory=set)
    # The answer to a write sent while the saves fail.
    refused_write: tuple[int, dict[str, Any]] | None = None


class WriteLock:
    """Another process holding ``BEGIN EXCLUSIVE`` on the database: the file locked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLD_THE_WRITE_LOCK, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    def stop(self) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        assert self.process.wait(30) == 0
        self.process.stdout.close()


class FullDisk:
    """The controller may write no byte more to any file (``RLIMIT_FSIZE`` 0): the disk full, for it alone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before: tuple[int, int] | None = None

    def start(self) -> None:
        soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        self.before = (soft, hard)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (0, hard))

    def stop(self) -> None:
        assert self.before is not None
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.before)


def test_a_locked_file_and_a_full_disk_keep_live_state_degrade_and_catch_up_with_nothing_lost(
    tmp_path: Path, broker: Mosquitto
) -> None:
    sites = write_sites(tmp_path / "sites", {SITE: len(BOXES)})
    manifest = sites / f"{SITE}.yaml"
    # Beating every second, lost after 10 missed beats: no loaded machine makes a box look lost here, so the
    # test judges no real time; a controller whose ingest waited on the database would still lose them.
    text = manifest.read_text().replace("intervalSeconds: 0.5", "intervalSeconds: 1")
    manifest.write_text(text.replace("missedBeats: 3", "missedBeats: 10"))
    assert "intervalSeconds: 1," in manifest.read_text()
    assert "missedBeats: 10" in manifest.read_text()
    path = tmp_path / "edgefleet.db"
    url = f"sqlite:///{path}"
    sim = start_in_background(
        SimulatorOptions(sites_dir=sites, broker_url=broker.url, listen="127.0.0.1:0", keepalive_s=KEEPALIVE_S, seed=19)
    )
    replica = Replica("controller", broker=broker, sites=sites, database=url, directory=tmp_path, through_pipe=True)
    store = None
    try:
        wait_for(replica.health, timeout=30, what="the controller to answer /healthz")
        replica.client.headers.update(bearer(mint_at(url, name="ops")))
        wait_for(lambda: database_outage.online(replica) == set(BOXES), timeout=30, what="every box online")
        wait_for(lambda: _healthy(replica), timeout=30, what="/healthz ok")
        store = Store(url)
        faults: list[tuple[str, WriteLock | FullDisk, str]] = [
            ("locked", WriteLock(path), "database is locked"),
            # SQLITE_IOERR_WRITE: EFBIG is no ENOSPC to SQLite (module docstring).
            ("disk full", FullDisk(replica.process.pid), "disk I/O error"),
        ]
        for name, fault, said in faults:
            log_before = len(replica.log.read_text().splitlines())
            outage = _through(replica, name, fault.start, fault.stop, said=said)
            _caught_up(replica, store, outage)
            lines = database_outage.database_lines("\n".join(replica.log.read_text().splitlines()[log_before:]))
            print(f"log: {len(lines)} warning lines about the database for the {name} outage:")
            for line in lines:
                print(f"  {line[:240]}")
            assert len(lines) <= MAX_DATABASE_LINES
            # Each thing that is wrong is said once, never per try.
            repeated = {m: n for m, n in Counter(database_outage.message(line) for line in lines).items() if n > 1}
            assert not repeated, f"said again and again: {repeated}"
            assert any("Failed to save fleet state" in line for line in lines)
    finally:
        if store is not None:
            store.close()
        replica.stop()
        sim.stop()
    tail = replica.log.read_text()
    assert "Traceback" not in tail, tail[-5000:]


def _healthy(replica: Replica) -> dict[str, Any] | None:
    health = replica.health()
    if health is None or health["status"] != "ok":
        return None
    return health


def _through(replica: Replica, name: str, start: Callable[[], None], stop: Callable[[], None], *, said: str) -> Outage:
    """Inject the fault for OUTAGE_S, checking the API every 0.5 s meanwhile; ``said``: the database's error
    that /healthz must quote while degraded."""
    outage = Outage(name)
    seqs_before = database_outage.seqs(replica)
    outage.started = time.time()
    start()
    try:
        while time.time() - outage.started < OUTAGE_S:
            online = database_outage.online(replica)
            at = time.time() - outage.started
            assert online == set(BOXES), f"{name}, {at:.1f} s in: online {online}"
            response = replica.client.get("/healthz")  # a transport error fails the test here
            assert response.status_code in (200, 503), response.text
            body: dict[str, Any] = response.json()
            outage.statuses[response.status_code] += 1
            outage.answers[body["status"]] += 1
            # The lock file is the fence: the lone SQLite controller has no lease to lose.
            assert (body["leadership"]["role"], body["leadership"]["epoch"]) == ("leader", 1), body
            if body["status"] != "ok":
                assert any("database" in p and said in p for p in body["problems"]), body
                outage.problems.update(body["problems"])
                if outage.refused_write is None:
                    outage.refused_write = _add_silence(replica, name)
            # A read the database answers (silences are not held in memory): reads go on in both faults.
            listed = replica.client.get("/api/v1/silences")
            assert listed.status_code == 200, listed.text
            outage.checks += 1
            time.sleep(0.5)
    finally:
        stop()
    outage.ended = time.time()
    seqs_after = database_outage.seqs(replica)
    print(
        f"\n{name}: {outage.ended - outage.started:.1f} s; {outage.checks} checks, every box online at each; "
        f"/healthz statuses {dict(outage.statuses)}, answers {dict(outage.answers)}"
    )
    for problem in sorted(outage.problems):
        print(f"  problem: {problem[:300]}")
    assert all(seqs_after[box] > seqs_before[box] for box in BOXES), (seqs_before, seqs_after)
    # A write refused with 503 saying what is wrong, never a 500; the same write taken once the database is back.
    assert outage.refused_write is not None
    print(f"  a write during it: {outage.refused_write[0]} {str(outage.refused_write[1])[:300]}")
    code, answer = outage.refused_write
    error = answer["error"]
    assert code == 503, answer
    assert error["code"] == "unavailable", error
    assert said in error["message"], error
    wait_for(lambda: _add_silence(replica, name)[0] == 201, timeout=CATCH_UP_BOUND_S, what="a write taken again")
    assert outage.answers["degraded"] + outage.answers["unavailable"] > 0, "the outage never showed in /healthz"
    return outage


def _add_silence(replica: Replica, outage: str) -> tuple[int, dict[str, Any]]:
    """POST a silence (a write the API makes in the database at once); its status and body. A locked write
    waits the busy timeout (5 s): the client waits longer than its default."""
    response = replica.client.post(
        "/api/v1/silences", json={"site": SITE, "duration": "1h", "comment": f"during the {outage} outage"}, timeout=30
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def _caught_up(replica: Replica, store: Store, outage: Outage) -> None:
    seqs_at_end = database_outage.seqs(replica)
    wait_for(lambda: _healthy(replica), timeout=CATCH_UP_BOUND_S, interval=0.2, what="/healthz ok again")
    healthy_after = time.time() - outage.ended

    def saved() -> bool:
        boxes = {b.box: b.seq or 0 for b in store.load()[0]}
        return all(boxes.get(BoxId(box), 0) >= seqs_at_end[box] for box in BOXES)

    wait_for(saved, timeout=CATCH_UP_BOUND_S, interval=0.2, what="the saved state to catch up")
    saved_after = time.time() - outage.ended
    since, before = outage.started + 1, outage.ended - 1
    during = {box: store.history(BoxId(box), since=since, before=before) for box in BOXES}
    print(
        f"after: /healthz ok {healthy_after:.1f} s after the {outage.name} outage; saved state caught up "
        f"{saved_after:.1f} s after; samples dated in the outage saved per box: { {b: len(p) for b, p in during.items()} }"
    )
    for box, points in during.items():
        held = database_outage.held(replica, box, since=since, before=before)
        missing = [t for t in sorted(held) if not any(abs(t - p.at) <= 0.0015 for p in points)]
        assert not missing, f"{outage.name}, {box}: held {sorted(held)}, not saved {missing}, saved {points}"
        # ~28 s of 1 s heartbeats; a loaded machine and the simulator's pacing may thin them, not to a few.
        assert len(held) >= (OUTAGE_S - 2) * 0.5, f"{outage.name}, {box}: only {len(held)} points held"
