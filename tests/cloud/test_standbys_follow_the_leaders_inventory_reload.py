"""Standbys follow the leader's inventory reload (edgefleet.cloud.following): two ``edgefleet cloud serve``
replicas on one PostgreSQL database, each with a sites directory of its own (as each pod mounts its own copy of a
ConfigMap). The leader is reloaded through the API; nobody reaches the standby. While the standby's files are old it
keeps its inventory and says why; once its files hold the new version it takes it by itself. The reload is audited
once, by the leader; a takeover keeps the new inventory. The pure rule first, on every database. The PostgreSQL
part runs when EDGEFLEET_TEST_DATABASE_URL is set."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from edgefleet.cloud.access.audit_log import Actor, AuditLog, AuditRecord, Target, inventory_reloaded
from edgefleet.cloud.fleet import InventoryChange
from edgefleet.cloud.following import FOLLOW_EVERY_S, to_follow
from edgefleet.cloud.store import Store
from tests.cloud.api.memory import write_inventory
from tests.cloud.builders import T0
from tests.faults.test_the_leader_is_killed import TAKEOVER_BOUND_S, Replica, leader_of
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, wait_for

# Generous next to a follow pass every FOLLOW_EVERY_S on a loaded machine.
FOLLOW_BOUND_S = 12 * FOLLOW_EVERY_S
OLD_LAST_BOX = "    - {name: bj-daxing-edge-01, role: edge-node}\n"
NEW_BOX = (
    '    - {name: bj-daxing-gpu-02, role: gpu-box, gpu: {model: NVIDIA T4, count: 1, driverVersion: "535.183.01"}}\n'
)


@pytest.mark.parametrize(
    ("recorded", "in_force", "leading", "takes"),
    [
        ("v2", "v1", False, "v2"),  # a standby behind the leader's reload
        ("v2", "v2", False, None),  # already there
        (None, "v1", False, None),  # nobody has reloaded on this database
        ("v2", "v1", True, None),  # the leader's own reloads are what is recorded: it follows nobody
    ],
)
def test_a_standby_follows_the_newest_recorded_reload_when_it_runs_another(
    recorded: str | None, in_force: str, leading: bool, takes: str | None
) -> None:
    assert to_follow(recorded=recorded, in_force=in_force, leading=leading) == takes


def test_the_newest_recorded_reload_is_what_is_followed(database_url: str) -> None:
    store = Store(database_url)
    audit = AuditLog(store)
    try:
        audit.create_schema()
        assert audit.last_inventory_version() is None, "nobody has reloaded: nothing to follow"
        operator = Actor("ops", "ops", None)
        for before, after in (("a1", "b2"), ("b2", "c3")):
            audit.record(inventory_reloaded(T0, operator, InventoryChange(after, before), sites=1, boxes=1))
        audit.record(AuditRecord(T0, operator, "acknowledge-alert", Target("alert", "1"), "acknowledge alert 1"))
        assert audit.last_inventory_version() == "c3"
    finally:
        store.close()


def add_a_box(sites: Path) -> None:
    manifest = sites / "bj-daxing.yaml"
    text = manifest.read_text()
    assert OLD_LAST_BOX in text
    manifest.write_text(text.replace(OLD_LAST_BOX, OLD_LAST_BOX + NEW_BOX))


def version_of(replica: Replica) -> str | None:
    health = replica.health()
    return None if health is None else str(health["inventory_version"])


@pytest.mark.slow
@pytest.mark.postgres
def test_the_standby_takes_the_leaders_reload_once_its_own_files_hold_it(
    postgres_url: str, tmp_path: Path, broker: Mosquitto
) -> None:
    with ExitStack() as stack:
        started = []
        for name in ("first", "second"):
            sites = write_inventory(tmp_path / f"sites-{name}")
            replica = Replica(name, broker=broker, sites=sites, database=postgres_url, directory=tmp_path)
            stack.callback(replica.stop)
            wait_for(replica.health, timeout=60, what=f"{name} to answer /healthz")
            replica.client.headers.update(bearer(mint_at(postgres_url, name=f"ops-{name}")))
            started.append(replica)
        leader, standby = leader_of(*started)
        old = version_of(leader)
        assert old is not None
        assert version_of(standby) == old
        boxes_before = (leader.health() or {})["boxes_total"]

        # The ConfigMap's update reached the leader's pod first; the operator reloads through the leader.
        add_a_box(tmp_path / f"sites-{leader.name}")
        reloaded = leader.client.post("/api/v1/inventory/reload", json={})
        assert reloaded.status_code == 200, reloaded.text
        new = reloaded.json()["version"]
        assert new != old
        assert reloaded.json()["boxes_added"] == ["bj-daxing-gpu-02"]

        # The standby's files are still the old ones: it keeps its inventory and says why, once.
        wait_for(
            lambda: "Cannot follow the leader's inventory yet" in standby.log.read_text(errors="replace"),
            timeout=FOLLOW_BOUND_S,
            what="the standby to say it cannot follow yet",
        )
        assert version_of(standby) == old

        # Its files arrive; nobody reaches it, and it follows.
        add_a_box(tmp_path / f"sites-{standby.name}")
        wait_for(lambda: version_of(standby) == new, timeout=FOLLOW_BOUND_S, what="the standby to follow")
        assert (standby.health() or {})["boxes_total"] == boxes_before + 1
        assert standby.log.read_text(errors="replace").count("Cannot follow the leader's inventory yet") == 1

        # Audited once, by the leader.
        audit = leader.client.get("/api/v1/audit", params={"limit": 100})
        assert audit.status_code == 200, audit.text
        reloads = [e for e in audit.json() if e["action"] == "reload-inventory"]
        assert len(reloads) == 1, reloads

        # A takeover keeps the new inventory.
        leader.process.kill()
        wait_for(lambda: standby.role() == "leader", timeout=TAKEOVER_BOUND_S, what="the takeover")
        assert version_of(standby) == new
