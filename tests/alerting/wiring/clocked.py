"""The controller's alerting parts, wired as the controller wires them, on a fake clock: ``AlertLoop`` (passes),
``AlertCommands`` (what the API calls) and ``DeliveryWorker`` (delivery, with a sender that records instead of
sending), over a real SQLite store. ``ClockedController`` serves them through the API (``deps.FleetReader``) with a real persister. Nothing runs by
itself: ``run`` moves the clock, lets the boxes that are due
beat (as the ingest would set them), ticks the loop and delivers, so a test reads exactly what was told when.

The real-time wiring tests (``test_lost_contact_is_told_once`` and the like) keep the broker, the simulator and the
receivers; this is for what does not depend on real time: lifecycle, muting, grouping, acknowledgement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefleet.clock import FakeClock
from edgefleet.cloud.access.audit_log import AuditLog
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.alerting.commands import AlertCommands
from edgefleet.cloud.alerting.config import ChannelTarget, load_notifications
from edgefleet.cloud.alerting.delivering import DeliveryWorker
from edgefleet.cloud.alerting.looping import AlertLoop, PassReport
from edgefleet.cloud.alerting.notifying import Notification
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.fleet import FleetState, HealthPoint, InventoryChange
from edgefleet.cloud.hearing import Hearing, IngestStats
from edgefleet.cloud.k8s.gateway import ClusterGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.leading import Holder, SoleLeadership
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.persisting import Persister
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.saving import SavingHealth
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId
from edgefleet.inventory import Inventory
from tests.alerting.builders import beat, status
from tests.cloud.api.memory import MemoryIngest


@dataclass
class RecordingSender:
    """Takes every notification as a receiver that answers 2xx would."""

    delivered: list[Notification] = field(default_factory=list)

    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        self.delivered.append(notification)


def write_notifications(path: Path, *, group_interval: str = "1s", repeat_interval: str = "1h") -> Path:
    """One webhook channel that takes every alert."""
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: clocked}\nspec:\n"
        f"  timing: {{groupWait: 0s, groupInterval: {group_interval}, repeatInterval: {repeat_interval}}}\n"
        "  channels:\n    - {name: tickets, kind: webhook, url: 'http://127.0.0.1:9/hooks'}\n"
        "  routes:\n    - channels: [tickets]\n"
    )
    return path


class ClockedAlerting:
    """Alerting for ``inventory`` on ``database_url``; ``notifications`` None runs it without sending."""

    def __init__(
        self,
        inventory: Inventory,
        database_url: str,
        notifications: Path | None,
        *,
        restored: FleetState | None = None,
        start: float | None = None,
    ) -> None:
        """``restored``: the fleet state a restarted controller loads (copied); ``start``: the clock's start."""
        self.clock = FakeClock() if start is None else FakeClock(start)
        self.fleet = FleetState.for_inventory(inventory)
        if restored is not None:
            for box, live in restored.boxes.items():
                mine = self.fleet.boxes[box]
                mine.boot, mine.seq, mine.last_seen, mine.first_seen = (
                    live.boot,
                    live.seq,
                    live.last_seen,
                    live.first_seen,
                )
        self.store = Store(database_url)
        upgrade_schema(self.store)
        config = load_notifications(notifications, inventory=inventory) if notifications is not None else None
        self.sender = RecordingSender()
        # What the ingest measures of its own hearing; tests set it to play an outage or a flood.
        self.ingest = IngestStats(subscribed=True, since_last_message_s=0.0, lag_s=0.0, busy=0.05)
        self.loop = AlertLoop(self.fleet, self.store, clock=self.clock, config=config, stats=lambda: self.ingest)
        self.delivery = DeliveryWorker(self.loop.outbox, config, clock=self.clock, senders={"webhook": self.sender})
        self.service = AlertCommands(self.loop)
        self.silent: set[BoxId] = set()
        self.passes: list[PassReport] = []

    def close(self) -> None:
        self.loop.stop()
        self.delivery.stop()
        self.store.close()

    def interval(self, box: BoxId) -> float:
        inventory = self.fleet.inventory
        return inventory.sites[inventory.boxes[box].site].interval_s

    def beat_all(self) -> None:
        """Every box that is not silent beats now."""
        with self.fleet.lock:
            for box, live in self.fleet.boxes.items():
                if box not in self.silent:
                    beat(live, self.clock.now())

    def stop(self, boxes: Iterable[str]) -> None:
        """The boxes stop beating, without a will (a frozen box): the timeout tells."""
        self.silent |= {BoxId(b) for b in boxes}

    def drop(self, boxes: Iterable[str]) -> None:
        """The boxes' connections drop: their Last Will ("offline") arrives now."""
        with self.fleet.lock:
            for b in boxes:
                self.silent.add(BoxId(b))
                status(self.fleet.boxes[BoxId(b)], "offline", "connection-lost", self.clock.now())

    def restore(self, boxes: Iterable[str]) -> None:
        """The boxes beat again (from the next step), and say they are online."""
        with self.fleet.lock:
            for b in boxes:
                self.silent.discard(BoxId(b))
                live = self.fleet.boxes[BoxId(b)]
                beat(live, self.clock.now())
                status(live, "online", "connected", self.clock.now())

    def tick(self) -> PassReport | None:
        """The scheduler's tick now, then a delivery round (what the woken worker does)."""
        report = self.loop.tick()
        if report is not None:
            self.passes.append(report)
        self.delivery.deliver()
        return report

    def run(self, seconds: float, *, dt: float = 0.5) -> None:
        """``seconds`` of time in steps of ``dt``: boxes beat every step (more often than any interval), the loop
        ticks."""
        steps = round(seconds / dt)
        for _ in range(steps):
            self.clock.advance(dt)
            self.beat_all()
            self.tick()

    # --- what was told ------------------------------------------------------------------------------------

    def notices(self, *, box: str | None = None, kind: str | None = None) -> list[tuple[str, str, str | None]]:
        """(notice, kind, box) of every alert in every delivered message, in order."""
        found = []
        for message in self.sender.delivered:
            for alert in json.loads(message.body)["alerts"]:
                if (box is None or alert["box"] == box) and (kind is None or alert["kind"] == kind):
                    found.append((str(alert["notice"]), str(alert["kind"]), alert["box"]))
        return found

    def alert_of(self, box: str, kind: str = "box-lost") -> dict[str, Any]:
        """The newest stored alert of ``box`` and ``kind``, as a dict of its fields that tests read."""
        for alert in self.service.list_alerts(kind=None):
            if alert.key.box == box and str(alert.key.kind) == kind:
                return {"id": alert.id, "state": alert.state, "muted": alert.muted, "muted_by": alert.muted_by}
        raise AssertionError(f"no {kind} alert of {box} stored")


@dataclass
class ClockedController:
    """What the API reads (``deps.FleetReader``), over the clocked alerting parts and a real persister."""

    running: ClockedAlerting
    persister: Persister
    ingest: MemoryIngest = field(default_factory=MemoryIngest)

    @property
    def state(self) -> FleetState:
        return self.running.fleet

    @property
    def clock(self) -> FakeClock:
        return self.running.clock

    @property
    def store(self) -> Store:
        return self.running.store

    @property
    def tokens(self) -> TokenStore:
        """The API tokens in the same (migrated) database; tests mint theirs with ``tests.support.access``."""
        return TokenStore(self.running.store)

    @property
    def alerting(self) -> AlertService:
        return self.running.service

    @property
    def sessions(self) -> None:
        """No console sign-in here: the tests call with tokens."""
        return None

    @property
    def local_users(self) -> None:
        return None

    @property
    def audit_log(self) -> AuditLog:
        return self.audit

    def __post_init__(self) -> None:
        # The audit log in the alerting's own database, as the controller keeps it.
        self.audit = AuditLog(self.running.store)

    @property
    def hearing(self) -> Hearing:
        return self.running.loop.hearing

    @property
    def leadership(self) -> SoleLeadership:
        return SoleLeadership(None, Holder("test", 1, 0.0), None)

    @classmethod
    def build(cls, inventory: Inventory, database_url: str) -> ClockedController:
        """Alerting without notifications, and a persister (flushed only when a test calls ``flush``)."""
        running = ClockedAlerting(inventory, database_url, None)
        persister = Persister(
            running.fleet,
            running.store,
            clock=running.clock,
            interval_s=1.0,
            history_retention_s=3600.0,
            history_max_points=100,
        )
        return cls(running, persister)

    def saving(self) -> SavingHealth:
        # As ``Controller.saving`` builds it.
        return SavingHealth(
            fleet=self.persister.saving,
            alerts=self.running.loop.saving,
            dropped_samples=self.persister.stats.dropped_samples,
        )

    def box_history(self, box: BoxId, since: float) -> list[HealthPoint]:
        return []

    @property
    def gateway(self) -> ClusterGateway | None:
        return None

    @property
    def restarts(self) -> Restarts | None:
        return None

    def cluster_health(self) -> list[ClusterHealth]:
        # No gateway here: every cluster of the inventory, never probed.
        return [
            ClusterHealth(c.id, c.context) for c in sorted(self.state.inventory.clusters.values(), key=lambda c: c.id)
        ]

    def reload_inventory(self, *, expect_version: str | None = None) -> InventoryChange:
        raise NotImplementedError
