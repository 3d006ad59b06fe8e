"""Fault (issue 19): a site is partitioned and healed during a rollout. Real processes: one ``edgefleet cloud
serve`` (SQLite, and PostgreSQL where EDGEFLEET_TEST_DATABASE_URL is set), Mosquitto, the simulator's fleet and its
Kubernetes cluster, a rollout of scan-upload 1.14.0 started through the API over four sites (the canary site-01,
then site-02, then site-03 and site-04; one site in flight at a time, no soak, no failed site allowed).

The partition is the simulator's ``cut`` fault on site-03 (two edge nodes, so that its silence is a site's, told
as one site-unreachable alert). What the simulator does for a cut: both boxes' MQTT connections freeze (nothing
sent or read; the broker ends them once the keepalive runs out, and their Last Wills go), and both nodes' kubelets
stop posting to the cluster: their pods make no progress, and past the node-monitor grace period (shortened here
to NODE_GRACE_S) the node lifecycle controller marks both nodes Ready Unknown. Healing clears the fault: the
connections thaw (the boxes reconnect by themselves) and the kubelets post again.

The cut lands at one of two moments, without racing the clock: a site's image pull is held (the ``pull`` fault,
an hour) from before the rollout starts, so that the site stays in-progress once applied until the fault is
cleared. "In flight": site-03's own pull is held, and site-03 is cut once applied; the pull is let go during the
cut. "Before its turn": site-02's pull is held (the wave before), site-03 is cut while site-02 is in flight, and
site-02 is let go once the controller has lost site-03, so that site-03 is offline when its turn comes.

What must hold (docs/rollouts.md, "The states"): site-03 is deferred ("offline during its rollout", or "offline
when its turn came"), never failed (the threshold allows no failed site, so a deferral counted as a failure would
abort); site-04 goes on and passes meanwhile; every wave passes and the rollout stays ``running``, waiting for the
deferred site, never ``done`` while it is cut; the cut site's Deployment is not changed while it is cut (applied
once, or not at all). Healed, site-03 is gated again (or started) by itself and passes, and the rollout ends
``done`` with every site on the new image. Each site's Deployment is the same object with its generation moved by
exactly one, and the audit (``GET /api/v1/audit?target=rollout:<id>``) holds one apply per site, from what it ran
before to the new release: site-03 was not applied again when it came back. The webhook got one site-unreachable
firing and one resolve for site-03 (same alert), not one box-lost message (the boxes' alerts, stored, were
inhibited by the site's while it was cut, and resolved), and the rollout's news told the deferral once and the end
once.

Nothing here judges a real-time threshold: every wait is bounded generously, so the test need not run serially.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from simulator.sources import site_release
from tests.faults.test_the_leader_is_killed import Replica
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, wait_for
from tests.support.receivers import RecordingReceiver, recording_receiver
from tests.support.scan_upload_fleet import CLUSTER, deployments, release, write_releases, write_sites

pytestmark = pytest.mark.slow

FLEET_SEED: Final = 7
SITES: Final = ("site-01", "site-02", "site-03", "site-04")
CUT: Final = "site-03"
CUT_NODES: Final = (f"{CUT}-edge-01", f"{CUT}-edge-02")
NEW: Final = "scan-upload-1.14.0"
NEW_IMAGE: Final = "registry.local:5000/edgefleet/scan-upload:1.14.0"
# The cut and the held pull last until the test clears them; these only bound them if the test dies first.
CUT_S: Final = 600
HELD_PULL_S: Final = 3_600
# Short, so that the cut site's nodes are lost within the cut (Kubernetes: 50 s), and long enough that the other
# sites' kubelets, renewing at a fraction of it, are never late on a loaded machine.
NODE_GRACE_S: Final = 5.0
# Short, so that a frozen box's connection ends (its will) within seconds (the broker waits ~1.5 x keepalive).
KEEPALIVE_S: Final = 2
WEBHOOK_PATH: Final = "/hooks/edgefleet"
STOPPED: Final = ("aborting", "aborted", "rolled-back")
# Generous bounds on every wait: a rollout of four sites takes seconds here, a loaded machine may take more.
BOUND_S: Final = 120.0


def write_notifications(path: Path, receiver: RecordingReceiver) -> Path:
    """Lost-contact alerts and the rollout's news, all to one webhook, at once (no group wait)."""
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: partition}\nspec:\n"
        "  timing: {groupWait: 0s, groupInterval: 1s, repeatInterval: 1h}\n"
        f"  channels:\n    - {{name: tickets, kind: webhook, url: '{receiver.url}{WEBHOOK_PATH}'}}\n"
        "  routes:\n"
        "    - kinds: [box-lost, box-flapping, site-unreachable]\n      channels: [tickets]\n"
        "    - rollouts: [started, wave-passed, sites-deferred, aborted, rolled-back, done]\n"
        "      channels: [tickets]\n"
        "  defaultChannels: []\n"
    )
    return path


@dataclass
class Rig:
    sim: BackgroundSimulator
    controller: Replica
    gateway: KubernetesGateway
    receiver: RecordingReceiver
    # Every state each site was seen in, in order, and every state of the rollout.
    seen: dict[str, list[str]] = field(default_factory=lambda: {site: [] for site in SITES})
    states: list[str] = field(default_factory=list)

    def fault(self, **body: object) -> dict[str, Any]:
        answer = httpx.post(f"{self.sim.url}/faults", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        fault: dict[str, Any] = answer.json()
        print(f"injected {fault['id']}: {body}")
        return fault

    def clear(self, fault: dict[str, Any]) -> None:
        answer = httpx.delete(f"{self.sim.url}/faults/{fault['id']}", timeout=10)
        assert answer.status_code == 200, answer.text
        print(f"cleared {fault['id']} ({fault['kind']} at {fault['site']})")

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        """The rollout as the API shows it, each site's and the rollout's state noted; never stopped."""
        answer = self.controller.client.get(f"/api/v1/rollouts/{rollout_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        for site, state in site_states(shown).items():
            if not self.seen[site] or self.seen[site][-1] != state:
                self.seen[site].append(state)
        if not self.states or self.states[-1] != shown["state"]:
            self.states.append(shown["state"])
        assert shown["state"] not in STOPPED, shown
        return shown

    def nodes_ready(self) -> dict[str, str]:
        """Each node's Ready condition as the cluster serves it."""
        items = self.gateway.list_objects(CLUSTER, "Node").items
        return {
            item["metadata"]["name"]: next(
                (c["status"] for c in item["status"].get("conditions", []) if c["type"] == "Ready"), "missing"
            )
            for item in items
        }

    def webhook(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.receiver.received if r.path == WEBHOOK_PATH]

    def alert_notices(self) -> list[tuple[str, str, str | None, str, str]]:
        """(site, kind, box, notice, alert id) of every alert the webhook got, in order."""
        return [
            (a["site"], a["kind"], a.get("box"), a["notice"], a["id"])
            for m in self.webhook()
            for a in m.get("alerts", [])
        ]

    def rollout_news(self) -> list[tuple[str, tuple[str, ...]]]:
        """(event, sites) of every rollout event the webhook got, in order."""
        return [(e["event"], tuple(e["sites"])) for m in self.webhook() if "rollout" in m for e in m["events"]]


def site_states(shown: dict[str, Any]) -> dict[str, str]:
    return {site["site"]: site["state"] for wave in shown["waves"] for site in wave["sites"]}


def site_of(shown: dict[str, Any], name: str) -> dict[str, Any]:
    return next(site for wave in shown["waves"] for site in wave["sites"] if site["site"] == name)


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto, database_url: str) -> Iterator[Rig]:
    sites = write_sites(tmp_path / "sites", SITES, edge_nodes={CUT: len(CUT_NODES)})
    releases = write_releases(tmp_path / "releases", FLEET_SEED, SITES)
    kubeconfig = tmp_path / "sim.kubeconfig"
    with recording_receiver() as receiver:
        sim = start_in_background(
            SimulatorOptions(
                sites_dir=sites,
                broker_url=broker.url,
                listen="127.0.0.1:0",
                keepalive_s=KEEPALIVE_S,
                seed=FLEET_SEED,
                kubeconfig=kubeconfig,
                node_grace_s=NODE_GRACE_S,
            )
        )
        gateway = KubernetesGateway(
            ClusterClients({CLUSTER: CLUSTER}, kubeconfig), clock=FakeClock(), timeouts=Timeouts(connect_s=2, read_s=5)
        )
        controller = Replica(
            "controller",
            broker=broker,
            sites=sites,
            database=database_url,
            directory=tmp_path,
            notifications=write_notifications(tmp_path / "notifications.yaml", receiver),
            kubeconfig=kubeconfig,
            settings={"EDGEFLEET_RELEASES_DIR": str(releases), "EDGEFLEET_ROLLOUT_TICK": "0.3s"},
        )
        try:
            wait_for(controller.health, timeout=60, what="the controller to answer /healthz")
            controller.client.headers.update(bearer(mint_at(database_url, name="tester")))
            yield Rig(sim, controller, gateway, receiver)
        finally:
            controller.stop()
            gateway.close()
            sim.stop()


# When the cut lands: while the site is in flight (applied, its pull held), or before its turn (while the site
# before it, in the wave before, is in flight: its pull held), so that it is offline when its turn comes.
MOMENTS: Final = ("in flight", "before its turn")
# The site held in flight when the cut lands, and the deferred site's reason, for each moment.
HELD: Final = {"in flight": CUT, "before its turn": "site-02"}
REASON: Final = {"in flight": "offline during its rollout", "before its turn": "offline when its turn came"}
# The cut site's states up to its deferral: applied, then cut off; or never started.
UNTIL_DEFERRED: Final = {
    "in flight": ["pending", "in-progress", "deferred"],
    "before its turn": ["pending", "deferred"],
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_site_cut_during_a_rollout_is_deferred_and_caught_up_when_healed(rig: Rig, moment: str) -> None:
    def every_site_served() -> dict[str, dict[str, Any]] | None:
        found = deployments(rig.gateway)
        return found if set(found) == set(SITES) else None

    served = wait_for(every_site_served, timeout=30, what="the simulator's cluster to serve every site's Deployment")
    before = {site: (item["metadata"]["uid"], int(item["metadata"]["generation"])) for site, item in served.items()}
    ran_before = {site: f"scan-upload-{site_release(FLEET_SEED, site, 'scan-upload')}" for site in SITES}

    def sites_shown() -> dict[str, dict[str, Any]]:
        answer = rig.controller.client.get("/api/v1/sites", timeout=10)
        assert answer.status_code == 200, answer.text
        return {s["id"]: s for s in answer.json()}

    wait_for(
        lambda: all(s["health"] == "ok" for s in sites_shown().values()),
        timeout=BOUND_S,
        what="every box online at the controller",
    )

    held_site = HELD[moment]
    held = rig.fault(kind="pull", site=held_site, mode="slow", delay_s=HELD_PULL_S)
    started = rig.controller.client.post("/api/v1/rollouts", json={"release": release("1.14.0")}, timeout=30)
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    print(f"cut {moment}: rollout {rollout_id} of {NEW} started; {held_site}'s pull held")

    # 1. The held site applied and in flight: cut site-03.
    def held_site_in_flight() -> dict[str, Any] | None:
        shown = rig.rollout(rollout_id)
        return shown if site_states(shown)[held_site] == "in-progress" else None

    wait_for(held_site_in_flight, timeout=BOUND_S, interval=0.1, what=f"{held_site} in flight")
    image = deployments(rig.gateway)[held_site]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == NEW_IMAGE, "applied: the cluster holds the new release"
    cut = rig.fault(kind="cut", site=CUT, seconds=CUT_S)
    if held_site != CUT:
        # Its turn comes once the controller has lost it: the held site is let go then.
        wait_for(
            lambda: sites_shown()[CUT]["health"] == "unreachable",
            timeout=BOUND_S,
            what=f"{CUT} unreachable at the controller",
        )
        assert site_states(rig.rollout(rollout_id))[CUT] == "pending"
        rig.clear(held)

    # 2. Deferred, never failed; the others go on; every wave passes and the rollout waits for the cut site.
    def waiting_for_the_cut_site() -> dict[str, Any] | None:
        shown = rig.rollout(rollout_id)
        assert shown["state"] == "running", f"the rollout ended while {CUT} is cut: {shown['state']}"
        done_waves = all(wave["state"] == "passed" for wave in shown["waves"])
        return shown if done_waves and site_states(shown)[CUT] == "deferred" else None

    waiting = wait_for(waiting_for_the_cut_site, timeout=BOUND_S, interval=0.1, what="every wave to pass without it")
    assert site_of(waiting, CUT)["reason"] == REASON[moment], site_of(waiting, CUT)
    assert waiting["reason"] == f"every wave passed; waiting for 1 deferred ({CUT})", waiting["reason"]
    assert {s: st for s, st in site_states(waiting).items() if s != CUT} == dict.fromkeys(
        (s for s in SITES if s != CUT), "passed"
    )
    print(f"while cut: {CUT} deferred ({site_of(waiting, CUT)['reason']}); rollout {waiting['reason']!r}")

    # The simulator's cut reaches the cluster too: the cut site's kubelets are silent, its nodes lost.
    def cut_nodes_lost() -> dict[str, str] | None:
        ready = rig.nodes_ready()
        return ready if all(ready[node] == "Unknown" for node in CUT_NODES) else None

    lost = wait_for(cut_nodes_lost, timeout=BOUND_S, interval=0.2, what=f"{CUT}'s nodes to be lost")
    print(f"while cut: nodes {lost}")

    def site_told_unreachable() -> bool:
        return (CUT, "site-unreachable", None, "firing") in [n[:4] for n in rig.alert_notices()]

    wait_for(site_told_unreachable, timeout=BOUND_S, what=f"{CUT} told unreachable")

    def boxes_lost() -> list[tuple[str, str | None]] | None:
        answer = rig.controller.client.get("/api/v1/alerts", params={"kind": "box-lost", "state": "firing"})
        assert answer.status_code == 200, answer.text
        found = sorted((a["box"], a["muted"]) for a in answer.json())
        return found if len(found) == len(CUT_NODES) else None

    # Past the wills every box of the cut site is lost; the site's alert inhibits theirs.
    box_lost = wait_for(boxes_lost, timeout=BOUND_S, what=f"{CUT}'s boxes' alerts")
    assert box_lost == [(node, "inhibited") for node in CUT_NODES], box_lost
    still = rig.rollout(rollout_id)
    assert still["state"] == "running", still
    assert site_states(still)[CUT] == "deferred", still

    # Never applied while cut off (before its turn), or applied once (in flight): nothing changed it since.
    generation = int(deployments(rig.gateway)[CUT]["metadata"]["generation"])
    assert generation == before[CUT][1] + (1 if held_site == CUT else 0), generation

    # 3. Heal: the held pull (if still held) is let go, then the cut cleared. The site is caught up by itself.
    if held_site == CUT:
        rig.clear(held)
    rig.clear(cut)

    def done() -> dict[str, Any] | None:
        shown = rig.rollout(rollout_id)
        return shown if shown["state"] == "done" else None

    ended = wait_for(done, timeout=BOUND_S, interval=0.1, what=f"rollout {rollout_id} to be done")
    print(f"healed: rollout {ended['state']}; states seen {rig.states}; sites seen {rig.seen}")
    assert site_states(ended) == dict.fromkeys(SITES, "passed")
    assert rig.states == ["running", "done"], rig.states
    for site, states in rig.seen.items():
        assert not {"failed", "rolled-back"} & set(states), (site, states)
        assert states[-1] == "passed", (site, states)
    # Deferred, then started (never applied) or gated again from its return (applied): never pending again.
    cut_states = rig.seen[CUT]
    assert cut_states[: cut_states.index("deferred") + 1] == UNTIL_DEFERRED[moment], cut_states
    assert set(cut_states[cut_states.index("deferred") + 1 :]) <= {"in-progress", "soaking", "passed"}, cut_states
    assert all("deferred" not in rig.seen[site] for site in SITES if site != CUT), rig.seen

    # Every site runs the release, on the same object changed once: the cut site was not applied again.
    after = deployments(rig.gateway)
    for site in SITES:
        metadata = after[site]["metadata"]
        assert after[site]["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE, site
        assert (metadata["uid"], int(metadata["generation"])) == (before[site][0], before[site][1] + 1), site
    assert set(rig.nodes_ready().values()) == {"True"}, rig.nodes_ready()

    # The audit: the start once; one apply per site, from what it ran before to the new release; no revert.
    audit = rig.controller.client.get("/api/v1/audit", params={"target": f"rollout:{rollout_id}", "limit": 500})
    assert audit.status_code == 200, audit.text
    assert "x-next-cursor" not in audit.headers, "more audit than one page"
    entries = audit.json()
    actions = Counter(str(e["action"]) for e in entries)
    print(f"audit of {rollout_id}: {dict(actions)}")
    assert actions["start-rollout"] == 1, actions
    applies = sorted((e["site"], e["before"], e["after"]) for e in entries if e["action"] == "apply")
    assert applies == sorted((site, ran_before[site], NEW) for site in SITES), applies
    assert actions["revert"] == 0, actions

    # The alerts: one site-unreachable raised and resolved, no box-lost message (the boxes' alerts inhibited by
    # the site's); the rollout's news: the deferral once, the end once.
    def news_delivered() -> bool:
        resolved = (CUT, "site-unreachable", None, "resolved") in [n[:4] for n in rig.alert_notices()]
        return resolved and "done" in [event for event, _ in rig.rollout_news()]

    try:
        wait_for(news_delivered, timeout=BOUND_S, what="the resolve and the rollout's end at the webhook")
    finally:
        print(f"webhook alerts: {[n[:4] for n in rig.alert_notices()]}; rollout news: {rig.rollout_news()}")
    notices = rig.alert_notices()
    assert [n[:4] for n in notices] == [
        (CUT, "site-unreachable", None, "firing"),
        (CUT, "site-unreachable", None, "resolved"),
    ], notices
    assert notices[0][4] == notices[1][4], "one alert, raised and resolved"
    news = rig.rollout_news()
    assert [n for n in news if n[0] == "sites-deferred"] == [("sites-deferred", (CUT,))], news
    assert [n[0] for n in news].count("done") == 1, news
    stored = rig.controller.client.get("/api/v1/alerts", params={"kind": "box-lost"}, timeout=10)
    assert stored.status_code == 200, stored.text
    assert sorted((a["box"], a["state"]) for a in stored.json()) == [(node, "resolved") for node in CUT_NODES]
    print(
        f"checked ({moment}): {CUT} deferred, never failed, caught up with one apply; done with {len(SITES)} sites on "
        f"{NEW_IMAGE}; box-lost alerts {box_lost} while cut, none told, both resolved"
    )
