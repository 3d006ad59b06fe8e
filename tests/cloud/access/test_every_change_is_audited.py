"""Every state-changing route of the API writes the audit log: its principal and role, the request's source, the
action, the target (and its site), and the state before and after. The routes are read from the app itself: a
new POST, PUT, PATCH or DELETE route without a case here fails ``test_every_state_changing_route_has_a_case``
(planted below, and refused). A refused request writes nothing. Over a small world: a simulated cluster, the
rollouts on SQLite, a real alert loop, an in-memory controller serving the API over uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edgefleet.cloud.access.audit_log import AuditLog, AuditRecord
from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.alerting.alerts import AlertKind
from edgefleet.cloud.alerting.commands import AlertCommands
from edgefleet.cloud.alerting.looping import AlertLoop
from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.ids import SiteId
from tests.cli.test_alerts_show_what_needs_a_person import stored
from tests.cloud.api.memory import MemoryController
from tests.cloud.api.serving import serving
from tests.rollouts.world import CLUSTER, SITES, World, release, small_world
from tests.support.peers import wait_for

CALLER = Principal(name="li.wei", role="admin")
AGENT = "audit-test/1.0"
SOURCE = f"127.0.0.1 {AGENT}"
# A release whose second wave waits for a promotion, so that 'promote' has something to do.
APPROVAL = "    approvalBefore: [1]\n"

# POST routes that change nothing: planning a rollout only reads the fleet.
READS: dict[tuple[str, str], str] = {("POST", "/api/v1/rollouts/plan"): "a plan is computed, nothing is stored"}
# Audited routes whose entry is checked where what they need runs: a box redeeming its enrollment token needs a
# broker and a CA (tests/broker/test_a_box_enrolls_with_a_single_use_token.py reads its entry).
ELSEWHERE: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/enroll"): "tests/broker/test_a_box_enrolls_with_a_single_use_token.py"
}


@dataclass
class Served:
    world: World
    memory: MemoryController
    loop: AlertLoop
    client: httpx.Client
    audit: AuditLog
    app: FastAPI

    def last_id(self) -> int:
        newest = self.audit.page(limit=1)
        return newest[0].id or 0 if newest else 0

    def written_after(self, last: int) -> list[AuditRecord]:
        return list(reversed([r for r in self.audit.page(limit=1000) if (r.id or 0) > last]))

    def rollout(self, text: str | None = None) -> str:
        """A rollout of scan-upload, started through the service (audited as 'setup', before the request)."""
        started, _ = self.world.service.start(text or release("1.0.0", strategy=APPROVAL), by="setup")
        return started.id


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with small_world(tmp_path) as world:
        tokens = EnrollmentTokens(world.store)
        tokens.create_schema()
        # Enrollment tokens can be made without a broker; redeeming one is audited in tests/broker/.
        enrollment = Enrollment.from_dirs(
            tokens, broker_dir=None, pki_dir=None, inventory=lambda: world.inventory, clock=world.clock
        )
        app = world.app(enrollment=enrollment)
        memory = world.controller
        assert memory is not None
        alerts_store = Store(f"sqlite:///{tmp_path / 'alerts.db'}")
        upgrade_schema(alerts_store)
        loop = AlertLoop(memory.state, alerts_store, clock=memory.clock, config=None)
        memory.alerting = AlertCommands(loop)
        memory.gateway = world.gateway.inner
        memory.restarts = Restarts(world.gateway.inner, clock=world.clock, audit=world.rollouts.record, poll_s=0.1)
        memory.sites_dir = tmp_path / "sites"
        app.dependency_overrides[require_access] = lambda: CALLER
        try:
            with serving(app) as url, httpx.Client(base_url=url, timeout=20, headers={"User-Agent": AGENT}) as client:
                yield Served(world, memory, loop, client, memory.audit_log, app)
        finally:
            alerts_store.close()


@dataclass
class Case:
    """One state-changing request: ``prepare`` sets the world up and answers (path, body); the entry it must write."""

    prepare: Callable[[Served], tuple[str, dict[str, Any] | None]]
    action: str
    target_kind: str
    site: SiteId | None
    # Checks of the entry's before and after (each given the value).
    before: Callable[[Any], bool] = lambda value: True
    after: Callable[[Any], bool] = lambda value: True
    status: tuple[int, ...] = (200, 201, 202)
    extra: dict[str, Any] = field(default_factory=dict)


def _alert(s: Served) -> tuple[str, None]:
    alert = stored(AlertKind.BOX_LOST, "site-a-gpu-01", at=s.world.clock.now(), site="site-a")
    s.loop.alerts.save([alert])
    return f"/api/v1/alerts/{alert.id}/ack", None


def _silence(s: Served) -> tuple[str, None]:
    assert s.memory.alerting is not None
    record = s.memory.alerting.add_silence(
        created_by="setup", comment="maintenance", site=SiteId("site-b"), duration_s=3600
    )
    return f"/api/v1/silences/{record.silence.id}", None


def _command(name: str) -> Callable[[Served], tuple[str, dict[str, Any] | None]]:
    def prepare(s: Served) -> tuple[str, dict[str, Any] | None]:
        return f"/api/v1/rollouts/{s.rollout()}/{name}", None

    return prepare


def _restart(s: Served) -> tuple[str, dict[str, Any]]:
    s.world.seed_unlabelled(SITES[3], "0.9.0")
    dry = s.client.post(f"/api/v1/clusters/{CLUSTER}/restart", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    return f"/api/v1/clusters/{CLUSTER}/restart", {"expect": len(dry.json()["deployments"])}


def _held(s: Served) -> tuple[str, None]:
    s.world.service.hold(SITES[2], reason="peak day", by="setup")
    return f"/api/v1/sites/{SITES[2]}/hold", None


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/api/v1/alerts/{alert}/ack"): Case(
        lambda s: (_alert(s)[0], None),
        "acknowledge-alert",
        "alert",
        SiteId("site-a"),
        before=lambda v: v == {"state": "firing"},
        after=lambda v: v == {"state": "acknowledged", "acknowledged_by": "li.wei"},
    ),
    ("POST", "/api/v1/silences"): Case(
        lambda s: ("/api/v1/silences", {"site": "site-b", "duration": "1h", "comment": "fix"}),
        "add-silence",
        "silence",
        SiteId("site-b"),
        before=lambda v: v is None,
        after=lambda v: v["site"] == "site-b" and v["comment"] == "fix" and v["created_by"] == "li.wei",
    ),
    ("DELETE", "/api/v1/silences/{silence}"): Case(
        _silence,
        "end-silence",
        "silence",
        SiteId("site-b"),
        before=lambda v: "ended_by" not in v,
        after=lambda v: v["ends_at"] < 1e12,
    ),
    ("POST", "/api/v1/inventory/reload"): Case(
        lambda s: ("/api/v1/inventory/reload", None),
        "reload-inventory",
        "inventory",
        None,
        before=lambda v: set(v) == {"version"},
        after=lambda v: v["sites"] == len(SITES),
    ),
    ("POST", "/api/v1/clusters/{cluster}/restart"): Case(
        _restart, "restart-cluster", "cluster", None, before=lambda v: v is None
    ),
    ("POST", "/api/v1/rollouts"): Case(
        lambda s: ("/api/v1/rollouts", {"release": release("1.0.0")}),
        "start-rollout",
        "rollout",
        None,
        before=lambda v: v is None,
        after=lambda v: v == "scan-upload-1.0.0",
    ),
    **{
        ("POST", f"/api/v1/rollouts/{{rollout_id}}/{name}"): Case(
            _command(name),
            f"{name}-rollout",
            "rollout",
            None,
            before=lambda v: v == "none",
            after=lambda v, name=name: v != "none" if name != "resume" else v == "none",  # type: ignore[misc]
        )
        for name in ("pause", "resume", "promote", "abort", "rollback")
    },
    ("POST", "/api/v1/rollouts/{rollout_id}/override-blackout"): Case(
        lambda s: (f"/api/v1/rollouts/{s.rollout()}/override-blackout", {"reason": "INC-1: the printer"}),
        "override-blackout",
        "rollout",
        None,
        before=lambda v: v == "none",
        after=lambda v: v == "blackouts overridden: INC-1: the printer",
    ),
    ("POST", "/api/v1/sites/{site}/hold"): Case(
        lambda s: (f"/api/v1/sites/{SITES[1]}/hold", {"reason": "peak day"}),
        "hold-site",
        "site",
        SITES[1],
        before=lambda v: v is None,
        after=lambda v: v == "peak day",
    ),
    ("POST", "/api/v1/sites/{site}/enrollment-tokens"): Case(
        lambda s: (f"/api/v1/sites/{SITES[1]}/enrollment-tokens", {"expires_in": "1h"}),
        "create-enrollment-token",
        "enrollment-token",
        SITES[1],
        before=lambda v: v is None,
        after=lambda v: set(v) == {"id", "expires_at"},  # never the secret
    ),
    ("DELETE", "/api/v1/sites/{site}/hold"): Case(
        _held, "release-site", "site", SITES[2], before=lambda v: v == "peak day", after=lambda v: v is None
    ),
}


def state_changing_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) of the app that is not a read (GET, HEAD), as FastAPI lists its routes in the OpenAPI
    (built from ``app.routes``, the included routers' too; only the console's HTML pages, GET alone, stay out)."""
    app.openapi_schema = None  # built again: a route added since counts
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() not in {"GET", "HEAD"}
    }


def unaudited(app: FastAPI) -> set[tuple[str, str]]:
    """The state-changing routes this module has no case for (and that are not known reads)."""
    return state_changing_routes(app) - set(CASES) - set(READS) - set(ELSEWHERE)


def test_every_state_changing_route_has_a_case(tmp_path: Path) -> None:
    app = create_app(Settings(), controller=MemoryController.small(tmp_path / "sites"))
    assert unaudited(app) == set()
    assert set(CASES) <= state_changing_routes(app), "a case for a route that is gone"


def test_a_new_state_changing_route_without_a_case_is_refused(tmp_path: Path) -> None:
    app = create_app(Settings(), controller=MemoryController.small(tmp_path / "sites"))

    @app.post("/api/v1/sites/{site}/paint")
    def paint(site: str) -> None:  # a change nobody audits
        return None

    @app.patch("/api/v1/audit")
    def edit_audit() -> None:  # nor may anyone edit the log unnoticed
        return None

    assert unaudited(app) == {("POST", "/api/v1/sites/{site}/paint"), ("PATCH", "/api/v1/audit")}


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_the_route_writes_who_what_target_before_after_and_source(served: Served, route: tuple[str, str]) -> None:
    method, _ = route
    case = CASES[route]
    path, body = case.prepare(served)
    last = served.last_id()

    answer = served.client.request(method, path, json=body)

    assert answer.status_code in case.status, answer.text
    written = served.written_after(last)
    assert written, f"{method} {path} wrote no audit entry"
    entry = written[0]
    assert (entry.actor.name, entry.actor.role, entry.actor.source) == ("li.wei", "admin", SOURCE)
    assert entry.action == case.action
    assert entry.target is not None
    assert (entry.target.kind, entry.target.site) == (case.target_kind, case.site)
    assert entry.target.id, entry
    assert entry.at == served.world.clock.now()  # the injected clock, not the wall's
    assert case.before(entry.before), entry.before
    assert case.after(entry.after), entry.after
    # Whatever else the request wrote (a restart's steps) names the same caller.
    assert {(e.actor.name, e.actor.source) for e in written} == {("li.wei", SOURCE)}
    # And the API reads it back.
    listed = served.client.get("/api/v1/audit", params={"action": case.action}).json()
    (shown,) = [e for e in listed if e["id"] == entry.id]
    assert (shown["principal"], shown["role"], shown["source"]) == ("li.wei", "admin", SOURCE)
    assert shown["target"] == {"kind": case.target_kind, "id": entry.target.id}
    assert shown["site"] == case.site
    if route == ("POST", "/api/v1/clusters/{cluster}/restart"):
        restart = answer.json()["id"]
        wait_for(
            lambda: served.client.get(f"/api/v1/clusters/{CLUSTER}/restarts/{restart}").json()["state"] != "running",
            timeout=30,
            what="the restart to end",
        )


def test_a_refused_request_writes_nothing(served: Served) -> None:
    rollout = served.rollout(release("1.0.0"))
    served.client.post(f"/api/v1/rollouts/{rollout}/promote")  # nothing waits for a promotion: 409
    last = served.last_id()
    staff = Principal(name="staff-a", role="site-staff", sites=frozenset({SITES[0]}))
    served.app.dependency_overrides[require_access] = lambda: staff

    refused = [
        served.client.post(f"/api/v1/sites/{SITES[1]}/hold", json={"reason": "x"}),  # another site: 404
        served.client.post("/api/v1/inventory/reload"),  # fleet-wide: 403
        served.client.post(f"/api/v1/rollouts/{rollout}/abort"),  # not theirs: 403
        served.client.post("/api/v1/alerts/no-such-alert/ack"),  # 404
        served.client.delete(f"/api/v1/sites/{SITES[0]}/hold"),  # not held: 404
    ]
    served.app.dependency_overrides[require_access] = lambda: CALLER
    refused.append(served.client.post(f"/api/v1/rollouts/{rollout}/promote"))  # 409
    refused.append(served.client.post("/api/v1/rollouts", json={"release": release("0.1.0")}))  # older: 409

    assert [r.status_code for r in refused] == [404, 403, 403, 404, 404, 409, 409]
    assert served.written_after(last) == []
