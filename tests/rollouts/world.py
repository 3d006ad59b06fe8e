"""A small fleet for the rollout's end-to-end tests: four transfer centers on one simulated cluster (its workload
controllers running, pods timed a tenth of the default), the live fleet state fed heartbeats directly, the
reconciler and the rollout service over a SQLite file, all on a FakeClock (the cluster keeps real time).
``small_world(directory, central=True)`` adds a central site, ``CENTRAL_SITE``, whose cluster is a central cluster
of its own (``CENTRAL``, its own context in the kubeconfig, its three cluster nodes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.access.audit_log import AuditLog
from edgefleet.cloud.api import create_app
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.fleet import FleetState, apply_heartbeat
from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.cloud.k8s.gateway import ClusterGateway, KubernetesGateway
from edgefleet.cloud.rollouts.reconciling import Reconciler
from edgefleet.cloud.rollouts.rendering import NAMESPACE, RELEASE_LABEL, ROLLOUT_LABEL, namespace, render
from edgefleet.cloud.rollouts.service import RolloutService
from edgefleet.cloud.rollouts.store import RolloutStore, StoredRollout
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.messages import AppReport, AppState, Heartbeat
from edgefleet.releases import load_release_text, parse_image
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from simulator.cluster.troubles import ApiTrouble
from tests.cloud.api.memory import MemoryController
from tests.cloud.builders import heartbeat
from tests.support.access import bearer, cli_env, mint
from tests.support.clusters import TEST_HOST, cluster_manifest, write_host_cluster
from tests.support.peers import wait_for

CLUSTER = ClusterId(TEST_HOST)
SITES = [SiteId(s) for s in ("site-a", "site-b", "site-c", "site-d")]
CENTRAL = ClusterId("central-test")
CENTRAL_SITE = SiteId("central-test")

SITE_YAML = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {{name: {name}}}
spec:
  kind: transfer-center
  displayName: {name}
  region: east
  timezone: Asia/Shanghai
  cluster: {cluster}
  boxes:
    - {{name: {name}-edge-01, role: edge-node}}
    - {{name: {name}-gpu-01, role: gpu-box, gpu: {{model: NVIDIA T4, count: 1, driverVersion: "535.183.01"}}}}
"""

# A central site is its whole cluster (docs/kubernetes.md): scan-upload runs on its cluster nodes.
CENTRAL_SITE_YAML = f"""\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {{name: {CENTRAL_SITE}}}
spec:
  kind: central
  displayName: Central cluster for tests
  region: east
  timezone: Asia/Shanghai
  cluster: {CENTRAL}
  boxes:
    - {{name: {CENTRAL_SITE}-node-01, role: cluster-node}}
    - {{name: {CENTRAL_SITE}-node-02, role: cluster-node}}
    - {{name: {CENTRAL_SITE}-node-03, role: cluster-node}}
"""


def release(
    version: str,
    *,
    canary: str = "site-a",
    waves: str = '["100%"]',
    failed_sites: int = 3,
    rollback: bool = False,
    image: str | None = None,
    soak: str = "0s",
    strategy: str = "",
) -> str:
    """A scan-upload release with no soak, no blackout and no approval (unless ``soak``, or ``strategy``: more
    lines of ``spec.strategy``, indented as they are)."""
    return f"""\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {{name: scan-upload-{version}}}
spec:
  app: scan-upload
  version: {version}
  images:
    scan-upload: {image or f"registry.local:5000/edgefleet/scan-upload:{version}"}
  config: {{upload.batch-size: "50"}}
  rollback: {str(rollback).lower()}
  strategy:
    canary: {{sites: [{canary}], coverHardware: false}}
    waves: {waves}
    maxInFlight: 10
    soak: {soak}
    failureThreshold: {{sites: {failed_sites}, percentOfWave: 100}}
    gates: {{runningPercent: 100, healthTolerancePercent: 10}}
{strategy}"""


class CountingGateway:
    """The real gateway, counting the applies and deletes that go through it (our own seam)."""

    def __init__(self, inner: ClusterGateway) -> None:
        self.inner = inner
        self.applied: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []

    def apply(self, cluster: ClusterId, obj: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        self.applied.append((str(obj["kind"]), str(obj["metadata"]["name"])))
        return self.inner.apply(cluster, obj, force=force)

    def delete(self, cluster: ClusterId, kind: Any, name: str, *, namespace: str | None = None) -> bool:
        self.deleted.append((str(kind), name))
        return self.inner.delete(cluster, kind, name, namespace=namespace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class World:
    inventory: Inventory
    cluster: BackgroundCluster
    gateway: CountingGateway
    clock: FakeClock
    store: Store
    state: FleetState = field(init=False)
    rollouts: RolloutStore = field(init=False)
    reconciler: Reconciler = field(init=False)
    service: RolloutService = field(init=False)
    # Sites whose agents say nothing (offline), and sites whose agents never report the new version.
    silent: set[SiteId] = field(default_factory=set)
    stuck: set[SiteId] = field(default_factory=set)
    seq: int = 0
    # Sites where this version of scan-upload is slower: its backlog and error rate that many times worse.
    slow: dict[SiteId, tuple[str, float]] = field(default_factory=dict)
    # The figures a site's agents report now, whatever the version (none: the usual ones).
    figures_override: dict[SiteId, dict[str, float]] = field(default_factory=dict)
    # Where the reconciler finds release files (none: only releases brought by earlier rollouts).
    releases_dir: Path | None = None
    # The registry hosts directory the service pins images through (none: images go out as given).
    registry_config: Path | None = None
    # The sites whose boxes beat (the central site too, when the world has one).
    sites: tuple[SiteId, ...] = tuple(SITES)
    # The admin token the last ``app()`` admits, named "rm" (the release manager: the actor its calls record).
    token: str = field(init=False, default="")
    # The in-memory controller the last ``app()`` serves (a test gives it alerting, restarts, a sites directory).
    controller: MemoryController | None = None

    def __post_init__(self) -> None:
        self.state = FleetState.for_inventory(self.inventory)
        self.rollouts = RolloutStore(self.store)
        self.rollouts.create_schema()
        self.restart()

    def restart(self, *, interval_s: float = 2.0) -> None:
        """A new reconciler and service over the same database and fleet (what a new controller builds)."""
        self.reconciler = Reconciler(
            self.rollouts,
            self.state,
            self.gateway,  # type: ignore[arg-type]
            clock=self.clock,
            interval_s=interval_s,
            releases_dir=self.releases_dir,
        )
        self.service = RolloutService(
            self.rollouts, self.state, self.reconciler, clock=self.clock, registry_config=self.registry_config
        )

    def running(self, site: SiteId) -> dict[str, Any] | None:
        """The site's scan-upload Deployment as its cluster serves it (None when there is none)."""
        items = self.gateway.list_objects(
            self.inventory.sites[site].cluster,
            "Deployment",
            namespace=NAMESPACE,
            label_selector=f"edgefleet.io/site={site}",
        ).items
        return items[0] if items else None

    def app(self, *, enrollment: Enrollment | None = None) -> FastAPI:
        """The controller's API over this world's fleet and rollouts (an in-memory controller), for the API and
        CLI tests."""
        controller = MemoryController(self.inventory)
        controller.state, controller.clock, controller.rollouts = self.state, self.clock, self.service
        self.token = mint(controller, "admin", name="rm")
        controller.audit_log = AuditLog(self.store)  # the rollouts write theirs there
        self.controller = controller
        return create_app(Settings(), controller=controller, enrollment=enrollment)

    @property
    def headers(self) -> dict[str, str]:
        """What sends the last ``app()``'s admin token (the actor "rm")."""
        return bearer(self.token)

    @property
    def cli_env(self) -> dict[str, str]:
        """The environment that makes the CLI send it (``CliRunner.invoke(env=...)``)."""
        return cli_env(self.token)

    def beat(self, versions: Mapping[SiteId, str | None] | None = None, *, through: Ingest | None = None) -> None:
        """One heartbeat from every box of every site not silent, reporting the scan-upload version its site's
        workload runs once rolled out (as an agent reads it from the pod), unless the site is stuck. Taken into
        the fleet state directly, or ``through`` an ingest as the controller takes them from the broker."""
        self.seq += 1
        now = self.clock.now()
        beats: list[tuple[BoxId, Heartbeat]] = []
        for site in self.sites:
            if site in self.silent:
                continue
            version = (versions or {}).get(site) or self._rolled_out_version(site)
            apps = (
                [AppState(name="scan-upload", version=version, state="running", figures=self._figures(site, version))]
                if version
                else []
            )
            for box in self.inventory.sites[site].boxes:
                beat = msgspec.structs.replace(
                    heartbeat(self.seq, box=box, site=site, sent_at=now, boot_started=now - 10.0 * self.seq),
                    apps=AppReport(source="simulator", apps=apps),
                )
                beats.append((BoxId(box), beat))
        if through is not None:
            for box, beat in beats:
                outcome = through.handle(topics.heartbeat_topic(box), msgspec.json.encode(beat))
                assert outcome == "accepted", f"the ingest did not take the heartbeat of {box}: {outcome}"
            return
        with self.state.lock:
            for box, beat in beats:
                apply_heartbeat(self.state.boxes[box], beat, received_at=now)

    def _figures(self, site: SiteId, version: str) -> dict[str, float]:
        """The app's health figures as its agent reads them: the same at every site and version, unless the version
        is slow there."""
        if site in self.figures_override:
            return dict(self.figures_override[site])
        slow_version, factor = self.slow.get(site, ("", 1.0))
        worse = factor if version == slow_version else 1.0
        return {"upload_backlog": 40.0 * worse, "error_rate_percent": 0.4 * worse}

    def _rolled_out_version(self, site: SiteId) -> str | None:
        try:
            deployment = self.running(site)
        except ClusterError:  # the test cannot read the site's cluster now: its agents say what they said
            return self._last_version(site)
        if deployment is None:
            return None
        status = deployment.get("status", {})
        done = status.get("updatedReplicas", 0) == deployment["spec"].get("replicas") == status.get(
            "availableReplicas", 0
        ) and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        version = str(parse_image(image).tag)
        if not done:
            return self._last_version(site)
        if site in self.stuck:
            return self._last_version(site)
        return version

    def _last_version(self, site: SiteId) -> str | None:
        box = self.state.boxes[self.inventory.sites[site].boxes[0]]
        if box.heartbeat is None:
            return None
        return next((a.version for a in box.heartbeat.apps.apps if a.name == "scan-upload"), None)

    def seed_unlabelled(self, site: SiteId, version: str) -> None:
        """The site's scan-upload as a fleet set up before edgefleet's rollouts has it (the simulator's): the same
        workload, but no release or version label, the version only in the image's tag."""
        loaded = load_release_text(release(version), "seed.yaml", self.inventory)
        self.gateway.inner.apply(CLUSTER, namespace(), force=True)
        for manifest in render(loaded, site, self.inventory, rollout_id=None):
            for labels in (
                manifest["metadata"]["labels"],
                manifest.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}),
            ):
                labels.pop(RELEASE_LABEL, None)
                labels.pop("app.kubernetes.io/version", None)
            self.gateway.inner.apply(CLUSTER, manifest, force=True)

    def step(self, rollout_id: str) -> StoredRollout:
        self.beat()
        self.reconciler.tick()
        return self.rollouts.get(rollout_id)

    def run_until(self, rollout_id: str, *states: str, timeout: float = 60.0) -> StoredRollout:
        """Beat and tick until the rollout is in one of ``states``."""
        return self.step_until(
            rollout_id, lambda rollout: rollout.status.state in states, what=f"to be {states}", timeout=timeout
        )

    def step_until(
        self, rollout_id: str, condition: Callable[[StoredRollout], bool], *, what: str, timeout: float = 60.0
    ) -> StoredRollout:
        """Beat and tick until ``condition`` holds of the rollout, however long the cluster's pods take (up to
        ``timeout`` seconds of real time): a count of ticks would race the pods on a busy machine."""

        def reached() -> StoredRollout | None:
            rollout = self.step(rollout_id)
            if condition(rollout):
                return rollout
            time.sleep(0.05)
            return None

        return wait_for(reached, timeout=timeout, interval=0.0, what=f"rollout {rollout_id} {what}")

    def site_release(self, site: SiteId) -> tuple[str | None, str | None, str | None]:
        """(release label, rollout label, image) of the site's Deployment."""
        deployment = self.running(site)
        if deployment is None:
            return (None, None, None)
        labels = deployment["metadata"]["labels"]
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        return labels.get(RELEASE_LABEL), labels.get(ROLLOUT_LABEL), image


# The gateway's request timeouts in a small world, unless a test asks for others.
GATEWAY_TIMEOUTS = Timeouts(connect_s=2.0, read_s=5.0)

# The second cluster of ``small_world(..., second_cluster=True)``: it holds the last two sites.
CLUSTER_2 = ClusterId("test-edge-2")


@dataclass
class Trouble:
    """What the second cluster's API server does to each request now (the simulator's api-errors fault, set by
    the test): None, every request served. ``requests`` counts the resource requests that server was asked,
    failed or served (discovery aside)."""

    now: ApiTrouble | None = None
    requests: int = 0
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def asked(self) -> ApiTrouble | None:
        """Read by the server at each resource request: counts it and says what to do to it."""
        with self._counting:
            self.requests += 1
        return self.now


@contextmanager
def small_world(
    directory: Path,
    *,
    second_cluster: Trouble | None = None,
    central: bool = False,
    timeouts: Timeouts = GATEWAY_TIMEOUTS,
) -> Iterator[World]:
    """The four sites on one cluster; with ``second_cluster``, site-c and site-d on a second one whose API
    server fails requests as that ``Trouble`` says; with ``central``, a central site on its own central cluster.
    ``timeouts``: the gateway's, which is how long a request the API server holds counts as timed out."""
    sites = directory / "sites"
    sites.mkdir()
    write_host_cluster(sites)
    on: dict[SiteId, ClusterId] = dict.fromkeys(SITES, CLUSTER)
    if second_cluster is not None:
        (sites / "clusters-2.yaml").write_text(cluster_manifest(CLUSTER_2))
        on.update(dict.fromkeys(SITES[2:], CLUSTER_2))
    for name in SITES:
        (sites / f"{name}.yaml").write_text(SITE_YAML.format(name=name, cluster=on[name]))
    if central:
        with (sites / "clusters.yaml").open("a") as declared:
            declared.write("---\n" + cluster_manifest(CENTRAL, "central"))
        (sites / f"{CENTRAL_SITE}.yaml").write_text(CENTRAL_SITE_YAML)
    inventory = load_inventory(sites)
    timing = PodTiming().scaled(0.1)
    clusters: dict[ClusterId, BackgroundCluster] = {}
    for cluster_id in sorted(set(on.values())):
        boxes = [box for site in SITES if on[site] == cluster_id for box in site_boxes(inventory, site)]
        options: dict[str, Any] = {}
        if cluster_id == CLUSTER_2 and second_cluster is not None:
            options["trouble"] = second_cluster.asked
        clusters[cluster_id] = start_cluster_in_background(
            cluster_id, boxes, controllers=True, pod_timing=timing, **options
        )
    if central:
        central_boxes = site_boxes(inventory, CENTRAL_SITE)
        clusters[CENTRAL] = start_cluster_in_background(CENTRAL, central_boxes, controllers=True, pod_timing=timing)
    kubeconfig = write_kubeconfig(directory / "kubeconfig", {c: served.url for c, served in clusters.items()})
    gateway = KubernetesGateway(
        ClusterClients({c: c for c in clusters}, kubeconfig),
        clock=FakeClock(),
        timeouts=timeouts,
    )
    store = Store(f"sqlite:///{directory / 'edgefleet.db'}")
    store.create_schema()
    beating = (*SITES, CENTRAL_SITE) if central else tuple(SITES)
    try:
        yield World(inventory, clusters[CLUSTER], CountingGateway(gateway), FakeClock(), store, sites=beating)
    finally:
        store.close()
        gateway.close()
        for served in clusters.values():
            served.stop()
