"""The ingest checks every message before it touches the fleet state, counts what it drops by cause, logs each
cause once, lists boxes that are in no manifest, and never raises (edgefleet.cloud.ingesting, fed directly)."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
import pytest

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState, UnknownBox
from edgefleet.cloud.ingesting import BOX_BAD_BURST, OUTCOMES, UNKNOWN_BURST, Ingest
from edgefleet.ids import BoxId
from edgefleet.messages import MAX_MESSAGE_BYTES
from tests.cloud.builders import BOX, OTHER_BOX, SITE, T0, heartbeat, inventory, status, wire

HEARTBEAT = topics.heartbeat_topic(BOX)
STATUS = topics.status_topic(BOX)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 100)


@pytest.fixture
def ingest(clock: FakeClock) -> Ingest:
    # Never started: these tests hand it messages the way paho's callback does.
    return Ingest(FleetState.for_inventory(inventory()), "mqtt://127.0.0.1:1", clock=clock)


def test_good_heartbeat_and_status_are_accepted(ingest: Ingest, clock: FakeClock) -> None:
    assert ingest.handle(HEARTBEAT, wire(heartbeat(1))) == "accepted"
    assert ingest.handle(STATUS, wire(status("online"))) == "accepted"
    live = ingest.state.boxes[BOX]
    assert (live.seq, live.last_seen, live.status_state) == (1, clock.now(), "online")


def test_duplicates_and_late_heartbeats_are_counted_not_applied(ingest: Ingest) -> None:
    for seq in (1, 2, 2, 1, 3):
        ingest.handle(HEARTBEAT, wire(heartbeat(seq)))
    assert ingest.state.boxes[BOX].seq == 3
    assert {k: v for k, v in ingest.counters.items() if v} == {"accepted": 3, "duplicate": 1, "stale": 1}


@pytest.mark.parametrize(
    ("topic", "payload", "cause"),
    [
        (HEARTBEAT, b"{not json", "malformed"),
        (HEARTBEAT, b'{"schema": 1, "box": "sh-test-gpu-01"}', "malformed"),
        (HEARTBEAT, wire(heartbeat(1)).replace(b'"seq":1', b'"seq":-4'), "malformed"),
        (HEARTBEAT, wire(heartbeat(1)).replace(b'"seq":1', b'"seq":99999999999999999999'), "malformed"),
        (STATUS, wire(status("online")).replace(b'"session":1', b'"session":18446744073709551615'), "malformed"),
        (STATUS, wire(status("online")).replace(b'"online"', b'"sleeping"'), "malformed"),
        (HEARTBEAT, b"[" + b" " * MAX_MESSAGE_BYTES + b"]", "oversized"),
        (HEARTBEAT, wire(heartbeat(1)).replace(b'"schema":1', b'"schema":2'), "schema"),
        (STATUS, b'{"schema": 2, "whatever": true}', "schema"),
        (HEARTBEAT, wire(heartbeat(1, box=OTHER_BOX)), "topic-mismatch"),
        (STATUS, wire(status("offline", box=OTHER_BOX)), "topic-mismatch"),
        (HEARTBEAT, wire(heartbeat(1, site="bj-test")), "site-mismatch"),
        ("edgefleet/v1/boxes/Not_An_Id/heartbeat", wire(heartbeat(1)), "bad-topic"),
        ("edgefleet/v1/boxes/sh-test-gpu-01/telemetry", wire(heartbeat(1)), "bad-topic"),
        ("edgefleet/v2/boxes/sh-test-gpu-01/heartbeat", wire(heartbeat(1)), "bad-topic"),
    ],
)
def test_bad_message_is_counted_by_cause_and_changes_nothing(
    ingest: Ingest, topic: str, payload: bytes, cause: str
) -> None:
    assert ingest.handle(topic, payload) == cause
    assert ingest.counters[cause] == 1
    assert sum(ingest.counters.values()) == 1
    live = ingest.state.boxes[BOX]
    assert (live.boot, live.status_state, live.dirty, live.last_seen) == (None, None, False, None)


def test_unknown_box_is_listed_with_the_site_it_claims(ingest: Ingest, clock: FakeClock) -> None:
    topic = topics.heartbeat_topic("sh-test-gpu-99")
    assert ingest.handle(topic, wire(heartbeat(1, box="sh-test-gpu-99"))) == "unknown-box"
    clock.advance(10)
    ingest.handle(topic, wire(heartbeat(2, box="sh-test-gpu-99")))
    assert ingest.state.unknown == {
        "sh-test-gpu-99": UnknownBox("sh-test-gpu-99", SITE, T0 + 100, T0 + 110, messages=2, dirty=True)
    }
    assert ingest.counters["unknown-box"] == 2
    assert "sh-test-gpu-99" not in ingest.state.boxes  # nothing else of it is kept


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe garbage", b'{"site": 42}', b'{"site": "NOT AN ID"}', b"[1, 2]", b"x" * (MAX_MESSAGE_BYTES + 1)],
)
def test_unknown_box_with_unreadable_payload_is_still_listed(ingest: Ingest, payload: bytes) -> None:
    assert ingest.handle(topics.status_topic("stray-01"), payload) == "unknown-box"
    assert ingest.state.unknown["stray-01"].claimed_site is None


def test_each_cause_is_logged_once(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgefleet.cloud.ingesting")
    for _ in range(40):  # within a box's budget of refused messages (BOX_BAD_BURST)
        ingest.handle(HEARTBEAT, b"{not json")
        ingest.handle(HEARTBEAT, wire(heartbeat(1, site="bj-test")))
    ingest.handle(HEARTBEAT, wire(heartbeat(1)))
    ingest.handle(HEARTBEAT, wire(heartbeat(1)))  # a duplicate is normal with QoS 1: counted, never logged
    causes = [r.cause for r in caplog.records]  # type: ignore[attr-defined]
    assert causes == ["malformed", "site-mismatch"]
    (first, _) = caplog.records
    assert first.getMessage().startswith("Dropped malformed message from box")
    assert first.box == BOX  # type: ignore[attr-defined]
    assert len(first.detail) <= 200  # type: ignore[attr-defined]
    assert ingest.counters["malformed"] == 40


def test_a_garbage_flood_on_a_box_topic_is_dropped_before_decoding(ingest: Ingest, clock: FakeClock) -> None:
    for _ in range(BOX_BAD_BURST + 5_000):
        ingest.handle(HEARTBEAT, b"{not json")
    assert ingest.counters["malformed"] == BOX_BAD_BURST
    assert ingest.counters["rate-limited"] == 5_000
    assert ingest.handle(HEARTBEAT, wire(heartbeat(1))) == "rate-limited", "the topic's budget is spent"
    clock.advance(1.0)  # it refills: the box's own next heartbeat is taken
    assert ingest.handle(HEARTBEAT, wire(heartbeat(2))) == "accepted"


def test_made_up_boxes_are_listed_within_a_budget(ingest: Ingest, clock: FakeClock) -> None:
    for i in range(UNKNOWN_BURST + 3_000):
        assert ingest.handle(topics.heartbeat_topic(BoxId(f"made-up-{i}")), b"{}") == "unknown-box"
    assert ingest.counters["unknown-box"] == UNKNOWN_BURST + 3_000
    assert len(ingest.state.unknown) <= UNKNOWN_BURST, "past the budget, a made-up box is only counted"


def test_counters_name_every_outcome(ingest: Ingest) -> None:
    assert set(ingest.counters) == set(OUTCOMES)
    assert set(ingest.counters.values()) == {0}
    snapshot = ingest.counters
    ingest.handle(HEARTBEAT, wire(heartbeat(1)))
    assert snapshot["accepted"] == 0  # a copy: reading never races the ingest


def test_callback_never_raises(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    message = mqtt.MQTTMessage(topic=b"edgefleet/v1/boxes/\xff\xfe/heartbeat")
    message.payload = wire(heartbeat(1))
    ingest._on_message(ingest._client, None, message)
    assert ingest.counters["bad-topic"] == 1

    def broken(topic: str, payload: bytes) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest, "handle", broken)
    good = mqtt.MQTTMessage(topic=HEARTBEAT.encode())
    good.payload = wire(heartbeat(1))
    ingest._on_message(ingest._client, None, good)
    assert ingest.counters["internal-error"] == 1


def test_unknown_box_list_is_bounded(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edgefleet.cloud.fleet.MAX_UNKNOWN_BOXES", 3)
    for i in range(10):
        assert ingest.handle(topics.heartbeat_topic(f"stray-{i}"), b"{}") == "unknown-box"
    assert sorted(ingest.state.unknown) == ["stray-0", "stray-1", "stray-2"]
    assert ingest.counters["unknown-box"] == 10
