"""An in-memory controller for API and CLI tests: the real fleet state and rules (``edgefleet.cloud.fleet``)
fed by real agent-built messages, with a fake clock, ingest counters and a database switch. It stands in for
``Controller`` behind the API's own seam (``deps.FleetReader``), nothing else is replaced."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import FakeClock
from edgefleet.cloud.access.audit_log import AuditLog
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.sessions import Sessions
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.fleet import (
    FleetState,
    HealthPoint,
    InventoryChange,
    apply_heartbeat,
    apply_status,
    note_unknown_box,
    replace_inventory,
)
from edgefleet.cloud.hearing import Hearing, IngestStats
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.leading import Holder, Leadership, SoleLeadership
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.rollouts.service import RolloutService
from edgefleet.cloud.saving import SavingHealth
from edgefleet.cloud.store import Store
from edgefleet.errors import InventoryError, InventoryVersionMismatch, Problem, UnreachableError
from edgefleet.ids import BoxId, ClusterId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.messages import AppReport, AppState, GpuReport, Heartbeat, HostSample
from tests.support.clusters import TEST_HOST, cluster_manifest

SMALL_INVENTORY = {
    "sh-pudong.yaml": """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: sh-pudong}
spec:
  kind: transfer-center
  displayName: "Shanghai Pudong Transfer Center"
  region: east
  timezone: Asia/Shanghai
  cluster: test-edge
  boxes:
    - {name: sh-pudong-gpu-01, role: gpu-box, model: Advantech MIC-770,
       gpu: {model: NVIDIA L4, count: 2, driverVersion: "550.90.07"}}
    - {name: sh-pudong-gpu-02, role: gpu-box, model: Advantech MIC-770,
       gpu: {model: NVIDIA L4, count: 2, driverVersion: "550.90.07"}}
    - {name: sh-pudong-edge-01, role: edge-node, model: Dell PowerEdge XR11}
""",
    "bj-daxing.yaml": """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: bj-daxing}
spec:
  kind: transfer-center
  displayName: "Beijing Daxing Transfer Center"
  region: north
  timezone: Asia/Shanghai
  cluster: test-edge
  heartbeat: {intervalSeconds: 5, missedBeats: 2}
  boxes:
    - {name: bj-daxing-gpu-01, role: gpu-box, gpu: {model: NVIDIA T4, count: 1, driverVersion: "535.183.01"}}
    - {name: bj-daxing-edge-01, role: edge-node}
""",
    "central-bj.yaml": """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-bj}
spec:
  kind: central
  displayName: "Beijing Central Cluster"
  region: north
  timezone: Asia/Shanghai
  cluster: central-bj
  boxes:
    - {name: central-bj-node-01, role: cluster-node}
---
"""
    + cluster_manifest("central-bj", "central", region="north"),
    # The KubeEdge host cluster of the transfer centers (a central site's cluster is in the site's own file).
    "clusters.yaml": cluster_manifest(TEST_HOST),
}


def write_inventory(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in SMALL_INVENTORY.items():
        (directory / name).write_text(text)
    return directory


def host(cpu: float = 20.0) -> HostSample:
    return HostSample(
        cpu_percent=cpu,
        load1=0.5,
        load5=0.4,
        load15=0.3,
        memory_total_bytes=16 * 2**30,
        memory_available_bytes=12 * 2**30,
        disk_total_bytes=500 * 2**30,
        disk_free_bytes=400 * 2**30,
    )


NO_GPU = GpuReport(available=False, reason="no NVIDIA driver on this box")


def apps(*states: str) -> AppReport:
    return AppReport(
        source="file:/etc/edgefleet/apps.json",
        apps=[AppState(name=f"app-{i}", version="1.4.2", state=s) for i, s in enumerate(states)],  # type: ignore[arg-type]
    )


@dataclass
class MemoryIngest:
    counters: dict[str, int] = field(default_factory=dict)
    connected: bool = True
    refused: str | None = None

    def stats(self) -> IngestStats:
        return IngestStats(subscribed=self.connected, since_last_message_s=0.5, lag_s=0.0, busy=0.05)


@dataclass
class MemoryStore:
    problem: str | None = None

    def check(self) -> None:
        if self.problem is not None:
            raise UnreachableError("database", "sqlite:///var/edgefleet.db", self.problem)


class MemoryController:
    """What the API reads, in memory. ``beat`` and ``say`` feed it messages built by a real ``BoxReporter``."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        # API tokens over an in-memory SQLite database (one shared connection); tests mint them with
        # ``tests.support.access``. Kept across ``reset``: a served app's fixtures hold their tokens for the session.
        self.tokens = TokenStore(Store("sqlite://"))
        self.tokens.create_schema()
        # The audit log is a real one, on a SQLite file of its own (a new one at each reset), removed at the end.
        self._audit_dir = Path(tempfile.mkdtemp(prefix="edgefleet-audit-"))
        weakref.finalize(self, shutil.rmtree, self._audit_dir, ignore_errors=True)
        self._audit_files = itertools.count()
        self.reset()

    def reset(self) -> None:
        """Back to a fleet that has sent nothing, at the fake clock's start: one app serves many tests."""
        self.state = FleetState.for_inventory(self.inventory)
        self.clock = FakeClock()
        self.ingest = MemoryIngest()
        self.store = MemoryStore()
        audit_store = Store(f"sqlite:///{self._audit_dir / f'audit-{next(self._audit_files)}.db'}")
        self.audit_log = AuditLog(audit_store)
        self.audit_log.create_schema()
        self.reporters: dict[str, BoxReporter] = {}
        self.history_error: Exception | None = None
        # How the writes to the database fare; a test sets a failing one to see /healthz and /metrics say so.
        self.saving_health = SavingHealth()
        # No alerting here: the alert and silence routes answer 503 (their tests run the real controller).
        self.alerting: AlertService | None = None
        # No rollouts either, unless a test sets a service (tests/rollouts/test_rollout_api.py does).
        self.rollouts: RolloutService | None = None
        self.hearing = Hearing("hearing", 0.0, "hearing the fleet")
        # The one controller leads; a test sets a standby's leadership to see writes refused.
        self.leadership: Leadership = SoleLeadership(None, Holder("test", 1, 0.0), None)
        # What a probe found, by cluster; a cluster not here was never probed.
        self.clusters_probed: dict[ClusterId, ClusterHealth] = {}
        # No cluster is reached unless a test gives a gateway (to a simulated cluster): the audit answers 503.
        self.gateway: ClusterGateway | None = None
        # Nor restarted, unless a test gives restarts over that gateway.
        self.restarts: Restarts | None = None
        # No console sign-in unless a test gives sessions and local users over a database (tests/cloud/signin/).
        self.sessions: Sessions | None = None
        self.local_users: LocalUsers | None = None
        # Where reload_inventory takes the inventory from (None: a reload is refused).
        self.sites_dir: Path | None = None

    def reload_inventory(self, *, expect_version: str | None = None) -> InventoryChange:
        """As the controller does: take ``sites_dir`` again (a test sets it), whole or not at all."""
        if self.sites_dir is None:
            raise InventoryError([Problem("sites", None, "", "this in-memory controller was given no sites directory")])
        inventory = load_inventory(self.sites_dir)
        if expect_version is not None and inventory.version != expect_version:
            raise InventoryVersionMismatch(f"the sites directory holds {inventory.version}, not {expect_version}")
        with self.state.lock:
            return replace_inventory(self.state, inventory)

    @classmethod
    def small(cls, directory: Path) -> MemoryController:
        return cls(load_inventory(write_inventory(directory)))

    def reporter(self, box: str) -> BoxReporter:
        if box not in self.reporters:
            site = self.state.inventory.boxes[BoxId(box)].site
            self.reporters[box] = BoxReporter(box, site, interval_s=10.0, clock=self.clock)
        return self.reporters[box]

    def beat(
        self,
        box: str,
        *,
        gpu: GpuReport = NO_GPU,
        app_report: AppReport | None = None,
        cpu: float = 20.0,
        skew_s: float = 0.0,
    ) -> Heartbeat:
        """The box sends a heartbeat now (its clock ``skew_s`` ahead) and the controller takes it."""
        heartbeat = self.reporter(box).heartbeat(host(cpu), gpu, app_report or apps("running"), uptime_s=100.0)
        if skew_s:
            heartbeat = _with_sent_at(heartbeat, heartbeat.sent_at + skew_s)
        with self.state.lock:
            assert apply_heartbeat(self.state.boxes[BoxId(box)], heartbeat, received_at=self.clock.now()) == "accepted"
        self.ingest.counters["accepted"] = self.ingest.counters.get("accepted", 0) + 1
        return heartbeat

    def say(self, box: str, state: str, reason: str) -> None:
        """The box's retained status (online/offline) arrives."""
        status = self.reporter(box).status(state, reason)
        with self.state.lock:
            apply_status(self.state.boxes[BoxId(box)], status, received_at=self.clock.now())

    def stranger(self, box: str, claimed_site: str | None) -> None:
        """A box that is in no manifest publishes."""
        with self.state.lock:
            note_unknown_box(self.state, box, claimed_site, received_at=self.clock.now())

    def saving(self) -> SavingHealth:
        return self.saving_health

    def cluster_health(self) -> list[ClusterHealth]:
        return [
            self.clusters_probed.get(c.id) or ClusterHealth(c.id, c.context)
            for c in sorted(self.state.inventory.clusters.values(), key=lambda c: c.id)
        ]

    def box_history(self, box: BoxId, since: float) -> list[HealthPoint]:
        if self.history_error is not None:
            raise self.history_error
        with self.state.lock:
            return [p for p in self.state.boxes[box].history if p.at >= since]


def _with_sent_at(heartbeat: Heartbeat, sent_at: float) -> Heartbeat:
    import msgspec

    return msgspec.structs.replace(heartbeat, sent_at=sent_at, uptime_s=heartbeat.uptime_s)
