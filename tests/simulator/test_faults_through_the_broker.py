"""Each fault, injected through the control API, shows on the wire as the controller would see it through the
real Mosquitto: silence without a will (stop), an immediate will and a new session (drop), wills after the
keepalive and recovery for a whole site (cut), hot GPUs (overheat), shifted clocks (skew), garbage (malformed)."""

from __future__ import annotations

import time

import httpx

from edgefleet.errors import MessageRejected
from edgefleet.messages import decode_heartbeat, decode_status
from simulator.running import BackgroundSimulator
from tests.simulator.conftest import EDGE_A, GPU2_A, GPU_A, KEEPALIVE_S, SITE_B, SITE_B_BOXES
from tests.simulator.fleets import Watcher
from tests.support.peers import wait_for


def inject(sim: BackgroundSimulator, **body: object) -> dict[str, object]:
    response = httpx.post(f"{sim.url}/faults", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_stop_silences_heartbeats_but_the_connection_stays_up(sim: BackgroundSimulator, watcher: Watcher) -> None:
    wait_for(lambda: watcher.heartbeats(GPU_A), what="a heartbeat before the stop")
    fault = inject(sim, kind="stop", box=GPU_A)
    time.sleep(0.3)  # a heartbeat published just before the fault may still be on its way
    mark = watcher.mark()
    last_seq = watcher.heartbeats(GPU_A)[-1].seq
    # Past 1.5 x keepalive, when the broker may drop a connection that says nothing: pings keep this one up.
    # (Mosquitto 2.0.11 checks every 5 s, so a broken one could last till 8 s; a test cannot wait that long.)
    time.sleep(2.25 * KEEPALIVE_S)
    assert watcher.heartbeats(GPU_A, since=mark) == []
    assert watcher.statuses(GPU_A, since=mark) == [], "a stopped box keeps its connection: no will"
    assert len(watcher.heartbeats(EDGE_A, since=mark)) >= 5, "the other boxes carry on"
    assert httpx.get(f"{sim.url}/status").json()["boxes"]["stopped"] == 1

    assert httpx.delete(f"{sim.url}/faults/{fault['id']}").status_code == 200
    resumed = wait_for(lambda: watcher.heartbeats(GPU_A, since=mark), what="heartbeats after the stop is cleared")
    assert resumed[0].seq == last_seq + 1, "a hung app makes no heartbeats, so none are missing"
    assert watcher.statuses(GPU_A, since=mark) == [], "the same connection carries them: no will, no new online"


def test_drop_sends_the_will_at_once_then_the_box_is_back_with_a_new_session(
    sim: BackgroundSimulator, watcher: Watcher
) -> None:
    session = watcher.latest_status(GPU_A).session  # type: ignore[union-attr]
    mark = watcher.mark()
    dropped_at = time.monotonic()
    inject(sim, kind="drop", box=GPU_A)

    will = wait_for(lambda: watcher.seen(GPU_A, "status", since=mark), timeout=3, what="the will")[0]
    assert will.at - dropped_at < 1.0
    offline = watcher.statuses(GPU_A, since=mark)[0]
    assert (offline.state, offline.reason, offline.session) == ("offline", "connection-lost", session)

    online = watcher.wait_online([GPU_A], since=mark, timeout=6)[GPU_A]
    assert online.session == session + 1
    assert online.boot == offline.boot, "the agent did not restart, only its connection"
    assert watcher.statuses(EDGE_A, since=mark) == []


def test_cut_site_goes_silent_sends_its_wills_and_recovers_after_the_cut(
    sim: BackgroundSimulator, watcher: Watcher
) -> None:
    # Mosquitto 2.0.11 looks for silent clients only every 5 s, so its own will comes 1.5 x keepalive to
    # 1.5 x keepalive + 5 s into the cut (3-8 s here); whichever comes first, that or the end of the cut
    # (when the box drops its dead connection), every box's will is out by then.
    cut_s = 4.0
    sessions = {b: watcher.latest_status(b).session for b in SITE_B_BOXES}  # type: ignore[union-attr]
    wait_for(lambda: all(watcher.heartbeats(b) for b in SITE_B_BOXES), what="a heartbeat before the cut")
    seq_before = {b: watcher.heartbeats(b)[-1].seq for b in SITE_B_BOXES}
    mark = watcher.mark()
    cut_at = time.monotonic()
    inject(sim, kind="cut", site=SITE_B, seconds=cut_s)
    time.sleep(0.3)  # a heartbeat published just before the cut may still be on its way
    during = watcher.mark()

    def wills() -> list[float] | None:
        found = [watcher.seen(b, "status", since=mark) for b in SITE_B_BOXES]
        return [f[0].at - cut_at for f in found] if all(found) else None

    delays = wait_for(wills, timeout=cut_s + 2, what="a will from every box of the cut site")
    assert all(KEEPALIVE_S <= d < cut_s + 1.5 for d in delays), f"no FIN at the cut, a will by its end: {delays}"
    assert [s for s in watcher.seen(since=during) if s.box in SITE_B_BOXES and s.at - cut_at < min(delays)] == []
    for box in SITE_B_BOXES:
        will = watcher.statuses(box, since=mark)[0]
        assert (will.state, will.reason, will.session) == ("offline", "connection-lost", sessions[box])

    online = watcher.wait_online(SITE_B_BOXES, since=mark, timeout=cut_s + 6)
    back_after = [
        next(s.at for s in watcher.seen(b, "status", since=mark) if decode_status(s.payload).state == "online") - cut_at
        for b in SITE_B_BOXES
    ]
    assert all(cut_s <= d < cut_s + 4 for d in back_after), back_after
    assert all(online[b].session == sessions[b] + 1 for b in SITE_B_BOXES)
    # The heartbeats made during the cut were kept and flushed after the reconnect: no gap in the sequence.
    wait_for(
        lambda: all(len(watcher.heartbeats(b, since=mark)) >= cut_s / 0.5 for b in SITE_B_BOXES),
        timeout=5,
        what="the buffered heartbeats",
    )
    for box in SITE_B_BOXES:
        seqs = sorted({hb.seq for hb in watcher.heartbeats(box, since=mark)})
        assert seqs[0] <= seq_before[box] + 1, f"{box}: {seqs}"
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"{box}: {seqs}"
    assert watcher.statuses(EDGE_A, since=mark) == [], "the other site was not cut"


def test_overheat_holds_one_gpu_at_the_temperature_until_cleared(sim: BackgroundSimulator, watcher: Watcher) -> None:
    fault = inject(sim, kind="overheat", box=GPU2_A, gpu=1, temperature_c=97.5, seconds=60)
    mark = watcher.mark()
    hot = wait_for(lambda: watcher.heartbeats(GPU2_A, since=mark), what="a heartbeat of the hot box")[0]
    assert hot.gpu.gpus[1].temperature_c == 97.5
    assert "hw-thermal-slowdown" in hot.gpu.gpus[1].throttle_reasons
    assert hot.gpu.gpus[0].temperature_c is not None
    assert hot.gpu.gpus[0].temperature_c < 90

    cleared = httpx.delete(f"{sim.url}/faults", params={"box": GPU2_A}).json()["cleared"]
    assert [f["id"] for f in cleared] == [fault["id"]]
    time.sleep(0.3)  # one published before the clear may still be on its way
    mark = watcher.mark()
    wait_for(lambda: len(watcher.heartbeats(GPU2_A, since=mark)) >= 2, what="heartbeats after the clear")
    assert all(hb.gpu.gpus[1].temperature_c < 90 for hb in watcher.heartbeats(GPU2_A, since=mark))  # type: ignore[operator]


def test_skew_shifts_sent_at_of_that_box_only(sim: BackgroundSimulator, watcher: Watcher) -> None:
    inject(sim, kind="skew", box=GPU_A, offset_s=-120.0)
    time.sleep(0.3)
    mark = watcher.mark()
    wait_for(lambda: len(watcher.seen(GPU_A, "heartbeat", since=mark)) >= 2, what="skewed heartbeats")
    for seen in watcher.seen(GPU_A, "heartbeat", since=mark):
        assert abs(decode_heartbeat(seen.payload).sent_at - (seen.wall - 120.0)) < 2.0
    for seen in watcher.seen(EDGE_A, "heartbeat", since=mark):
        assert abs(decode_heartbeat(seen.payload).sent_at - seen.wall) < 2.0


def test_malformed_sends_each_kind_of_garbage_then_valid_heartbeats_again(
    sim: BackgroundSimulator, watcher: Watcher
) -> None:
    mark = watcher.mark()
    inject(sim, kind="malformed", box=GPU_A, count=4, variant="mixed")

    def read() -> list[str]:
        """Each payload since the mark as the ingest would take it: a refusal's cause, or the box it claims."""
        out = []
        for seen in watcher.seen(GPU_A, "heartbeat", since=mark):
            try:
                out.append(decode_heartbeat(seen.payload).box)
            except MessageRejected as exc:
                out.append(f"refused: {exc.cause}")
        return out

    def garbage_then_valid() -> list[str] | None:
        found = read()
        spoiled = [x for x in found if x != GPU_A]
        return found if len(spoiled) == 4 and found[-1] == GPU_A else None

    found = wait_for(garbage_then_valid, what="four spoiled payloads, then a valid heartbeat")
    spoiled = [x for x in found if x != GPU_A]
    assert spoiled == ["refused: malformed", "refused: malformed", "refused: schema", "site-01-gpu-02"]
    assert httpx.get(f"{sim.url}/faults").json()["faults"] == [], "the fault ended once its payloads were sent"
