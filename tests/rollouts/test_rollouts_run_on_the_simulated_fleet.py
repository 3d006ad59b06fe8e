"""Done when (issue 15): the whole path against the simulated clusters and fleet. A real Mosquitto, the simulator
(its boxes beating over MQTT, its cluster serving the fleet's apps and running their pods) and the real
``Controller`` (ingest, alert loop, the rollout reconciler on its own schedule, the gateway built from the
simulator's kubeconfig), driven through the controller's ``RolloutService`` as the API drives it. No one ticks
by hand and nothing is fed to the fleet state but what the boxes report.

- A good scan-upload release reaches every site: the rollout ends ``done``, each site's Deployment in the
  cluster carries the new image, and every edge node's heartbeat reports the new version running.
- A sorting-recognition release that crash-loops on one GPU model (the simulator's ``crash-loop`` fault, injected
  through its control API before the start) is stopped in the canary, which covers every GPU model: the
  crash-looping app raises the ``app-down`` alert at that site, the alerts gate fails it, the threshold (0 sites)
  aborts the rollout, and every canary site's DaemonSet goes back to the image it ran before.
- A site cut during its wave (the simulator's ``cut`` fault while its pods still pull) is deferred, not failed;
  the rollout goes on with the next wave, and when the link returns the site is gated again and passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.controller import Controller
from edgefleet.cloud.rollouts.store import StoredRollout
from edgefleet.cloud.settings import Settings
from edgefleet.ids import ClusterId, SiteId
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from simulator.sources import site_release
from tests.support.clusters import TEST_HOST, write_host_cluster
from tests.support.peers import Mosquitto, wait_for

pytestmark = pytest.mark.slow

SEED = 7
# The sites' own heartbeat interval: a box's app versions reach the controller within half a second.
INTERVAL_S = 0.5
KEEPALIVE_S = 2
# The reconciler's schedule: short, so a rollout of a few sites takes seconds.
TICK_S = 0.3
# (site, GPU model of its boxes): two models, so the canary covers two sites.
SITES = {"site-01": "NVIDIA L4", "site-02": "NVIDIA T4", "site-03": "NVIDIA L4"}
# site-01 has two edge nodes, so its Deployment two replicas: a rolling update may leave both on one node (as
# kube-scheduler may), and the edge node without a replica reports no scan-upload.
EDGE_NODES = {"site-01": 2}
BAD_MODEL = "NVIDIA T4"
BAD_SITE = SiteId("site-02")
# How long a site's link is cut: longer than its boxes take to be seen offline (three 0.5 s beats, or the broker's
# Last Will 1.5 keepalives after the link froze) and than the other sites take to pass.
CUT_S = 8.0
NAMESPACE = "edgefleet"
# The alerting rules of the test's controller: a crash-looping app is "down" after 3 s (a pod's image pull, 1.5 s,
# is not); corrected ECC errors, which the simulator's GPUs show now and then, raise nothing. The rollout reads
# alerts from the controller's alert list; the one route (a kind no scenario raises) only makes the file complete.
NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {name: rollout-tests}
spec:
  channels:
    - {name: nowhere, kind: webhook, url: "http://127.0.0.1:9/hooks"}
  routes:
    - {kinds: [clock-skew], channels: [nowhere]}
  rules:
    defaults: {appDownFor: 3s, eccCorrectedRise: 1000000}
"""


def write_sites(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for site, model in SITES.items():
        boxes = "".join(
            f"    - {{name: {site}-edge-{i:02d}, role: edge-node, model: Dell PowerEdge XR11}}\n"
            for i in range(1, EDGE_NODES.get(site, 1) + 1)
        )
        boxes += "".join(
            f"    - {{name: {site}-gpu-{i:02d}, role: gpu-box, model: Dell PowerEdge R750xa,\n"
            f'       gpu: {{model: {model}, count: 1, driverVersion: "550.90.07"}}}}\n'
            for i in (1, 2)
        )
        (directory / f"{site}.yaml").write_text(
            "apiVersion: edgefleet.io/v1\nkind: Site\n"
            f"metadata: {{name: {site}}}\n"
            "spec:\n  kind: transfer-center\n"
            f'  displayName: "{site}"\n  region: east\n  timezone: Asia/Shanghai\n'
            f"  cluster: {TEST_HOST}\n"
            f"  heartbeat: {{intervalSeconds: {INTERVAL_S}, missedBeats: 3}}\n"
            "  boxes:\n" + boxes
        )
    write_host_cluster(directory)
    return directory


# sorting-recognition ships its recognition model (docs/releases.md).
MODEL = """\
  model:
    name: rough-handling
    version: 2026.11.2
    sha256: ab22e69636038f76058fae6ec99ebe449a8968e2db050f96fd17657b238aaf61
    url: https://models.local/rough-handling/2026.11.2.onnx
"""


def release(app: str, version: str, *, waves: str = '["100%"]', soak: str = "0s") -> str:
    """A release of ``app`` with no blackout and no approval; the canary covers every GPU model, and one failed
    site stops the rollout."""
    model = MODEL if app == "sorting-recognition" else ""
    return f"""\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {{name: {app}-{version}}}
spec:
  app: {app}
  version: {version}
  images:
    {app}: registry.local:5000/edgefleet/{app}:{version}
{model}  rollback: true
  strategy:
    canary: {{sites: [], coverHardware: true}}
    waves: {waves}
    maxInFlight: 10
    soak: {soak}
    failureThreshold: {{sites: 0, percentOfWave: 100}}
    gates: {{runningPercent: 100, healthTolerancePercent: 50}}
"""


def write_releases(directory: Path) -> Path:
    """The releases the simulator's fleet runs when it starts: what an abort goes back to."""
    directory.mkdir(parents=True, exist_ok=True)
    for app in ("scan-upload", "sorting-recognition"):
        for site in SITES:
            version = site_release(SEED, site, app)
            (directory / f"{app}-{version}.yaml").write_text(release(app, version))
    return directory


@dataclass
class Fleet:
    sim: BackgroundSimulator
    controller: Controller

    def image(self, kind: str, site: str, app: str) -> str:
        assert self.controller.gateway is not None
        workload = self.controller.gateway.get(ClusterId(TEST_HOST), kind, f"{app}-{site}", namespace=NAMESPACE)  # type: ignore[arg-type]
        return str(workload["spec"]["template"]["spec"]["containers"][0]["image"])

    def reported(self, app: str) -> dict[str, tuple[str, str]]:
        """What each box's latest heartbeat says of ``app``: (version, state)."""
        found: dict[str, tuple[str, str]] = {}
        for box, live in self.controller.state.boxes.items():
            if live.heartbeat is None:
                continue
            for report in live.heartbeat.apps.apps:
                if report.name == app:
                    found[str(box)] = (report.version, report.state)
        return found

    def start(self, manifest: str) -> str:
        assert self.controller.rollouts is not None
        rollout, created = self.controller.rollouts.start(manifest, by="tester")
        assert created
        return rollout.id

    def ended(self, rollout_id: str, state: str) -> StoredRollout:
        store = self.controller.rollout_store

        def check() -> StoredRollout | None:
            current = store.get(rollout_id)
            # Every site's state and reason, whole: pytest shortens a long status to the first few sites.
            sites = "; ".join(f"{site}: {s.state} ({s.reason})" for site, s in sorted(current.status.sites.items()))
            assert current.status.state not in {"aborted", "done", "rolled-back"} - {state}, (
                f"rollout {current.status.state}: {current.status.stopped_because}; {sites}"
            )
            return current if current.status.state == state else None

        return wait_for(check, timeout=45, interval=0.2, what=f"rollout {rollout_id} to be {state}")


@pytest.fixture
def fleet(tmp_path: Path, broker: Mosquitto) -> Iterator[Fleet]:
    sites = write_sites(tmp_path / "sites")
    kubeconfig = tmp_path / "sim.kubeconfig"
    sim = start_in_background(
        SimulatorOptions(
            sites_dir=sites,
            broker_url=broker.url,
            listen="127.0.0.1:0",
            keepalive_s=KEEPALIVE_S,
            seed=SEED,
            kubeconfig=kubeconfig,
        )
    )
    try:
        notifications = tmp_path / "notifications.yaml"
        notifications.write_text(NOTIFICATIONS)
        settings = Settings(
            broker_url=broker.url,
            database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}",
            sites_dir=sites,
            kubeconfig=kubeconfig,
            releases_dir=write_releases(tmp_path / "releases"),
            notifications_file=notifications,
        )
        controller = Controller(settings, rollout_tick_s=TICK_S)
        try:
            controller.start()
            running = Fleet(sim, controller)
            every_box = {f"{s}-{b}" for s in SITES for b in ("edge-01", "gpu-01", "gpu-02")} | {"site-01-edge-02"}
            wait_for(
                lambda: (
                    set(running.reported("scan-upload")) | set(running.reported("sorting-recognition")) == every_box
                ),
                timeout=20,
                what="every box to report its apps",
            )
            yield running
        finally:
            controller.stop()
    finally:
        sim.stop()


def test_a_good_release_reaches_every_site_of_the_simulated_fleet(fleet: Fleet) -> None:
    rollout_id = fleet.start(release("scan-upload", "1.14.0"))

    done = fleet.ended(rollout_id, "done")

    assert {site: s.state for site, s in done.status.sites.items()} == dict.fromkeys(SITES, "passed")
    for site in SITES:
        assert fleet.image("Deployment", site, "scan-upload") == "registry.local:5000/edgefleet/scan-upload:1.14.0"

    def all_new() -> dict[str, tuple[str, str]] | None:
        now = fleet.reported("scan-upload")
        every_site = {box.rpartition("-edge-")[0] for box in now} == set(SITES)
        return now if every_site and set(now.values()) == {("1.14.0", "running")} else None

    # Every edge node that runs a replica reports 1.14.0 running, none another version, and every site has one.
    reported = wait_for(all_new, what="every edge node with a replica to report 1.14.0 running")
    assert all("-edge-" in box for box in reported)


def test_a_release_that_crash_loops_on_one_gpu_model_is_stopped_in_the_canary_and_rolled_back(
    fleet: Fleet,
) -> None:
    before = {site: fleet.image("DaemonSet", site, "sorting-recognition") for site in SITES}
    fault = httpx.post(
        f"{fleet.sim.url}/faults",
        json={"kind": "crash-loop", "version": "3.6.0", "gpu_model": BAD_MODEL},
        timeout=10,
    )
    assert fault.status_code == 201, fault.text
    # A soak: a crash-looping container runs for a while (2 s) before it first exits, long enough for every gate
    # to pass once; the soak is what holds the site until the crash shows.
    rollout_id = fleet.start(release("sorting-recognition", "3.6.0", soak="10s"))
    started = fleet.controller.rollout_store.get(rollout_id)
    canary = set(started.spec.waves[0].sites)
    assert BAD_SITE in canary  # the only site with the bad GPU model
    assert len(canary) == 2  # one site per GPU model
    # A good scan-upload release soaking at the same sites meanwhile: the other app's crash loop is not its
    # failure (its alerts gate counts the site's and boxes' alerts and its own app's, not another app's).
    beside = fleet.start(release("scan-upload", "1.14.0", soak="5m"))

    aborted = fleet.ended(rollout_id, "aborted")
    other = fleet.controller.rollout_store.get(beside)
    assert other.status.state == "running", other.status
    assert other.status.sites[BAD_SITE].state in ("in-progress", "soaking"), other.status.sites[BAD_SITE]
    assert other.gates[BAD_SITE].alerts.verdict == "pass", other.gates[BAD_SITE].alerts

    assert aborted.status.sites[BAD_SITE].reason.startswith("reverted")
    assert "1 sites failed" in (aborted.status.stopped_because or "")
    assert aborted.gates[BAD_SITE].alerts.verdict == "fail"
    for site in canary:
        assert aborted.status.sites[site].state == "rolled-back"
        assert fleet.image("DaemonSet", site, "sorting-recognition") == before[site]
    (after,) = {SiteId(s) for s in SITES} - canary
    assert aborted.status.sites[after].state == "pending"  # never started
    assert fleet.image("DaemonSet", after, "sorting-recognition") == before[after]


# Real-time windows (a cut of CUT_S seconds against slow pulls): seen failing once beside other tests' load, so it
# runs alone with the serial tests.
@pytest.mark.serial
def test_a_site_cut_during_its_wave_is_deferred_and_caught_up_when_its_link_returns(fleet: Fleet) -> None:
    # Slow image pulls at the T4 site keep it in flight (its gates waiting) for longer than the cut lasts; the cut
    # (the simulator's "cut" fault: its boxes' links frozen, its nodes' kubelets away from the API) comes while it
    # is in flight. No failed site is allowed: a cut counted as a failure would abort the rollout.
    pull = httpx.post(
        f"{fleet.sim.url}/faults",
        json={"kind": "pull", "site": BAD_SITE, "mode": "slow", "delay_s": CUT_S + 4},
        timeout=10,
    )
    assert pull.status_code == 201, pull.text
    rollout_id = fleet.start(release("scan-upload", "1.14.0"))
    store = fleet.controller.rollout_store
    canary = set(store.get(rollout_id).spec.waves[0].sites)
    assert BAD_SITE in canary  # one canary site per GPU model
    (later,) = {SiteId(s) for s in SITES} - canary

    def state(site: SiteId) -> str:
        current = store.get(rollout_id)
        assert current.status.state == "running", current.status  # never aborted, never done while cut
        return current.status.sites[site].state

    wait_for(lambda: state(BAD_SITE) == "in-progress", timeout=20, interval=0.05, what=f"{BAD_SITE} in flight")
    cut = httpx.post(f"{fleet.sim.url}/faults", json={"kind": "cut", "site": BAD_SITE, "seconds": CUT_S}, timeout=10)
    assert cut.status_code == 201, cut.text

    wait_for(lambda: state(BAD_SITE) == "deferred", timeout=CUT_S, interval=0.05, what=f"{BAD_SITE} deferred")
    assert store.get(rollout_id).status.sites[BAD_SITE].reason == "offline during its rollout"
    # The rollout goes on without it: the canary passes, and the next wave's site starts while it is still cut.
    wait_for(
        lambda: state(later) in ("in-progress", "soaking", "passed") and state(BAD_SITE) == "deferred",
        timeout=CUT_S,
        interval=0.05,
        what=f"the next wave to start while {BAD_SITE} is cut",
    )

    done = fleet.ended(rollout_id, "done")

    assert {site: s.state for site, s in done.status.sites.items()} == dict.fromkeys(SITES, "passed")
    assert fleet.image("Deployment", BAD_SITE, "scan-upload") == "registry.local:5000/edgefleet/scan-upload:1.14.0"
    applies = [e.what for e in store.audit(rollout_id) if e.what.startswith("apply")]
    assert applies.count(f"apply scan-upload-1.14.0 at {BAD_SITE}") == 1  # gated again when back, not re-applied
