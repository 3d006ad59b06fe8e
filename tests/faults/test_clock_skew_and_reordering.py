"""Fault: three boxes' agents (the real BoxReporter and BoxLink, through a real Mosquitto into the real controller)
with clocks three hours ahead, three hours behind and right, each sending every heartbeat out of order and twice
(seq n+1, n, n+1, n). Invariant: no box's sequence or last-seen time ever moves backwards, every box stays online,
the controller keeps hearing (no "behind" from a box's own clock), and the only alerts are the two boxes' true
clock-skew alerts: no box-lost, flapping or site alert. Runs on SQLite and PostgreSQL.

The pure rules under this (any order of messages ends in the newest state; replays change nothing; a clock that
ran ahead and was corrected never locks a box) are property-tested in tests/cloud/test_newest_message_wins.py and
tests/cloud/test_box_clock_and_counters_never_lock_it.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.agent.link import BoxLink, BrokerAddress
from edgefleet.agent.reporting import BoxReporter
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import box_reachability
from edgefleet.cloud.settings import Settings
from edgefleet.messages import AppReport, GpuReport, HostSample
from tests.alerting.wiring.fleets import INTERVAL_S, WEBHOOK_PATH, running_controller, write_notifications, write_sites
from tests.support.access import as_cli, mint, use_token
from tests.support.peers import Mosquitto, wait_for
from tests.support.receivers import RecordingReceiver, recording_receiver

SITE = "skew-01"
HOURS = 3 * 3600.0
OFFSETS = {f"{SITE}-edge-01": HOURS, f"{SITE}-gpu-01": -HOURS, f"{SITE}-gpu-02": 0.0}
PAIRS = 6  # each pair is two heartbeats, sent four times out of order, one pair every two intervals


class OffsetClock:
    """The box's own clock: the machine's, ``offset_s`` off."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return time.time() + self.offset_s

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def links(broker: Mosquitto) -> Iterator[dict[str, BoxLink]]:
    made = {}
    for box, offset in OFFSETS.items():
        reporter = BoxReporter(box, SITE, interval_s=INTERVAL_S, clock=OffsetClock(offset))
        made[box] = BoxLink(reporter, BrokerAddress.parse(broker.url), keepalive_s=2)
        made[box].connect_async()
        made[box].client.loop_start()
    try:
        wait_for(lambda: all(link.connected for link in made.values()), what="the boxes connected")
        yield made
    finally:
        for link in made.values():
            link.stop()
            link.disconnect()
            link.client.loop_stop()


@pytest.fixture
def controller(
    tmp_path: Path, broker: Mosquitto, database_url: str, links: dict[str, BoxLink], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Controller, str, RecordingReceiver]]:
    write_sites(tmp_path / "sites", {SITE: len(OFFSETS)})
    with recording_receiver() as receiver:
        notifications = write_notifications(tmp_path / "notifications.yaml", webhook=receiver.url, alertmanager=None)
        settings = Settings(
            broker_url=broker.url,
            database_url=database_url,
            sites_dir=tmp_path / "sites",
            flush_interval_s=0.5,
            notifications_file=notifications,
        )
        with running_controller(settings) as (running, api):
            use_token(monkeypatch, mint(running))
            yield running, api, receiver


def _beat(link: BoxLink) -> None:
    host = HostSample(cpu_percent=5.0, memory_total_bytes=100, memory_available_bytes=40)
    link.send(link.reporter.heartbeat(host, GpuReport(available=False, reason="none"), AppReport(source="none")))


def _observe(controller: Controller) -> dict[str, tuple[int, float, str]]:
    now = time.time()
    with controller.state.lock:
        return {
            box: (live.seq or 0, live.last_seen or 0.0, box_reachability(controller.state, live, now=now).state)
            for box, live in controller.state.boxes.items()
        }


def test_skewed_clocks_duplicates_and_reordering_never_move_state_back_or_raise_false_alerts(
    controller: tuple[Controller, str, RecordingReceiver], links: dict[str, BoxLink]
) -> None:
    running, api, receiver = controller
    for link in links.values():  # the boxes' first heartbeats: every box online before the fault is judged
        _beat(link)
    wait_for(lambda: all(s == "online" for _, _, s in _observe(running).values()), timeout=15, what="boxes online")
    counters_before = running.ingest.counters
    seen = _observe(running)
    hearing: set[str] = set()
    offline: set[str] = set()
    backwards: list[str] = []
    sent = 0
    last_seq: dict[str, int] = {}
    for _ in range(PAIRS):
        round_ends = time.monotonic() + 2 * INTERVAL_S
        for link in links.values():
            first = link.reporter.heartbeat(
                HostSample(cpu_percent=5.0), GpuReport(available=False, reason="none"), AppReport(source="none")
            )
            second = link.reporter.heartbeat(
                HostSample(cpu_percent=5.0), GpuReport(available=False, reason="none"), AppReport(source="none")
            )
            last_seq[link.reporter.box] = second.seq
            for heartbeat in (second, first, second, first):
                link.send(heartbeat)
                sent += 1
        while time.monotonic() < round_ends:  # watch the state until the next pair is due
            now = _observe(running)
            for box, (seq, last_seen, state) in now.items():
                if seq < seen[box][0] or last_seen < seen[box][1]:
                    backwards.append(f"{box}: {seen[box][:2]} -> {(seq, last_seen)}")
                if state != "online":
                    offline.add(box)
            seen = now
            hearing.add(running.hearing.state)
            time.sleep(0.05)
    wait_for(lambda: all(_observe(running)[b][0] == s for b, s in last_seq.items()), timeout=10, what="last seq taken")
    wait_for(lambda: len(_active(api)) >= 2, timeout=10, what="the clock-skew alerts")
    wait_for(lambda: not running.delivery.outbox.backlog(), timeout=10, what="an empty outbox")

    counters = running.ingest.counters
    taken = {o: counters[o] - counters_before[o] for o in ("accepted", "clock-skew-clamped", "duplicate", "stale")}
    active = _active(api)
    told = [r for r in receiver.received if r.path == WEBHOOK_PATH]
    print(
        f"injected: clocks {', '.join(f'{b} {o / 3600:+g} h' for b, o in OFFSETS.items())}; {sent} heartbeats sent"
        f" as n+1, n, n+1, n in {PAIRS} pairs a box\n"
        f"checked: outcomes {taken}; nothing moved back ({len(backwards)}); offline seen: {sorted(offline)};"
        f" hearing states {sorted(hearing)}; active alerts {sorted(active)}; webhook messages {len(told)}"
    )
    assert backwards == []
    assert offline == set()
    assert hearing == {"hearing"}
    assert active == {(f"{SITE}-edge-01", "clock-skew"), (f"{SITE}-gpu-01", "clock-skew")}
    assert told == [], "a lost-contact alert was told"
    # Of each n+1, n, n+1, n: n+1 taken, then n stale, n+1 a duplicate, n stale again.
    assert taken["accepted"] + taken["clock-skew-clamped"] == sent // 4
    assert taken["clock-skew-clamped"] >= PAIRS, "the box ahead was taken with its time clamped"
    assert taken["stale"] >= sent // 2
    assert taken["duplicate"] >= sent // 4


def _active(api: str) -> set[tuple[str, str]]:
    response = as_cli.get(f"{api}/api/v1/alerts", params={"site": SITE}, timeout=10)
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()
    return {(a["box"], a["kind"]) for a in alerts if a["state"] != "resolved"}
