"""Crash-and-resume (issue 15, "Durable and level-triggered"): ``kill -9`` the controller at any point, start it
again, and it resumes where it was, applies nothing twice harmfully and forgets no site.

The real thing, process by process: a real Mosquitto, the simulator (its boxes beating over MQTT, its cluster
running the pods of scan-upload at every site), and ``edgefleet cloud serve`` as a child process on a SQLite file,
its rollout reconciler ticking every 0.3 s (``EDGEFLEET_ROLLOUT_TICK``). The rollout is started through the API,
one site at a time (``maxInFlight: 1``) over a canary and two waves, and the controller is SIGKILLed and started
again at points the test sees through the cluster: right after the start was accepted, once the canary carries the
rollout's label, and once the first site of the last wave does (in the middle of that wave). Once the rollout is
done, a rollback, and one more SIGKILL as soon as one site is back on what it ran before. Where a kill lands inside
the tick (among the applies, before or after the status and audit are written) is not chosen; the in-process test
of a status write lost after an apply (``test_a_rollout_runs_against_simulated_clusters.py``) pins that point.

What must hold: the rollout ends ``done`` with every site passed; no site was ever seen deferred or failed (the
controller's absence is not the sites'), nor left ``passed`` once there; each Deployment is the same object (same
uid, never deleted and re-created) whose generation moved by exactly one for the rollout and one more for the
rollback (one per release change: server-side apply of an identical object does not bump it,
``tests/k8s/test_gateway_applies_and_restarts_workloads.py``), back on its previous image and release; the audit
holds exactly one apply per site, from the release it ran before to the new one, and one revert back to it; and
each site's recorded previous release is the one it ran before (never the rollout's own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.rollouts.rendering import RELEASE_LABEL, ROLLOUT_LABEL
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.store import Store
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from simulator.sources import site_release
from tests.conftest import REPO
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, free_port, wait_for
from tests.support.scan_upload_fleet import CLUSTER, deployments, release, write_releases, write_sites

pytestmark = pytest.mark.slow

SEED = 7
SITES = ("site-01", "site-02", "site-03", "site-04")
NEW = "scan-upload-1.14.0"
NEW_IMAGE = "registry.local:5000/edgefleet/scan-upload:1.14.0"
# Kill the controller once the rollout's label is on this many sites: 0 is right after the start was accepted, 1
# the canary, 3 the first site of the last wave (its second site not started yet).
KILL_AFTER_APPLIES = (0, 1, 3)


@dataclass
class Rig:
    """The broker, the simulator and the paths a controller process is started with, and the controller now."""

    tmp: Path
    broker: Mosquitto
    sim: BackgroundSimulator
    sites: Path
    kubeconfig: Path
    releases: Path
    gateway: KubernetesGateway
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    # An admin token, made in the database once the first controller migrated it.
    token: str = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.tmp / 'edgefleet.db'}"

    def start_controller(self) -> None:
        """``edgefleet cloud serve`` as an operator starts it, its output in a file (a pipe nobody reads would
        fill and stall it); returns once its API answers."""
        self.runs += 1
        log = (self.tmp / f"controller-{self.runs}.log").open("wb")
        env = {
            **os.environ,
            "EDGEFLEET_RELEASES_DIR": str(self.releases),
            "EDGEFLEET_ROLLOUT_TICK": "0.3s",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", "cloud", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--broker", self.broker.url, "--sites", str(self.sites), "--database", self.database_url,
             "--kubeconfig", str(self.kubeconfig)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )  # fmt: skip
        log.close()
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the controller exited ({process.returncode}):\n{self.output()}")
            try:
                return httpx.get(f"{self.api}/healthz", timeout=5).status_code in (200, 503)
            except httpx.TransportError:
                return False

        wait_for(answers, timeout=30, interval=0.05, what="the controller to answer")
        if not self.token:  # made once: the database, and the token in it, outlive a killed controller
            self.token = mint_at(self.database_url, name="tester")

    def kill_controller(self) -> None:
        """SIGKILL: no shutdown, no last flush, the database lock freed only by the kernel."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL
        self.process = None

    def stop_controller(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def output(self) -> str:
        return "".join(
            f"--- controller run {run} ---\n" + (self.tmp / f"controller-{run}.log").read_text(errors="replace")
            for run in range(1, self.runs + 1)
        )

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Each site's scan-upload Deployment as the cluster serves it."""
        return deployments(self.gateway)

    def applied(self, rollout_id: str) -> set[str]:
        """The sites whose Deployment carries the rollout's label."""
        return {
            site
            for site, item in self.deployments().items()
            if item["metadata"]["labels"].get(ROLLOUT_LABEL) == rollout_id
        }

    def rollout(self, rollout_id: str) -> dict[str, Any] | None:
        """The rollout as the API shows it; None while the controller does not answer."""
        try:
            answer = httpx.get(f"{self.api}/api/v1/rollouts/{rollout_id}", headers=bearer(self.token), timeout=5)
        except httpx.TransportError:
            return None
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        return shown


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    sites = write_sites(tmp_path / "sites", SITES)
    kubeconfig = tmp_path / "sim.kubeconfig"
    sim = start_in_background(
        SimulatorOptions(
            sites_dir=sites,
            broker_url=broker.url,
            listen="127.0.0.1:0",
            keepalive_s=2,
            seed=SEED,
            kubeconfig=kubeconfig,
        )
    )
    releases = write_releases(tmp_path / "releases", SEED, SITES)
    gateway = KubernetesGateway(
        ClusterClients({CLUSTER: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=Timeouts(connect_s=2.0, read_s=5.0)
    )
    built = Rig(tmp_path, broker, sim, sites, kubeconfig, releases, gateway)
    try:
        yield built
    finally:
        built.stop_controller()
        gateway.close()
        sim.stop()


def test_a_controller_killed_at_several_points_resumes_its_rollout_and_rollback_and_applies_nothing_twice(
    rig: Rig,
) -> None:
    def every_site() -> dict[str, dict[str, Any]] | None:
        found = rig.deployments()
        return found if set(found) == set(SITES) else None

    served = wait_for(every_site, timeout=20, what="the simulator's cluster to serve every site's Deployment")
    before = {site: (item["metadata"]["uid"], int(item["metadata"]["generation"])) for site, item in served.items()}
    ran_before = {site: f"scan-upload-{site_release(SEED, site, 'scan-upload')}" for site in SITES}
    rig.start_controller()
    started = httpx.post(
        f"{rig.api}/api/v1/rollouts", json={"release": release("1.14.0")}, headers=bearer(rig.token), timeout=30
    )
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    # Every state each site was seen in, in order, across the controllers.
    seen: dict[str, list[str]] = {site: [] for site in SITES}

    def watch() -> dict[str, Any] | None:
        shown = rig.rollout(rollout_id)
        if shown is not None:
            for wave in shown["waves"]:
                for site in wave["sites"]:
                    states = seen[site["site"]]
                    if not states or states[-1] != site["state"]:
                        states.append(site["state"])
            assert shown["state"] not in ("aborting", "aborted", "rolled-back"), shown
        return shown

    def reached(applies: int) -> bool:
        if len(rig.applied(rollout_id)) >= applies:
            return True
        watch()
        return False

    def ended() -> dict[str, Any] | None:
        shown = watch()
        return shown if shown is not None and shown["state"] == "done" else None

    for applies in KILL_AFTER_APPLIES:
        wait_for(lambda: reached(applies), timeout=60, interval=0.02, what=f"the rollout to reach {applies} sites")  # noqa: B023 (called at once)
        rig.kill_controller()
        rig.start_controller()

    done = wait_for(ended, timeout=90, interval=0.1, what=f"rollout {rollout_id} to be done after the restarts")
    assert rig.runs == len(KILL_AFTER_APPLIES) + 1

    # Forgets no site: every one passed, runs the new image, and never left "passed" once it got there.
    assert {site["site"]: site["state"] for wave in done["waves"] for site in wave["sites"]} == dict.fromkeys(
        SITES, "passed"
    )
    for site, states in seen.items():
        assert "passed" not in states or states[states.index("passed") :] == ["passed"], (site, states)
        assert "failed" not in states, (site, states)
        # A restart is not an outage of the sites: the boxes' silence while no controller listened is not counted
        # (the alert loop's silence holds), so no site is deferred for it.
        assert "deferred" not in states, (site, states)
    after = rig.deployments()
    for site in SITES:
        metadata = after[site]["metadata"]
        assert after[site]["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
        # The same object, changed once: one apply per release change, a repeated apply changed nothing.
        assert (metadata["uid"], int(metadata["generation"])) == (before[site][0], before[site][1] + 1), site

    # Then a rollback, the controller killed as soon as the cluster shows one site back on what it ran before
    # (every revert is issued in one tick: the kill lands among them, or before the status write).
    asked = httpx.post(f"{rig.api}/api/v1/rollouts/{rollout_id}/rollback", headers=bearer(rig.token), timeout=30)
    assert asked.status_code == 200, asked.text
    wait_for(lambda: len(rig.applied(rollout_id)) < len(SITES), timeout=60, interval=0.02, what="a site to be reverted")
    rig.kill_controller()
    rig.start_controller()

    def rolled_back() -> dict[str, Any] | None:
        shown = rig.rollout(rollout_id)
        assert shown is None or shown["state"] in ("done", "aborting", "rolled-back"), shown
        return shown if shown is not None and shown["state"] == "rolled-back" else None

    wait_for(rolled_back, timeout=60, interval=0.1, what=f"rollout {rollout_id} to be rolled back after the restart")
    rig.stop_controller()
    back = rig.deployments()
    for site in SITES:
        metadata = back[site]["metadata"]
        old_image = f"registry.local:5000/edgefleet/scan-upload:{site_release(SEED, site, 'scan-upload')}"
        assert back[site]["spec"]["template"]["spec"]["containers"][0]["image"] == old_image
        assert (metadata["labels"].get(RELEASE_LABEL), metadata["labels"].get(ROLLOUT_LABEL)) == (
            ran_before[site],
            None,
        )
        # Changed once more: the revert, however many times the restarted controller stated it.
        assert (metadata["uid"], int(metadata["generation"])) == (before[site][0], before[site][1] + 2), site

    # The audit and the records: one apply per site, from what it ran before, and one revert back to it.
    store = Store(rig.database_url)
    try:
        rollouts = RolloutStore(store)
        audit = rollouts.audit(rollout_id)
        applies_seen = sorted((e.what, e.before, e.after) for e in audit if e.what.startswith("apply"))
        assert applies_seen == sorted((f"apply {NEW} at {site}", ran_before[site], NEW) for site in SITES)
        reverts_seen = sorted((e.what, e.before, e.after) for e in audit if e.what.startswith("revert"))
        assert reverts_seen == sorted((f"revert {site} to {ran_before[site]}", NEW, ran_before[site]) for site in SITES)
        assert {site: p.release for site, p in rollouts.previous(rollout_id).items()} == ran_before
    finally:
        store.close()
