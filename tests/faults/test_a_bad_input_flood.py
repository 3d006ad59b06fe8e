"""Fault: 10,000 malformed, oversized, wrong-schema and spoofed messages published through a real Mosquitto into
the real controller, mixed into the heartbeats of a small simulated fleet (site real-01, beating every 0.5 s).
Invariant: the ingest stays up and counts each message under its cause (``edgefleet_ingest_messages`` on
/metrics), no refused message moves any box's state, and every real box stays online with its sequence advancing
while the flood runs.

Where the flood goes: topics that are no box's (bad-topic), made-up boxes (unknown-box), the boxes of a site in
the inventory that has no agent running (quiet-01: garbage, oversized, wrong-schema, another box's heartbeat on
its topic, a heartbeat whose site disagrees with the inventory), and a few spoofed heartbeats on the real boxes'
own topics (another real box's, or one claiming another site). Every box's topics take at most
``BOX_BAD_BURST`` refused messages here: past that the ingest drops everything on a box's topics for a while,
its own heartbeats included (docs/reliability.md says why that is the broker ACLs' job). The flood is paced by
what the controller has counted, so that Mosquitto's queue for the controller (1,000 messages) never overflows:
what is judged is the ingest, not the broker's drops."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from edgefleet import topics
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import box_reachability
from edgefleet.cloud.ingesting import BOX_BAD_BURST
from edgefleet.cloud.settings import Settings
from edgefleet.messages import MAX_MESSAGE_BYTES
from simulator.malformed import malformed_payload
from simulator.running import SimulatorOptions, start_in_background
from tests.alerting.wiring.fleets import KEEPALIVE_S, running_controller, write_sites
from tests.cloud.builders import heartbeat, wire
from tests.support.access import as_cli, mint, use_token
from tests.support.peers import Mosquitto, wait_for

REAL = "real-01"
QUIET = "quiet-01"
REAL_BOXES = [f"{REAL}-edge-01", *(f"{REAL}-gpu-{i:02d}" for i in range(1, 4))]
QUIET_BOXES = [f"{QUIET}-edge-01", *(f"{QUIET}-gpu-{i:02d}" for i in range(1, 100))]
FLOOD = 10_000
BATCH = 500
# A sequence no real box reaches in a test: a spoofed heartbeat carrying it must never be taken.
SPOOFED_SEQ = 10**9

Message = tuple[str, bytes, str]  # topic, payload, the cause the ingest must count it under


def _flood(rng: random.Random) -> list[Message]:
    """The 10,000 bad messages, shuffled."""
    now = time.time()
    messages: list[Message] = []
    for i in range(2_000):  # topics under the filters that name no valid box id
        messages.append((f"{topics.PREFIX}/Not_A_Box.{i}/heartbeat", b"{}", "bad-topic"))
    for i in range(2_000):  # boxes in no manifest: listed (within a budget) and counted
        messages.append((topics.heartbeat_topic(f"made-up-{i}"), b"{}", "unknown-box"))
    per_quiet = (FLOOD - 4_000 - len(REAL_BOXES) * 50) // len(QUIET_BOXES)
    assert per_quiet < BOX_BAD_BURST
    for n, box in enumerate(QUIET_BOXES):
        genuine = heartbeat(1, box=box, site=QUIET, sent_at=now, boot_started=now - 600)
        victim = REAL_BOXES[n % len(REAL_BOXES)]
        for k in range(per_quiet):
            variant = k % 6
            if variant == 0:
                messages.append(
                    (
                        topics.heartbeat_topic(box),
                        malformed_payload("random-bytes", genuine, rng=rng, other_box=victim),
                        "malformed",
                    )
                )
            elif variant == 1:
                messages.append(
                    (
                        topics.heartbeat_topic(box),
                        malformed_payload("wrong-shape", genuine, rng=rng, other_box=victim),
                        "malformed",
                    )
                )
            elif variant == 2:
                messages.append(
                    (
                        topics.heartbeat_topic(box),
                        malformed_payload("wrong-schema", genuine, rng=rng, other_box=victim),
                        "schema",
                    )
                )
            elif variant == 3:
                spoof = heartbeat(SPOOFED_SEQ, box=victim, site=REAL, sent_at=now, boot_started=now - 600)
                messages.append((topics.heartbeat_topic(box), wire(spoof), "topic-mismatch"))
            elif variant == 4:
                wrong_site = heartbeat(SPOOFED_SEQ, box=box, site=REAL, sent_at=now, boot_started=now - 600)
                messages.append((topics.heartbeat_topic(box), wire(wrong_site), "site-mismatch"))
            else:
                messages.append((topics.status_topic(box), b"[" + b" " * MAX_MESSAGE_BYTES + b"]", "oversized"))
    for n, box in enumerate(REAL_BOXES):  # within the box's budget of refused messages
        other = REAL_BOXES[(n + 1) % len(REAL_BOXES)]
        for k in range(50):
            if k % 2:
                spoof = heartbeat(SPOOFED_SEQ, box=other, site=REAL, sent_at=now, boot_started=now - 600)
                messages.append((topics.heartbeat_topic(box), wire(spoof), "topic-mismatch"))
            else:
                spoof = heartbeat(SPOOFED_SEQ, box=box, site=QUIET, sent_at=now, boot_started=now - 600)
                messages.append((topics.heartbeat_topic(box), wire(spoof), "site-mismatch"))
    rng.shuffle(messages)
    return messages


@pytest.fixture
def fleet(
    tmp_path: Path, broker: Mosquitto, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Controller, str]]:
    write_sites(tmp_path / "sites", {REAL: len(REAL_BOXES), QUIET: len(QUIET_BOXES)})
    # The simulator plays the real site only: quiet-01's boxes are in the inventory with no agent.
    sim = start_in_background(
        SimulatorOptions(
            sites_dir=tmp_path / "sites",
            broker_url=broker.url,
            listen="127.0.0.1:0",
            keepalive_s=KEEPALIVE_S,
            sites=(REAL,),
            seed=5,
        )
    )
    try:
        settings = Settings(
            broker_url=broker.url, database_url=database_url, sites_dir=tmp_path / "sites", flush_interval_s=0.5
        )
        with running_controller(settings) as running:
            use_token(monkeypatch, mint(running[0]))
            wait_for(lambda: _online(running[0]) == set(REAL_BOXES), timeout=15, what="the real boxes online")
            yield running
    finally:
        sim.stop()


def _online(controller: Controller) -> set[str]:
    now = time.time()
    with controller.state.lock:
        return {
            box
            for box, live in controller.state.boxes.items()
            if box_reachability(controller.state, live, now=now).state == "online"
        }


def _seqs(controller: Controller) -> dict[str, int]:
    with controller.state.lock:
        return {box: controller.state.boxes[box].seq or 0 for box in REAL_BOXES}


def _refused(controller: Controller) -> int:
    counters = controller.ingest.counters
    return sum(
        counters[c]
        for c in (
            "bad-topic",
            "unknown-box",
            "malformed",
            "schema",
            "oversized",
            "topic-mismatch",
            "site-mismatch",
            "rate-limited",
        )
    )


def _metrics(api: str) -> dict[str, float]:
    text = as_cli.get(f"{api}/metrics", timeout=10).text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "edgefleet_ingest_messages"
        for sample in family.samples
        if sample.name == "edgefleet_ingest_messages_total"
    }


def test_a_flood_of_bad_messages_is_counted_by_cause_and_the_real_boxes_stay_online(
    fleet: tuple[Controller, str], broker: Mosquitto
) -> None:
    controller, api = fleet
    messages = _flood(random.Random(19))
    expected = Counter(cause for _, _, cause in messages)
    before_counts = _metrics(api)
    before_seqs = _seqs(controller)
    refused_before = _refused(controller)

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood", protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    offline_seen: set[str] = set()
    try:
        for start in range(0, len(messages), BATCH):
            infos = [publisher.publish(t, p, qos=1) for t, p, _ in messages[start : start + BATCH]]
            for info in infos:
                info.wait_for_publish(timeout=10)
            sent = start + len(infos)
            wait_for(
                lambda n=sent: _refused(controller) - refused_before >= n,
                timeout=15,
                what=f"{sent} counted",
            )
            offline_seen |= set(REAL_BOXES) - _online(controller)
    finally:
        publisher.disconnect()
        publisher.loop_stop()

    # The real boxes beat on: each is heard again after the flood (a second of beats at 0.5 s).
    flooded_seqs = _seqs(controller)
    wait_for(
        lambda: all(s >= flooded_seqs[b] + 2 for b, s in _seqs(controller).items()), timeout=10, what="beats after"
    )
    after = _metrics(api)
    counted = {cause: int(after.get(cause, 0) - before_counts.get(cause, 0)) for cause in expected}
    print(
        f"injected: {len(messages)} bad messages in batches of {BATCH} beside {len(REAL_BOXES)} real boxes"
        f" beating every 0.5 s: {dict(sorted(expected.items()))}\n"
        f"checked: /metrics counted {dict(sorted(counted.items()))}; rate-limited"
        f" {int(after.get('rate-limited', 0) - before_counts.get('rate-limited', 0))};"
        f" real boxes' seq {before_seqs} -> {_seqs(controller)}; offline during the flood: {sorted(offline_seen)}"
    )
    assert controller.ingest.connected
    assert counted == dict(expected)
    assert after.get("rate-limited", 0) == before_counts.get("rate-limited", 0)
    assert after.get("internal-error", 0) == 0
    assert offline_seen == set(), "a real box went offline during the flood"
    assert all(s > before_seqs[b] for b, s in flooded_seqs.items()), "every real box was heard during the flood"
    assert all(s < SPOOFED_SEQ for s in _seqs(controller).values()), "a spoofed heartbeat was taken"
    with controller.state.lock:
        quiet = [controller.state.boxes[b] for b in QUIET_BOXES]
        assert all(live.heartbeat is None and live.last_seen is None for live in quiet), "a refused message was taken"
        assert len(controller.state.unknown) <= 1_000  # UNKNOWN_BURST: the made-up boxes listed within a budget
