"""Test fleets for alerting: a small inventory made in code, boxes whose ``BoxLive`` is set the way the ingest
sets it (fleet.py's documented rules), and ``Scenario``, which runs the pure pipeline (evaluate -> reconcile ->
store -> plan) on a fake clock, second by second, recording every transition and message."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    AlertRules,
    Channel,
    Evaluation,
    FleetTrack,
    Notification,
    NotifierState,
    Routes,
    Silence,
    StoredAlert,
    Transition,
    apply_transitions,
    evaluate,
    plan_notifications,
    reconcile_alerts,
)
from edgefleet.cloud.fleet import BoxLive, FleetState
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, Cluster, GpuSpec, Inventory, Site, SiteKind
from edgefleet.messages import (
    AppReport,
    AppState,
    GpuReport,
    GpuSample,
    Heartbeat,
    HostSample,
)

T0 = 1_800_000_000.0
GIB = 1024**3
OPS = Channel("dingtalk", "ops")
HOST_CLUSTER = ClusterId("test-edge")


def site_boxes(site: str, count: int) -> list[BoxId]:
    return [BoxId(f"{site}-box-{i:02d}") for i in range(count)]


def make_inventory(
    sites: Mapping[str, int],
    *,
    kind: SiteKind = "transfer-center",
    kinds: Mapping[str, SiteKind] | None = None,
    region: str | Callable[[str], str] = "east",
    interval_s: float = 10.0,
    missed_beats: int = 3,
    model: str = "Advantech MIC-770",
) -> Inventory:
    """Sites with ``count`` GPU boxes each (one NVIDIA T4 per box)."""
    out_sites: dict[SiteId, Site] = {}
    out_boxes: dict[BoxId, Box] = {}
    for name, count in sites.items():
        site_id = SiteId(name)
        ids = site_boxes(name, count)
        for box_id in ids:
            out_boxes[box_id] = Box(
                box_id, site_id, "gpu-box", model, GpuSpec(model="NVIDIA T4", count=1, driver_version="550")
            )
        site_kind = (kinds or {}).get(name, kind)
        out_sites[site_id] = Site(
            id=site_id,
            kind=site_kind,
            display_name=f"{name.title()} Center",
            region=region(name) if callable(region) else region,
            timezone="Asia/Shanghai",
            interval_s=interval_s,
            missed_beats=missed_beats,
            boxes=tuple(ids),
            source=f"{name}.yaml",
            # As the loader has it: transfer centers on one KubeEdge host, each central site its own cluster.
            cluster=ClusterId(name) if site_kind == "central" else HOST_CLUSTER,
            node_group=None if site_kind == "central" else name,
        )
    clusters = {
        site.cluster: Cluster(site.cluster, "central" if site.kind == "central" else "kubeedge-host", "ctx", "east", "")
        for site in out_sites.values()
    }
    return Inventory(sites=out_sites, boxes=out_boxes, clusters=clusters)


def merge(*inventories: Inventory) -> Inventory:
    """One inventory of several (sites with different heartbeat settings)."""
    return Inventory(
        sites={k: v for inv in inventories for k, v in inv.sites.items()},
        boxes={k: v for inv in inventories for k, v in inv.boxes.items()},
        clusters={k: v for inv in inventories for k, v in inv.clusters.items()},
    )


def heartbeat(
    box: BoxLive,
    *,
    at: float,
    seq: int,
    boot: str,
    gpu_temperature: float | None = 60.0,
    ecc_corrected: int | None = 0,
    ecc_uncorrected: int | None = 0,
    gpu_available: bool = True,
    disk_free_percent: float | None = 50.0,
    apps: Mapping[str, str] | None = None,
    apps_error: str | None = None,
    skew_s: float = 0.0,
) -> Heartbeat:
    total = 100 * GIB
    host = HostSample(
        disk_total_bytes=total if disk_free_percent is not None else None,
        disk_free_bytes=int(total * disk_free_percent / 100) if disk_free_percent is not None else None,
        disk_path="/data",
    )
    gpus = (
        [
            GpuSample(
                index=0,
                name="NVIDIA T4",
                uuid="GPU-0",
                temperature_c=gpu_temperature,
                ecc_corrected_errors=ecc_corrected,
                ecc_uncorrected_errors=ecc_uncorrected,
            )
        ]
        if gpu_available
        else []
    )
    return Heartbeat(
        schema=1,
        box=box.box,
        site=box.site,
        boot=boot,
        seq=seq,
        sent_at=at + skew_s,
        agent_version="0.1.0",
        interval_s=10.0,
        uptime_s=1000.0,
        host=host,
        gpu=GpuReport(available=gpu_available, reason=None if gpu_available else "no NVML", gpus=gpus),
        apps=AppReport(
            source="file:/etc/edgefleet/apps.json",
            error=apps_error,
            apps=[AppState(name=n, version="1.0", state=s) for n, s in (apps or {"sorter": "running"}).items()],  # type: ignore[arg-type]
        ),
    )


def beat(box: BoxLive, at: float, **readings: Any) -> None:
    """A heartbeat received at ``at``, set on ``box`` as the ingest does (a higher seq; back after a will)."""
    boot = box.boot or f"boot-{box.box}"
    seq = box.seq + 1
    message = heartbeat(box, at=at, seq=seq, boot=boot, **readings)
    box.boot = boot
    box.seq = seq
    box.heartbeat = message
    box.first_seen = box.first_seen if box.first_seen is not None else at
    box.last_seen = at
    box.clock_skew_s = message.sent_at - at


def status(box: BoxLive, state: str, reason: str, at: float) -> None:
    """A status of the box's current boot, taken as the ingest takes it."""
    box.status_boot = box.boot
    box.status_state = state  # type: ignore[assignment]
    box.status_reason = reason
    box.status_session += 1
    box.status_at = at
    box.status_seq = box.seq


@dataclass
class Scenario:
    """The alert loop on a fake clock: boxes beat on their own phase; faults silence them; ``run`` steps."""

    inventory: Inventory
    rules: AlertRules = field(default_factory=AlertRules)
    routes: Routes = field(default_factory=lambda: Routes(default=(OPS,)))
    now: float = T0
    silences: list[Silence] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fleet = FleetState.for_inventory(self.inventory)
        self.track = FleetTrack()
        self.stored: dict[AlertKey, StoredAlert] = {}
        self.notifier = NotifierState()
        self.transitions: list[Transition] = []
        self.messages: list[Notification] = []
        self.evaluation: Evaluation | None = None
        boxes = sorted(self.fleet.boxes)
        # Boxes beat out of phase, spread over one interval, as real agents started at different times do.
        self.phase: dict[BoxId, float] = {b: (i * 0.37) % 1.0 for i, b in enumerate(boxes)}
        self.next_beat: dict[BoxId, float] = {}
        self.silent: set[BoxId] = set()
        self.readings: dict[BoxId, dict[str, Any]] = {}

    def box(self, box: BoxId | str) -> BoxLive:
        return self.fleet.boxes[BoxId(box)]

    def interval(self, box: BoxId) -> float:
        return self.inventory.sites[self.inventory.boxes[box].site].interval_s

    def start(self) -> None:
        """Every box beats once now (its first contact), then on its own phase."""
        for box_id, live in self.fleet.boxes.items():
            beat(live, self.now, **self.readings.get(box_id, {}))
            self.next_beat[box_id] = self.now + self.phase[box_id] * self.interval(box_id) + 0.01
        self.step()

    def cut(self, boxes: Iterable[BoxId | str]) -> None:
        """The boxes stop beating (a WAN cut, a frozen box): no will, the timeout tells."""
        self.silent |= {BoxId(b) for b in boxes}

    def drop(self, boxes: Iterable[BoxId | str]) -> None:
        """The boxes' connections drop: the broker sends their Last Will at once."""
        for b in boxes:
            self.silent.add(BoxId(b))
            status(self.box(b), "offline", "connection-lost", self.now)

    def restore(self, boxes: Iterable[BoxId | str]) -> None:
        """The boxes beat again from now on."""
        for b in boxes:
            box_id = BoxId(b)
            self.silent.discard(box_id)
            self.next_beat[box_id] = self.now

    def site(self, site: str) -> list[BoxId]:
        return list(self.inventory.sites[SiteId(site)].boxes)

    def beats_due(self) -> None:
        for box_id, due in self.next_beat.items():
            if due <= self.now:
                if box_id not in self.silent:
                    beat(self.fleet.boxes[box_id], self.now, **self.readings.get(box_id, {}))
                following = due
                while following <= self.now:
                    following += self.interval(box_id)
                self.next_beat[box_id] = following

    def step(self) -> list[Transition]:
        """One pass of the alert loop at ``now``."""
        self.evaluation = evaluate(self.fleet, self.track, self.rules, now=self.now)
        self.track = self.evaluation.track
        transitions = reconcile_alerts(self.stored, self.evaluation, self.silences, now=self.now)
        self.stored = apply_transitions(self.stored, transitions)
        plan = plan_notifications(transitions, self.routes, self.notifier, now=self.now)
        self.notifier = plan.state
        self.transitions += transitions
        self.messages += plan.messages
        return transitions

    def run(self, seconds: float, *, dt: float = 1.0) -> None:
        end = self.now + seconds
        while self.now + dt <= end + 1e-9:
            self.now += dt
            self.beats_due()
            self.step()

    # --- reading what happened ---

    def active(self, kind: AlertKind | None = None) -> dict[AlertKey, StoredAlert]:
        return {k: a for k, a in self.stored.items() if a.active and (kind is None or k.kind == kind)}

    def told(self, kind: AlertKind, *, channel: Channel = OPS) -> list[tuple[str, AlertKey]]:
        """(notice kind, key) of every notice of ``kind`` sent on ``channel``, in order."""
        return [
            (n.kind, n.alert.key)
            for m in self.messages
            if m.channel == channel
            for n in m.notices
            if n.alert.key.kind == kind
        ]

    def sent(self, channel: Channel = OPS) -> list[Notification]:
        return [m for m in self.messages if m.channel == channel]


def markdown(message: Notification) -> str:
    text = json.loads(message.body)["markdown"]["text"]
    assert isinstance(text, str)
    return text


# What a DingTalk message names on a line of its own, and what it counts in "and N more" lines.
LISTED = re.compile(r"^- (🔴|🟠|🔵|✅) ", re.MULTILINE)
MORE = re.compile(r"^- … and (\d+) more \(", re.MULTILINE)
MORE_SITES = re.compile(r"^#### … and \d+ more sites \((\d+) alerts:", re.MULTILINE)


def mentioned(text: str) -> int:
    """Alerts a DingTalk markdown text names on their own line plus those it counts."""
    return (
        len(LISTED.findall(text))
        + sum(int(n) for n in MORE.findall(text))
        + sum(int(n) for n in MORE_SITES.findall(text))
    )
