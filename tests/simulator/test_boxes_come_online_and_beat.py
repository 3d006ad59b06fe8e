"""Every simulated box connects over its own MQTT connection, says "online" (retained), sends valid heartbeats
with a rising sequence, reports its inventory's GPUs and apps, and says "offline" when the simulator stops."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import httpx

from simulator.cluster.central import APPS as CENTRAL_APPS
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from tests.simulator.conftest import ALL_BOXES, EDGE_A, GPU2_A, GPU_A, INTERVAL_S
from tests.simulator.fleets import Watcher
from tests.support.peers import Mosquitto, wait_for


def test_every_box_says_online_once_retained_with_its_boot_and_site(
    sim: BackgroundSimulator, watcher: Watcher, broker: Mosquitto
) -> None:
    for box in ALL_BOXES:
        status = watcher.latest_status(box)
        assert status is not None
        assert (status.state, status.reason, status.site) == ("online", "connected", box.rsplit("-", 2)[0])
        assert status.session == 1
    assert len({watcher.latest_status(b).boot for b in ALL_BOXES}) == len(ALL_BOXES)  # type: ignore[union-attr]
    late = Watcher(broker.port)
    try:
        wait_for(
            lambda: {s.box for s in late.seen(channel="status") if s.retained} >= set(ALL_BOXES),
            what="the retained status of every box, for a subscriber that came later",
        )
    finally:
        late.close()


def test_heartbeats_flow_with_seq_rising_one_by_one(sim: BackgroundSimulator, watcher: Watcher) -> None:
    wait_for(lambda: all(len(watcher.heartbeats(b)) >= 3 for b in ALL_BOXES), what="3 heartbeats from every box")
    for box in ALL_BOXES:
        beats = watcher.heartbeats(box)
        seqs = [hb.seq for hb in beats]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{box}: {seqs}"
        assert {hb.boot for hb in beats} == {watcher.latest_status(box).boot}  # type: ignore[union-attr]
        assert all(hb.interval_s == INTERVAL_S for hb in beats)


def test_heartbeats_carry_the_inventorys_gpus_and_the_roles_apps(sim: BackgroundSimulator, watcher: Watcher) -> None:
    wait_for(lambda: all(watcher.heartbeats(b) for b in (EDGE_A, GPU_A, GPU2_A, "central-01-cp-01")), what="heartbeats")
    edge, gpu, gpu2, cluster = (watcher.heartbeats(b)[-1] for b in (EDGE_A, GPU_A, GPU2_A, "central-01-cp-01"))
    assert (edge.gpu.available, edge.gpu.reason) == (False, "no GPU in this box")
    assert cluster.gpu.available is False
    # A central node runs the company's own workloads (simulator.cluster.central), none of the fleet's apps.
    assert {a.name for a in cluster.apps.apps} <= {app.name for app in CENTRAL_APPS}
    assert [g.index for g in gpu.gpu.gpus] == [0]
    assert [g.index for g in gpu2.gpu.gpus] == [0, 1]
    assert {g.name for g in gpu2.gpu.gpus} == {"NVIDIA L4"}
    assert gpu2.gpu.driver_version == "550.90.07"

    # Their apps are the pods their cluster's controllers run on their nodes, Running once the images are pulled.
    def running(box: str, app: str) -> bool:
        apps = watcher.heartbeats(box)[-1].apps
        return [(a.name, a.state) for a in apps.apps] == [(app, "running")]

    wait_for(lambda: running(EDGE_A, "scan-upload") and running(GPU_A, "sorting-recognition"), what="apps running")
    edge, gpu = (watcher.heartbeats(b)[-1] for b in (EDGE_A, GPU_A))
    assert edge.apps.source == "metaserver:http://127.0.0.1:10550"
    assert edge.apps.apps[0].detail is not None
    assert edge.apps.apps[0].detail.startswith("pod edgefleet/scan-upload-site-01-")
    assert (
        gpu.apps.apps[0].detail
        == "pod edgefleet/sorting-recognition-site-01-" + gpu.apps.apps[0].detail.rsplit("-", 1)[1]
    )
    assert edge.host.memory_total_bytes is not None
    assert gpu.host.memory_total_bytes is not None
    assert gpu.host.memory_total_bytes > edge.host.memory_total_bytes


def test_status_api_counts_what_runs(sim: BackgroundSimulator) -> None:
    status = httpx.get(f"{sim.url}/status").json()
    assert status["boxes"] == {"total": len(ALL_BOXES), "connected": len(ALL_BOXES), "stopped": 0, "cut": 0}
    assert [s["site"] for s in status["sites"]] == ["central-01", "site-01", "site-02"]
    assert status["heartbeats"]["sent"] > 0
    assert status["process"]["rss_bytes"] > 0
    one = httpx.get(f"{sim.url}/status", params={"site": "site-01"}).json()
    assert [row["box"] for row in one["box_list"]] == [EDGE_A, GPU_A, GPU2_A]
    assert all(row["connected"] and row["session"] == 1 for row in one["box_list"])


def test_a_clean_stop_says_offline_shutdown_for_every_box(options: SimulatorOptions, watcher: Watcher) -> None:
    running = start_in_background(options)
    watcher.wait_online(ALL_BOXES)
    mark = watcher.mark()
    running.stop()
    wait_for(lambda: all(watcher.statuses(b, since=mark) for b in ALL_BOXES), what="a status from every box")
    for box in ALL_BOXES:
        last = watcher.statuses(box, since=mark)[-1]
        assert (last.state, last.reason) == ("offline", "shutdown")


def test_boxes_come_back_after_a_broker_restart(sim: BackgroundSimulator, broker: Mosquitto, watcher: Watcher) -> None:
    before = {b: watcher.latest_status(b).session for b in ALL_BOXES}  # type: ignore[union-attr]
    broker.restart()
    # The watcher's own paho loop reconnects too (it resubscribes in on_connect).
    mark = watcher.mark()
    online = watcher.wait_online(ALL_BOXES, since=mark, timeout=15)
    assert all(online[b].session > before[b] for b in ALL_BOXES)
    wait_for(lambda: all(watcher.heartbeats(b, since=mark) for b in ALL_BOXES), what="heartbeats after the restart")


def test_loss_drops_heartbeats_before_publishing_and_jitter_varies_the_gaps(
    options: SimulatorOptions, watcher: Watcher
) -> None:
    def gaps_in_seq(since: int) -> int:
        return sum(
            b.seq - a.seq - 1 for box in ALL_BOXES for a, b in itertools.pairwise(watcher.heartbeats(box, since=since))
        )

    running = start_in_background(replace(options, loss=0.3, jitter=0.2))
    try:
        # Once every box reports its apps running, no pod changes, and only the schedule sends heartbeats (a box
        # whose pods change sends one at once, between the scheduled ones).
        wait_for(_apps_settled(watcher), timeout=30, what="every box to report its apps running")
        since = watcher.mark()
        wait_for(lambda: len(watcher.heartbeats(since=since)) >= 24, what="24 heartbeats")
        # Which beats are lost is chance: a loss before a box's first or after its last received beat leaves no gap
        # in what was seen, so keep listening until one does (at 30 % loss, within a few more beats).
        wait_for(
            lambda: gaps_in_seq(since),
            timeout=30,
            what="a lost heartbeat to leave a gap in the sequence, as a real loss would",
        )
        lost = httpx.get(f"{running.url}/status").json()["heartbeats"]["lost"]
    finally:
        running.stop()
    assert lost > 0
    spacing = []
    for box in ALL_BOXES:
        for a, b in itertools.pairwise(watcher.heartbeats(box, since=since)):
            if b.seq == a.seq + 1:
                spacing.append(b.sent_at - a.sent_at)
    # The 10th and 90th percentiles: a loop stalled by another test on the shared cores may delay a beat or two.
    spacing.sort()
    low, high = spacing[len(spacing) // 10], spacing[len(spacing) * 9 // 10]
    assert low >= INTERVAL_S * 0.8 - 0.05, spacing
    assert high <= INTERVAL_S * 1.2 + 0.05, spacing
    assert high - low > INTERVAL_S * 0.1, "jittered, not a metronome"


def _apps_settled(watcher: Watcher) -> Callable[[], bool]:
    def check() -> bool:
        latest = {}
        for beat in watcher.heartbeats():
            latest[beat.box] = beat
        return set(latest) >= set(ALL_BOXES) and all(
            app.state == "running" for beat in latest.values() for app in beat.apps.apps
        )

    return check
