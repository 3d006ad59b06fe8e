"""The rollout store on SQLite and PostgreSQL: a rollout round-trips (spec, status and gates as msgspec JSON);
the database itself keeps one active rollout per app and one rollout per idempotency key; a site's previous
release is recorded once; status and audit are written together; holds carry who, why and since."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from edgefleet.cloud.k8s.rollout import RolloutStatus as WorkloadRollout
from edgefleet.cloud.rollouts.deciding import Commands, SiteStatus, initial_status
from edgefleet.cloud.rollouts.gates import BoxApp, GateCriteria, SiteHealth, Workload, evaluate_site
from edgefleet.cloud.rollouts.store import (
    ActiveRolloutExists,
    AuditEntry,
    Hold,
    PreviousRelease,
    RolloutNotFound,
    RolloutStore,
    StoredRollout,
)
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId
from tests.rollouts.observations import spec

SITE = SiteId("a")


@pytest.fixture
def rollouts(database_url: str) -> Iterator[RolloutStore]:
    store = Store(database_url)
    store.create_schema()
    built = RolloutStore(store)
    built.create_schema()
    built.create_schema()  # twice: existing tables are left as they are
    yield built
    store.close()


def _rollout(
    rollout_id: str, *, app: str = "sorting-recognition", key: str | None = None, at: float = 1.0
) -> StoredRollout:
    rollout_spec = replace(spec(["a", "b"], ["c"]), app=app)
    return StoredRollout(
        id=rollout_id,
        app=app,
        release_name=rollout_spec.release,
        release_yaml="kind: Release\n",
        spec=rollout_spec,
        status=initial_status(rollout_spec),
        gates={},
        active=True,
        created_at=at,
        created_by="tester",
        updated_at=at,
        idempotency_key=key,
    )


def _started(rollout_id: str) -> AuditEntry:
    return AuditEntry(1.0, "tester", "start", None, "x", rollout_id)


def test_a_rollout_round_trips_with_its_status_and_gates(rollouts: RolloutStore) -> None:
    rollout, created = rollouts.create(_rollout("r-1"), _started("r-1"))
    assert created
    gates = evaluate_site(
        GateCriteria(app="sorting-recognition", version="3.6.0", release="r"),
        workloads=(Workload("w", "r", WorkloadRollout("waiting", "rolling")),),
        boxes=(BoxApp(BoxId("a-gpu"), online=True, version="3.5.0", state="running", running_since=1.0),),
        alerts=(),
        health=SiteHealth(current={}, baseline=None),
        started_at=1.0,
        now=2.0,
    )
    status = replace(
        rollout.status,
        sites={**rollout.status.sites, SITE: SiteStatus(state="in-progress", applied=True, started_at=2.0)},
    )
    audit = [AuditEntry(2.0, "reconciler", "apply r at a", None, "r", "r-1")]
    rollouts.save_status("r-1", status, {SITE: gates}, now=2.0, audit=audit)

    stored = rollouts.get("r-1")
    assert stored.status == status
    assert stored.gates == {SITE: gates}
    assert stored.spec == rollout.spec
    assert [e.what for e in rollouts.audit("r-1")] == ["start", "apply r at a"]
    with pytest.raises(RolloutNotFound, match="no rollout 'r-2'"):
        rollouts.get("r-2")


def test_one_active_rollout_per_app_and_one_per_idempotency_key(rollouts: RolloutStore) -> None:
    first, _ = rollouts.create(_rollout("r-1", key="k"), _started("r-1"))
    again, created = rollouts.create(_rollout("r-9", key="k"), _started("r-9"))
    assert (again.id, created) == ("r-1", False)
    with pytest.raises(ActiveRolloutExists, match=r"rollout r-1 of sorting-recognition-3\.6\.0 is active"):
        rollouts.create(_rollout("r-2"), _started("r-2"))
    # Another app is no conflict; an ended rollout is not active.
    assert rollouts.create(_rollout("r-3", app="scan-upload"), _started("r-3"))[1]
    rollouts.save_status("r-1", replace(first.status, state="done"), {}, now=3.0)
    assert rollouts.create(_rollout("r-2", at=4.0), _started("r-2"))[1]
    assert [r.id for r in rollouts.active()] == ["r-3", "r-2"]
    assert [r.id for r in rollouts.page(limit=2)] == ["r-2", "r-3"]
    assert [r.id for r in rollouts.page(after=(1.0, "r-3"))] == ["r-1"]
    # A rollback of the ended one cannot make two active rollouts of the app.
    with pytest.raises(ActiveRolloutExists, match="r-2"):
        rollouts.set_commands("r-1", Commands(rolled_back=True), activate=True, audit=_started("r-1"))


def test_a_sites_previous_release_is_recorded_once(rollouts: RolloutStore) -> None:
    rollouts.create(_rollout("r-1"), _started("r-1"))
    first = rollouts.record_previous("r-1", PreviousRelease(SITE, "old", "yaml of old"), now=1.0)
    again = rollouts.record_previous("r-1", PreviousRelease(SITE, "r", None), now=2.0)
    assert first == again == PreviousRelease(SITE, "old", "yaml of old")
    assert rollouts.release_yaml("sorting-recognition-3.6.0") == "kind: Release\n"
    assert rollouts.release_yaml("never") is None


def test_holds_keep_who_why_and_since(rollouts: RolloutStore) -> None:
    rollouts.hold(Hold(SITE, "maintenance", "staff", 5.0))
    rollouts.hold(Hold(SITE, "peak day", "someone else", 6.0))
    assert rollouts.holds() == {SITE: Hold(SITE, "peak day", "staff", 5.0)}
    assert rollouts.release_hold(SITE, by="staff", now=7.0) == Hold(SITE, "peak day", "staff", 5.0)
    assert rollouts.release_hold(SITE, by="staff", now=8.0) is None
    assert [(e.what, e.before, e.after) for e in rollouts.audit()] == [
        ("hold site a", None, "maintenance"),
        ("hold site a", None, "peak day"),
        ("release site a", "peak day", None),
    ]
