"""Fault (issue 19): the leader is killed with -9 at random points of a rollout. Two ``edgefleet cloud serve``
replicas on one PostgreSQL database (edgefleet.cloud.leading), the simulator's fleet and its Kubernetes cluster
(every site's scan-upload Deployment), a rollout of scan-upload 1.14.0 started through the API: a canary and two
waves over five sites, one site in flight at a time. Each site's image pull is slowed (the simulator's ``pull``
fault, PULL_S) so that the rollout outlasts every kill whatever the leaders do: the pull runs in the cluster, in
wall time, with or without a leader. Then, KILLS times: wait until exactly one replica leads and both name it,
wait a random time (seeded; the seed, each kill's moment and the rollout's state then are printed), SIGKILL the
leader, and start the killed replica again at once, so that two always run; the standby takes over.

Why KILLS is 10, not the issue's 20: each kill costs a takeover, the killed leader's lease running out (about
6 s, docs/reliability.md), plus the random wait: about 8 s a kill. 20 kills would take near three minutes on
their own, and the rollout would have to outlast them; 10 take about 80 s and land in every state of a site
(applied, pulling, passed, the next one started) over the canary and both waves, as the printed states show.

No soak: the kills are to land while sites are in flight (applied, pulling), which slowed pulls make long, not
while they soak. (This test found that every takeover restarted every soak; a new reconciler now goes on with the
stored soak: docs/reliability.md, "A takeover goes on with every soak".)

What must hold at the end: the rollout is ``done`` with every site passed, and no site was ever seen failed,
deferred, rolled back or leaving ``passed``; every site's Deployment, read from the simulated cluster, runs the
release, and is the same object (same uid) whose generation moved by exactly one (a repeated apply of the same
state changes nothing, so more than one means a site was changed twice); the audit log
(``GET /api/v1/audit?target=rollout:<id>``) holds the start once and, for each site, applies only from the
release it ran before to the new one, at least one, and no revert. "Harmfully" is thus: a second apply that
changed the object, an apply from anything but what the site ran before, or a revert. Re-applies of the same
state are allowed (a leader killed between its apply and its status write leaves the apply for the next leader
to state again) and counted. And the leader's epoch, read from /healthz after each takeover, rises every time.
PostgreSQL only (EDGEFLEET_TEST_DATABASE_URL). Judges real time: serial.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from simulator.sources import site_release
from tests.faults.test_the_leader_is_killed import Replica, leader_of
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, postgres_database, wait_for
from tests.support.scan_upload_fleet import CLUSTER, deployments, release, write_releases, write_sites

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.postgres]

# Printed, so that a failing run can be replayed: EDGEFLEET_TEST_KILL_SEED=<seed>.
SEED = int(os.environ.get("EDGEFLEET_TEST_KILL_SEED") or random.SystemRandom().randrange(1_000_000))
KILLS = 10
# The random wait between a settled leadership (one leader, named by both) and its kill.
WAIT_S = (0.2, 3.0)
FLEET_SEED = 7
SITES = ("site-01", "site-02", "site-03", "site-04", "site-05")
NEW = "scan-upload-1.14.0"
NEW_IMAGE = "registry.local:5000/edgefleet/scan-upload:1.14.0"
# Each site's image pull takes this long: five sites one after another (about 5 x 24 s) outlast the kills (about
# 10 x 8 s) with a margin.
PULL_S = 22
# The rollout's states that mean it went wrong.
STOPPED = ("aborting", "aborted", "rolled-back")


@dataclass
class Kill:
    at_s: float  # since the rollout was started
    waited_s: float
    epoch: int
    victim: str
    rollout: str  # the rollout's state as the leader showed it just before


@dataclass
class Rig:
    tmp: Path
    broker: Mosquitto
    sim: BackgroundSimulator
    sites: Path
    kubeconfig: Path
    releases: Path
    database: str
    gateway: KubernetesGateway
    replicas: dict[str, Replica] = field(default_factory=dict)  # the one running under each name
    started: list[Replica] = field(default_factory=list)  # every one, the killed too
    runs: Counter[str] = field(default_factory=Counter)
    token: str = ""

    def start(self, name: str) -> Replica:
        """Replica ``name`` (again, after a kill), its output in ``<name>-<run>.log``; returns once it answers."""
        self.runs[name] += 1
        replica = Replica(
            f"{name}-{self.runs[name]}",
            broker=self.broker,
            sites=self.sites,
            database=self.database,
            directory=self.tmp,
            kubeconfig=self.kubeconfig,
            settings={"EDGEFLEET_RELEASES_DIR": str(self.releases), "EDGEFLEET_ROLLOUT_TICK": "0.3s"},
        )
        self.replicas[name] = replica
        self.started.append(replica)
        wait_for(replica.health, timeout=60, what=f"{replica.name} to answer /healthz")
        if not self.token:  # the database, and the token in it, outlive every replica
            self.token = mint_at(self.database, name="tester")
        replica.client.headers.update(bearer(self.token))
        return replica

    def name_of(self, replica: Replica) -> str:
        return next(name for name, r in self.replicas.items() if r is replica)

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Each site's scan-upload Deployment as the cluster serves it."""
        return deployments(self.gateway)

    def stop(self) -> None:
        for replica in self.started:
            replica.stop()


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    sites = write_sites(tmp_path / "sites", SITES)
    kubeconfig = tmp_path / "sim.kubeconfig"
    releases = write_releases(tmp_path / "releases", FLEET_SEED, SITES)
    with postgres_database(server) as database:
        sim = start_in_background(
            SimulatorOptions(
                sites_dir=sites,
                broker_url=broker.url,
                listen="127.0.0.1:0",
                keepalive_s=2,
                seed=FLEET_SEED,
                kubeconfig=kubeconfig,
            )
        )
        gateway = KubernetesGateway(
            ClusterClients({CLUSTER: CLUSTER}, kubeconfig),
            clock=FakeClock(),
            timeouts=Timeouts(connect_s=2.0, read_s=5.0),
        )
        built = Rig(tmp_path, broker, sim, sites, kubeconfig, releases, database, gateway)
        try:
            yield built
        finally:
            built.stop()
            gateway.close()
            sim.stop()


def shown_states(shown: dict[str, Any]) -> dict[str, str]:
    return {site["site"]: site["state"] for wave in shown["waves"] for site in wave["sites"]}


def summary(shown: dict[str, Any] | None) -> str:
    """The rollout in a line: its state and each site's not yet passed (passed sites are counted)."""
    if shown is None:
        return "unread"
    states = shown_states(shown)
    passed = sum(1 for s in states.values() if s == "passed")
    busy = ", ".join(f"{site} {state}" for site, state in states.items() if state not in ("passed", "pending"))
    return f"{shown['state']}; {passed} passed" + (f"; {busy}" if busy else "")


def test_a_rollout_survives_its_leader_killed_at_random_points(rig: Rig) -> None:
    rng = random.Random(SEED)
    print(f"\nseed {SEED} (replay: EDGEFLEET_TEST_KILL_SEED={SEED}); {KILLS} kills, waits {WAIT_S} s")

    def every_site() -> dict[str, dict[str, Any]] | None:
        found = rig.deployments()
        return found if set(found) == set(SITES) else None

    served = wait_for(every_site, timeout=30, what="the simulator's cluster to serve every site's Deployment")
    before = {site: (item["metadata"]["uid"], int(item["metadata"]["generation"])) for site, item in served.items()}
    ran_before = {site: f"scan-upload-{site_release(FLEET_SEED, site, 'scan-upload')}" for site in SITES}
    for site in SITES:
        slowed = httpx.post(
            f"{rig.sim.url}/faults", json={"kind": "pull", "site": site, "mode": "slow", "delay_s": PULL_S}, timeout=10
        )
        assert slowed.status_code == 201, slowed.text
    rig.start("a")
    rig.start("b")
    leader, _standby = leader_of(*rig.replicas.values())
    # The leader's epoch at each kill and at the end, as its /healthz says.
    epochs: list[int] = []

    started = leader.client.post("/api/v1/rollouts", json={"release": release("1.14.0")}, timeout=30)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    began = time.monotonic()
    # Every state each site was seen in, in order, across the replicas.
    seen: dict[str, list[str]] = {site: [] for site in SITES}

    def watch(replica: Replica) -> dict[str, Any] | None:
        """The rollout as ``replica`` shows it (reads are served by a standby too); None while it does not answer."""
        if replica.process.poll() is not None:
            return None
        try:
            answer = replica.client.get(f"/api/v1/rollouts/{rollout_id}")
        except httpx.TransportError:  # a replica starting or being killed: read another time
            return None
        if answer.status_code != 200:
            return None
        shown: dict[str, Any] = answer.json()
        for site, state in shown_states(shown).items():
            if not seen[site] or seen[site][-1] != state:
                seen[site].append(state)
        assert shown["state"] not in STOPPED, shown
        return shown

    kills: list[Kill] = []
    for _ in range(KILLS):
        leader, standby = leader_of(*rig.replicas.values())
        health = leader.health()
        assert health is not None
        epoch = int(health["leadership"]["epoch"])
        epochs.append(epoch)
        wait_s = rng.uniform(*WAIT_S)
        until = time.monotonic() + wait_s
        shown = watch(leader)
        while time.monotonic() < until:
            shown = watch(leader) or shown
            time.sleep(0.05)
        assert shown is not None, "the rollout was never read"
        assert shown["state"] == "running", (
            f"the rollout ended before kill {len(kills) + 1} of {KILLS}: {summary(shown)}; make it longer (PULL_S)"
        )
        victim = rig.name_of(leader)
        leader.process.kill()
        leader.process.wait(10)
        kill = Kill(time.monotonic() - began, wait_s, epoch, leader.name, summary(shown))
        kills.append(kill)
        print(
            f"kill {len(kills):2}: at {kill.at_s:5.1f} s, {wait_s:.1f} s into epoch {epoch}, {leader.name} "
            f"(pid {leader.process.pid}); rollout {kill.rollout}"
        )
        rig.start(victim)
        watch(standby)

    leader, _standby = leader_of(*rig.replicas.values())
    health = leader.health()
    assert health is not None
    epochs.append(int(health["leadership"]["epoch"]))

    def ended() -> dict[str, Any] | None:
        shown = watch(leader)
        return shown if shown is not None and shown["state"] == "done" else None

    done = wait_for(ended, timeout=(PULL_S + 10) * len(SITES), interval=0.1, what=f"rollout {rollout_id} to be done")
    took = time.monotonic() - began
    print(f"rollout done {took:.1f} s after its start; epochs seen {epochs}; site states seen {seen}")

    # Forgets no site: every one passed, and none was failed, deferred or rolled back, or left "passed" once there.
    assert shown_states(done) == dict.fromkeys(SITES, "passed")
    for site, states in seen.items():
        assert states[states.index("passed") :] == ["passed"], (site, states)
        assert not {"failed", "deferred", "rolled-back"} & set(states), (site, states)
    # A takeover per kill: the epoch rose at every one (by more than one only if a leader also stepped down on its
    # own, deaf under load: allowed, and the printed epochs would show it).
    assert all(earlier < later for earlier, later in itertools.pairwise(epochs)), epochs
    assert len(epochs) == KILLS + 1, epochs

    # Every site runs the release, on the same object changed once: a repeated apply of the same state changes
    # nothing, so any further generation would be a site changed twice.
    after = rig.deployments()
    for site in SITES:
        metadata = after[site]["metadata"]
        assert after[site]["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE, site
        assert (metadata["uid"], int(metadata["generation"])) == (before[site][0], before[site][1] + 1), site

    # The audit: the start once; each site applied, only ever from what it ran before to the new release; no revert.
    audit = leader.client.get("/api/v1/audit", params={"target": f"rollout:{rollout_id}", "limit": 500})
    assert audit.status_code == 200, audit.text
    entries = audit.json()
    assert "x-next-cursor" not in audit.headers, "more audit than one page"
    actions = Counter(str(e["action"]) for e in entries)
    print(f"audit of {rollout_id}: {dict(actions)}")
    assert actions["start-rollout"] == 1, actions
    applies = [e for e in entries if e["action"] == "apply"]
    for site in SITES:
        mine = [(e["before"], e["after"]) for e in applies if e["site"] == site]
        assert mine, f"no apply of {site} in the audit"
        assert set(mine) == {(ran_before[site], NEW)}, (site, mine)
    assert not [e for e in entries if e["action"] == "revert"], entries
    reapplied = {site: n for site, n in Counter(e["site"] for e in applies).items() if n > 1}
    print(f"checked: done, {len(SITES)} sites on {NEW_IMAGE}, each Deployment changed once; re-applies {reapplied}")
