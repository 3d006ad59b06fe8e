"""Central clusters' Kubernetes Events into the notification channels (DingTalk robots, webhooks): the shell over
``cluster_events``. Built and started by the controller, which holds the database's lock (so one controller sends).

Each central cluster whose policy has event rules is watched through the gateway in a thread of its own:
``ClusterGateway.watch`` lists the Events, then watches from the list's resourceVersion and lists again on 410;
the thread keeps the cluster's Events in memory (what the list and the watch say, deletions included). A pass
every ``PASS_S`` plans the groups ready to send (``plan_event_groups``), routes each by the ``events:`` routes of
the notification file in force (``routes.event_channels``, by level and the cluster's region), accepts the
messages into the alert outbox (whose delivery worker sends them, with retries and DingTalk's rate) and then
records the groups' keys as told (table ``cluster_event_told``).

Restarts: what was told is in the database, and the first list of a restarted controller holds every Event the
cluster still has (the API server keeps an Event an hour after its last repeat), so nothing told is told again
and nothing that happened while the controller was down is missed. A crash between the outbox and the told
record plans the same group again, with the same message id, which the outbox keeps once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Final

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Field, SQLModel

from edgefleet.clock import Clock
from edgefleet.cloud.alerting.config import NotificationConfig
from edgefleet.cloud.alerting.notifying import Notification
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.alerting.routes import event_channels
from edgefleet.cloud.cluster_events import (
    GROUP_WAIT_S,
    REPEAT_S,
    ClusterEvent,
    EventGroup,
    plan_event_groups,
    read_event,
    render_event_dingtalk,
    render_event_webhook,
)
from edgefleet.cloud.k8s.errors import ClusterError
from edgefleet.cloud.k8s.gateway import Changed, ClusterGateway, Listed
from edgefleet.cloud.scheduling import start_interval_job
from edgefleet.cloud.store import Store
from edgefleet.ids import ClusterId
from edgefleet.inventory import Cluster

log = logging.getLogger(__name__)

PASS_S: Final = 5.0
JOB_ID: Final = "cluster-events"
# A watch that failed (the cluster unreachable) is started again after this long, listing first.
RETRY_S: Final = 10.0
# Told keys are kept past the longest an Event can matter: its period's repeat plus the API server's TTL.
TOLD_KEEP_S: Final = REPEAT_S + 3600.0


class ClusterEventToldRow(SQLModel, table=True):
    __tablename__ = "cluster_event_told"

    cluster: str = Field(primary_key=True, max_length=63)
    # An Event's uid and repeat period (``ClusterEvent.told_key``).
    key: str = Field(primary_key=True, max_length=100)
    told_at: float


_TOLD: Final[sa.Table] = ClusterEventToldRow.__table__  # type: ignore[attr-defined]
TABLES: Final = [_TOLD]


class ToldEvents:
    """The Events already told, per cluster, in the database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_schema(self) -> None:
        """For tests of this store alone; the controller migrates instead."""
        with self.store.transaction("create the told events table") as connection:
            SQLModel.metadata.create_all(connection, tables=TABLES)

    def load(self, cluster: ClusterId) -> set[str]:
        with self.store.transaction("read the told events") as connection:
            rows = connection.execute(sa.select(_TOLD.c.key).where(_TOLD.c.cluster == cluster)).all()
        return {r.key for r in rows}

    def record(self, cluster: ClusterId, keys: Iterable[str], *, now: float) -> None:
        rows = [{"cluster": cluster, "key": k, "told_at": now} for k in keys]
        if not rows:
            return
        with self.store.transaction("record told events", fenced=True) as connection:
            known = {
                r.key
                for r in connection.execute(
                    sa.select(_TOLD.c.key).where(_TOLD.c.cluster == cluster, _TOLD.c.key.in_([r["key"] for r in rows]))
                ).all()
            }
            fresh = [r for r in rows if r["key"] not in known]
            if fresh:
                connection.execute(sa.insert(_TOLD), fresh)
            connection.execute(sa.delete(_TOLD).where(_TOLD.c.told_at < now - TOLD_KEEP_S))


class EventForwarding:
    """Watches every central cluster with event rules and sends its Events' groups through the outbox."""

    def __init__(
        self,
        gateway: ClusterGateway,
        clusters: Callable[[], Iterable[Cluster]],
        outbox: Outbox,
        told: ToldEvents,
        config: Callable[[], NotificationConfig | None],
        *,
        clock: Clock,
        on_accepted: Callable[[], None] = lambda: None,
        group_wait_s: float = GROUP_WAIT_S,
        pass_s: float = PASS_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._gateway = gateway
        self._clusters = clusters
        self._outbox = outbox
        self._told_store = told
        self._config = config
        self._clock = clock
        self._on_accepted = on_accepted
        self.group_wait_s = group_wait_s
        self.pass_s = pass_s
        self.retry_s = retry_s
        self._lock = threading.Lock()
        # Per cluster: the Events it has now (by uid), and whether its first list came.
        self._events: dict[ClusterId, dict[str, ClusterEvent]] = {}
        self._listed: set[ClusterId] = set()
        self._told: dict[ClusterId, set[str]] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler: BackgroundScheduler | None = None

    def watched(self) -> list[Cluster]:
        return [c for c in self._clusters() if c.role == "central" and c.policy.events]

    def start(self) -> None:
        if self._scheduler is not None:
            return
        self._stopping.clear()
        for cluster in self.watched():
            thread = threading.Thread(target=self._watch, args=(cluster.id,), name=f"events-{cluster.id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._scheduler = start_interval_job(self.send_ready, seconds=self.pass_s, job_id=JOB_ID)

    def stop(self) -> None:
        """Stop the passes; the watch threads end at their next event or the server's watch timeout (daemons)."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self._threads.clear()

    def _watch(self, cluster: ClusterId) -> None:
        while not self._stopping.is_set():
            try:
                for update in self._gateway.watch(cluster, "Event"):
                    if self._stopping.is_set():
                        return
                    self._take(cluster, update)
            except ClusterError as exc:
                log.warning("Lost the Events watch of a cluster", extra={"cluster": cluster, "error": str(exc)})
            except Exception:  # the thread must outlive whatever one cluster sends
                log.exception("The Events watch of a cluster failed", extra={"cluster": cluster})
            with self._lock:
                self._listed.discard(cluster)  # the next watch lists again
            self._stopping.wait(self.retry_s)

    def _take(self, cluster: ClusterId, update: Listed | Changed) -> None:
        with self._lock:
            if isinstance(update, Listed):
                read = (read_event(raw) for raw in update.items)
                self._events[cluster] = {e.uid: e for e in read if e is not None}
                self._listed.add(cluster)
                return
            event = read_event(update.object)
            if event is None:
                return
            held = self._events.setdefault(cluster, {})
            if update.type == "DELETED":
                held.pop(event.uid, None)
            else:
                held[event.uid] = event

    def send_ready(self) -> int:
        """One pass: the messages accepted into the outbox. A cluster whose first list has not come yet waits."""
        sent = 0
        config = self._config()
        for cluster in self.watched():
            with self._lock:
                if cluster.id not in self._listed:
                    continue
                events = list(self._events.get(cluster.id, {}).values())
            try:
                sent += self._send_cluster(cluster, events, config)
            except Exception:  # the database may be away: the next pass plans the same groups again
                log.exception("Could not send the Events of a cluster", extra={"cluster": cluster.id})
        return sent

    def _send_cluster(self, cluster: Cluster, events: list[ClusterEvent], config: NotificationConfig | None) -> int:
        told = self._told.get(cluster.id)
        if told is None:
            told = self._told[cluster.id] = self._told_store.load(cluster.id)
        now = self._clock.now()
        groups = plan_event_groups(cluster.id, cluster.policy, events, told, now=now, group_wait_s=self.group_wait_s)
        if not groups:
            return 0
        messages = [m for g in groups for m in self._messages(cluster, g, config, now)]
        if messages:
            self._outbox.accept(messages)
            self._on_accepted()
        keys = [k for g in groups for k in g.keys]
        self._told_store.record(cluster.id, keys, now=now)
        told.update(keys)
        log.info(
            "Sent the Events of a cluster",
            extra={"cluster": cluster.id, "groups": len(groups), "messages": len(messages), "events": len(keys)},
        )
        return len(messages)

    @staticmethod
    def _messages(
        cluster: Cluster, group: EventGroup, config: NotificationConfig | None, now: float
    ) -> list[Notification]:
        if config is None:
            return []  # no notification file: told to nobody, and not kept for later
        out = []
        for channel in event_channels(config.routes, group.level, cluster.region):
            if channel.kind == "dingtalk":
                routes = config.routes
                body = render_event_dingtalk(group, max_bytes=routes.dingtalk_max_bytes, timezone=routes.timezone)
            else:
                body = render_event_webhook(group, channel=channel.name, now=now)
            message_id = f"{group.id}:{channel}"[:200]
            out.append(Notification(message_id, channel, (f"cluster:{cluster.id}",), (), body, now, len(group.events)))
        return out
