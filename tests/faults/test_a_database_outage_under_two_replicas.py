"""Fault: the 30 s database outage of ``test_a_30_s_database_outage`` (the same fleet and cut, from
``tests.faults.database_outage``) under TWO ``edgefleet cloud serve`` replicas of one PostgreSQL database, with a
webhook receiver for notifications. One box is stopped before the outage: its box-lost is told once, by the leader
of the time.

Both replicas are cut off: the leader cannot renew its lease and steps down, the standby cannot take it; once the
database answers, the first to reach it leads. Which one that is, is a race; the test decides it, so that both
cases are run: ``the-old-leader`` / ``the-old-standby`` names the replica that must win, and the other is frozen
(SIGSTOP) for the outage's last second and resumed (SIGCONT) once the winner leads.

What should happen, and is checked (docs/reliability.md, "A database outage under two replicas"):

- Both replicas serve reads throughout: every beating box online at each check, /healthz answering 200 or 503.
- Neither writes while cut off: from 10 s in (past the lease) both say they stand by and refuse a write 503.
- After it exactly one leads, at the next epoch (one takeover, no handing round), and the other names it.
- Nothing heard during the outage is lost, whichever replica leads: every point EITHER replica holds from the
  outage has its heartbeat's sample in the database, and no heartbeat is saved twice (a takeover saves what the
  old leader had not saved, not the new leader's whole memory again).
- No alert or notification told twice, no box-lost for a box that beat throughout (no storm after the outage):
  the stopped box's box-lost reached the webhook once, and every message id is answered once.
- Each replica's log says what was wrong a bounded number of times.

PostgreSQL only (EDGEFLEET_TEST_DATABASE_URL). Judges no real time (generous bounds; the winner is chosen by
freezing the loser until the winner leads, not by a race), so it runs beside other tests."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId
from tests.alerting.wiring.fleets import WEBHOOK_PATH, write_notifications
from tests.faults.database_outage import (
    OUTAGE_S,
    check_log_bounded,
    database_server,
    held,
    log_length,
    online,
    run_outage,
    saved_during,
    seqs,
    site_boxes,
    start_fleet,
    wait_until_saved,
)
from tests.faults.test_notifications_survive_a_killed_leader import lost_alerts, message_ids
from tests.faults.test_the_leader_is_killed import TAKEOVER_BOUND_S, Replica, leader_of
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, postgres_database, wait_for
from tests.support.receivers import recording_receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ALL_BOXES = site_boxes(4)
STOPPED = ALL_BOXES[-1]
BEATING = ALL_BOXES[:-1]
# From here into the outage both leases have run out (6 s, edgefleet.cloud.leading.LEASE_S) on a loaded machine.
FENCED_FROM_S = 10.0
# The loser is frozen this long before the database answers again, so the winner is the first to reach it.
FREEZE_BEFORE_END_S = 1.5
# Heartbeats come a second apart: a held point with a saved sample this close is that heartbeat saved (the
# replicas' receive times differ by ms).
SAME_HEARTBEAT_S = 0.25
# The replicas receive one heartbeat within milliseconds of each other, and two heartbeats of a box come at least
# ~0.1 s apart even when a loaded simulator bunches them: a window edge this far outside a held point is between
# heartbeats for both replicas.
EDGE_S = 0.05


@pytest.fixture
def server_url() -> str:
    return database_server()


@pytest.fixture
def postgres_url(server_url: str) -> Iterator[str]:
    with postgres_database(server_url) as url:
        yield url


@pytest.mark.parametrize("winner", ["the-old-leader", "the-old-standby"])
def test_both_stand_by_through_the_outage_and_whichever_leads_after_saves_what_the_fleet_said(
    winner: str, server_url: str, postgres_url: str, tmp_path: Path, broker: Mosquitto
) -> None:
    sites, sim = start_fleet(tmp_path / "sites", broker, boxes=len(ALL_BOXES))
    replicas: list[Replica] = []
    store = None
    try:
        with recording_receiver() as receiver:
            notifications = write_notifications(
                tmp_path / "notifications.yaml", webhook=receiver.url, alertmanager=None
            )
            for name in ("first", "second"):
                replica = Replica(
                    name,
                    broker=broker,
                    sites=sites,
                    database=postgres_url,
                    directory=tmp_path,
                    notifications=notifications,
                )
                replicas.append(replica)
                wait_for(replica.health, timeout=30, what=f"{name} to answer /healthz")
                replica.client.headers.update(bearer(mint_at(postgres_url, name=f"ops-{name}")))
            old_leader, old_standby = leader_of(*replicas)
            first = old_leader.health()
            assert first is not None
            first_epoch = first["leadership"]["epoch"]
            wait_for(
                lambda: all(online(r) == set(ALL_BOXES) for r in replicas), timeout=30, what="every box online on both"
            )
            stopped = httpx.post(f"{sim.url}/faults", json={"kind": "stop", "box": STOPPED}, timeout=10)
            assert stopped.status_code == 201, stopped.text
            wait_for(
                lambda: (STOPPED, "firing") in lost_alerts(receiver.received),
                timeout=30,
                what=f"{STOPPED}'s box-lost told before the outage",
            )
            # Both replicas judge the stopped box by its silence, each on its own: the standby's view can come a
            # moment after the leader's notice on a loaded machine. The outage starts once both show it offline.
            wait_for(
                lambda: all(online(r) == set(BEATING) for r in replicas),
                timeout=30,
                what=f"{STOPPED} offline on both replicas",
            )
            time.sleep(2)  # its delivery marked sent in the outbox
            logs_before = {r.name: log_length(r) for r in replicas}
            loser = old_standby if winner == "the-old-leader" else old_leader
            roles: dict[str, Counter[str]] = {r.name: Counter() for r in replicas}
            frozen = False

            def throughout(into_s: float) -> None:
                nonlocal frozen
                if into_s >= OUTAGE_S - FREEZE_BEFORE_END_S and not frozen:
                    loser.process.send_signal(signal.SIGSTOP)
                    frozen = True
                for replica in replicas:
                    if frozen and replica is loser:
                        continue
                    shown = online(replica)
                    assert shown == set(BEATING), f"{replica.name} at {into_s:.1f} s into the outage: online {shown}"
                    response = replica.client.get("/healthz")  # a transport error fails the test here
                    assert response.status_code in (200, 503), response.text
                    role = response.json()["leadership"]["role"]
                    roles[replica.name][role] += 1
                    if into_s >= FENCED_FROM_S:
                        assert role == "standby", f"{replica.name} still leads {into_s:.1f} s into the outage"
                        refused = replica.client.post("/api/v1/inventory/reload", json={})
                        assert refused.status_code == 503, refused.text

            outage = run_outage(server_url, postgres_url, throughout)
            print(f"\n{outage.describe()}; winner: {winner}")
            print(f"during: {outage.checks} checks, every beating box online on both; roles seen {roles}")
            the_winner = old_leader if loser is old_standby else old_standby
            wait_for(lambda: the_winner.role() == "leader", timeout=TAKEOVER_BOUND_S, what=f"{winner} to lead")
            led_after = time.time() - outage.ended
            loser.process.send_signal(signal.SIGCONT)
            leader, standby = leader_of(*replicas)
            assert leader is the_winner
            shown = [r.health() for r in replicas]
            epochs = {h["leadership"]["epoch"] for h in shown if h is not None}
            assert epochs == {first_epoch + 1}, f"one takeover after the outage: epochs {first_epoch} -> {epochs}"

            store = Store(postgres_url)
            heard = {r.name: seqs(r) for r in replicas}
            wait_until_saved(store, {box: max(h[box] for h in heard.values()) for box in BEATING})
            saved_after = time.time() - outage.ended
            during = saved_during(store, BEATING, outage)
            print(
                f"after: {leader.name} ({winner}) leads at epoch {first_epoch + 1} {led_after:.1f} s after the "
                f"outage, {standby.name} names it; saved state caught up {saved_after:.1f} s after; samples dated "
                f"in the outage saved per box: { {b: len(p) for b, p in during.items()} }"
            )
            for box in BEATING:
                for replica in replicas:
                    kept = held(replica, box, since=outage.started + 1, before=outage.ended - 1)
                    missing = [t for t in sorted(kept) if not any(abs(t - s) <= SAME_HEARTBEAT_S for s in during[box])]
                    assert not missing, f"{box}: {replica.name} heard {missing} in the outage; not saved"
                    assert len(kept) >= (OUTAGE_S - 2) * 0.5, f"{box}: {replica.name} holds only {len(kept)} points"
                # Each heartbeat saved once: from 5 s before the outage to its end, as many samples in the
                # database as the new leader heard heartbeats (each it holds is one accepted heartbeat). Counted,
                # not judged by spacing: a loaded simulator may send two beats 0.1 s apart.
                mine = sorted(held(leader, box, since=outage.started - 5, before=outage.ended - 1))
                lo, hi = mine[0] - EDGE_S, mine[-1] + EDGE_S
                saved = sorted(p.at for p in store.history(BoxId(box), since=lo, before=hi))
                assert len(saved) == len(mine), (
                    f"{box}: {len(saved)} samples saved for the {len(mine)} heartbeats {leader.name} heard from "
                    f"{lo - outage.started:.1f} s to {hi - outage.started:.1f} s into the outage; saved twice: "
                    f"{[round(a - outage.started, 3) for a, b in pairwise(saved) if b - a < EDGE_S]}"
                )

            time.sleep(5)  # anything told again after the outage would come within a delivery round or two
            requests = [r for r in receiver.received if r.path == WEBHOOK_PATH]
        delivered = Counter(message_ids(requests))
        told = Counter(lost_alerts(requests))
        print(f"webhook: {len(requests)} requests, box-lost notices {dict(told)}")
        assert all(count == 1 for count in delivered.values()), f"a message was delivered twice: {delivered}"
        assert told == Counter({(STOPPED, "firing"): 1}), f"box-lost told: {told}"
        for replica in replicas:
            check_log_bounded(replica, from_line=logs_before[replica.name])
        assert any("Stepped down as leader" in line for line in old_leader.log.read_text().splitlines())
    finally:
        if store is not None:
            store.close()
        for replica in replicas:
            replica.stop()
        sim.stop()
