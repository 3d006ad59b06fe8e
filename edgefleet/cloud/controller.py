"""The controller's core, put together: inventory, live fleet state, database, persister, MQTT ingest, the
alert loop, and the gateway to the inventory's Kubernetes clusters with their periodic probe.

``Controller(settings)`` first asks who leads the database (``edgefleet.cloud.leading``: on SQLite a second
controller is refused with a ``DatabaseHeldError`` naming the holder; on PostgreSQL it becomes a standby that
serves reads and takes over when the leader's lease runs out), then loads the whole inventory
(an ``InventoryError`` propagates: nothing is half-loaded) and the notification file when one is set (a
``NotificationConfigError`` propagates likewise), opens the database and restores the saved state, so a restarted
controller resumes every box's boot, sequence, last seen and status, and every alert; ``start()`` starts the
ingest and the watches on every replica and the election; the leader alone runs the persister's flushes, the
alert loop, delivery and the rollouts (``_lead``/``_step_down``), while a standby's persister follows the leader,
holding the health points the database lacks for whichever replica leads next (``Persister.stand_by``). ``stop()`` stops them, makes a last flush and hands over. Built by
the API's lifespan (``edgefleet.cloud.api.create_app``), by ``edgefleet cloud serve`` and by tests; the API reads
``state``, ``ingest``, ``store``, ``clock``, ``box_history``, ``alerting`` (the typed
``alerting.service.AlertService``) and ``cluster_health``. Alerting runs as two parts: ``alert_loop`` (the passes)
and ``delivery`` (the worker that sends what the loop put in the outbox).

``gateway`` (a ``k8s.gateway.ClusterGateway``; None when the inventory declares no cluster) reaches every
``kind: Cluster`` of the inventory by its context in the kubeconfig the settings name (``EDGEFLEET_KUBECONFIG``,
``--kubeconfig``). Nothing is read from the file at construction: a missing file or context fails that cluster's
calls and shows in its health (``cluster_health``), never the controller's start; the clients follow the file
when it changes. ``cluster_probing`` probes every cluster on its own schedule from ``start`` to ``stop``, and
``exclusive_windows`` keeps the central clusters' exclusive-host taints (``tainting``), and ``event_forwarding``
sends their Events by their rules (``event_forwarding``); ``stop`` closes the gateway. The clusters are those of the inventory at construction: a reload that adds one reaches it
after a restart (its health says so until then).
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import warnings
from types import TracebackType
from typing import Final

from edgefleet.clock import Clock, SystemClock
from edgefleet.cloud.access.audit_log import AuditLog
from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.access.local_users import LocalUsers
from edgefleet.cloud.access.sessions import Sessions
from edgefleet.cloud.access.token_store import TokenStore
from edgefleet.cloud.alerting.commands import AlertCommands
from edgefleet.cloud.alerting.config import NotificationConfig, load_notifications
from edgefleet.cloud.alerting.delivering import DeliveryWorker
from edgefleet.cloud.alerting.looping import AlertLoop
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.enrolling import Enrollment
from edgefleet.cloud.event_forwarding import EventForwarding, ToldEvents
from edgefleet.cloud.fleet import HISTORY_POINTS, BoxLive, FleetState, HealthPoint, InventoryChange, replace_inventory
from edgefleet.cloud.following import InventoryFollowing
from edgefleet.cloud.hearing import Hearing
from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import ClusterGateway, KubernetesGateway
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.leading import Leadership, LeaseTiming, take_leadership
from edgefleet.cloud.migrating import upgrade_schema
from edgefleet.cloud.node_watching import NodeWatch
from edgefleet.cloud.persisting import Persister
from edgefleet.cloud.probing import PROBE_INTERVAL_S, ClusterProbing
from edgefleet.cloud.restarts import Restarts
from edgefleet.cloud.rollouts.announcing import RolloutAnnouncer
from edgefleet.cloud.rollouts.reconciling import Reconciler
from edgefleet.cloud.rollouts.service import RolloutService
from edgefleet.cloud.rollouts.store import RolloutStore
from edgefleet.cloud.rollouts.workload_watching import WorkloadWatch
from edgefleet.cloud.saving import SavingHealth
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from edgefleet.cloud.tainting import ExclusiveWindows
from edgefleet.errors import EdgefleetError, InventoryVersionMismatch
from edgefleet.ids import BoxId
from edgefleet.inventory import Inventory, load_inventory

log = logging.getLogger(__name__)

_SYSTEM_CLOCK: Final = SystemClock()


# What a cluster added to the inventory after start says until the controller restarts.
NOT_REACHED_UNTIL_RESTART: Final = (
    "added to the inventory after the controller started; restart the controller to reach this cluster"
)


class Controller:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = _SYSTEM_CLOCK,
        cluster_probe_interval_s: float = PROBE_INTERVAL_S,
        rollout_tick_s: float | None = None,
    ) -> None:
        # Who leads the database (edgefleet.cloud.leading), before anything is read or opened. SQLite: a second
        # controller is refused. PostgreSQL: this one leads now if nobody does, else it is a standby that serves
        # reads and takes over when the leader's lease runs out. A construction that fails lets the next one in.
        self.leadership: Leadership = take_leadership(
            settings.database_url,
            clock=clock,
            address=advertised_address(settings),
            timing=LeaseTiming(settings.leader_lease_s),
        )
        try:
            # The rollout reconciler's tick: the settings' (EDGEFLEET_ROLLOUT_TICK) unless a test gives its own.
            tick_s = settings.rollout_tick_s if rollout_tick_s is None else rollout_tick_s
            self._build(settings, clock, cluster_probe_interval_s, tick_s)
        except BaseException:
            self.leadership.stop()
            raise

    def _build(self, settings: Settings, clock: Clock, cluster_probe_interval_s: float, rollout_tick_s: float) -> None:
        self.settings = settings
        self.clock = clock
        inventory = load_inventory(settings.sites_dir)
        notifications: NotificationConfig | None = None
        if settings.notifications_file is not None:
            notifications = load_notifications(settings.notifications_file, inventory=inventory)
        self.state = FleetState.for_inventory(inventory)
        # One gateway to every cluster of the inventory (None without clusters); the node watch and the probes
        # use it.
        self.gateway: ClusterGateway | None = _build_gateway(inventory, settings, clock)
        # What each cluster says of its boxes' nodes, in ``state.nodes`` (the API and the alert loop read it).
        self.node_watch = NodeWatch(self.state, self.gateway, clock=clock)
        self.ingest = Ingest(
            self.state, settings.broker_url, clock=clock, login=settings.broker_login, tls=settings.broker_tls
        )
        self.store = Store(settings.database_url)
        # Box enrollment (edgefleet.cloud.enrolling); it issues logins when the broker's and CA's directories are set.
        self.enrollment = Enrollment.from_dirs(
            EnrollmentTokens(self.store),
            broker_dir=settings.broker_dir,
            pki_dir=settings.pki_dir,
            inventory=lambda: self.state.inventory,
            clock=clock,
        )
        # The API tokens the API admits; ``edgefleet tokens`` makes them at this same database.
        self._tokens = TokenStore(self.store)
        # The one audit log of every state-changing action (edgefleet.cloud.access.audit_log).
        self.audit_log = AuditLog(self.store)
        # Replicas share a database on PostgreSQL only: there a standby follows the leader's inventory reloads.
        self.inventory_following: InventoryFollowing | None = (
            InventoryFollowing(self, self.audit_log.last_inventory_version, lambda: self.leadership.leader)
            if self.store.dialect == "postgresql"
            else None
        )
        # Every write only the leader may make checks its epoch in its own transaction.
        self.store.fence = self.leadership.fence
        try:
            # The schema this release's tables expect, before a row is read (the database lock is held).
            migrated = upgrade_schema(self.store)
            # The lease table exists now (a fresh database had none at the first try): try to lead again.
            self.leadership.contend()
            # The alerts are loaded below in this epoch; a later lead in another epoch reads them again.
            self._built_epoch = self.leadership.epoch
            if migrated.changed:
                log.info(
                    "Upgraded the database schema",
                    extra={"from": migrated.before, "to": migrated.after, "database": self.store.url_shown},
                )
            self._restore()
            # After the restore: the alert loop reads the restored fleet, and evaluates only once the ingest hears.
            self.alert_loop = AlertLoop(
                self.state,
                self.store,
                clock=clock,
                config=notifications,
                stats=self.ingest.stats,
                on_planned=lambda: self.delivery.wake(),  # noqa: PLW0108 (built just below, from the loop's outbox)
            )
            self.delivery = DeliveryWorker(self.alert_loop.outbox, notifications, clock=clock)
            self.alerting: AlertService = AlertCommands(self.alert_loop)
            # Rollouts: their tables, the reconciler's tick, and what the API asks (edgefleet.cloud.rollouts).
            self.rollout_store = RolloutStore(self.store)
            # The console's sign-in (edgefleet.cloud.access): sessions and local users, in this database.
            self.sessions = Sessions(self.store, secure_cookies=settings.cookie_secure)
            self.local_users = LocalUsers(self.store)
            self.reconciler = Reconciler(
                self.rollout_store,
                self.state,
                self.gateway,
                clock=clock,
                alerting=lambda: self.alerting,
                interval_s=rollout_tick_s,
                releases_dir=settings.releases_dir,
                # Rollout news through the alert routes and outbox; sent only by this controller, which ticks
                # rollouts only while it holds the database's lock.
                announcer=RolloutAnnouncer(
                    self.alert_loop.outbox,
                    lambda: self.alert_loop.config,
                    on_accepted=self.delivery.wake,
                ),
            )
            # A heartbeat that changes what a rollout waits for wakes the reconciler (its filter is a dict lookup),
            # and so does a change the clusters' watches see to a site's workload (rollouts.workload_watching).
            self.ingest.on_heartbeat = self.reconciler.heartbeat_taken
            self.workload_watch = WorkloadWatch(
                lambda: self.state.inventory, self.gateway, changed=self.reconciler.workload_changed, clock=clock
            )
            self.rollouts: RolloutService | None = RolloutService(
                self.rollout_store, self.state, self.reconciler, clock=clock, registry_config=settings.registry_config
            )
        except BaseException:
            self.store.close()
            raise
        # Batch restarts of a cluster's Deployments, audited in the audit log (edgefleet.cloud.restarts).
        self.restarts: Restarts | None = (
            Restarts(self.gateway, clock=clock, audit=self.rollout_store.record) if self.gateway is not None else None
        )
        # The exclusive hosts' taints at their windows' edges, every minute and at start (edgefleet.cloud.tainting).
        self.exclusive_windows: ExclusiveWindows | None = (
            ExclusiveWindows(
                self.gateway,
                lambda: list(self.state.inventory.clusters.values()),
                clock=clock,
                audit=self.rollout_store.record,
            )
            if self.gateway is not None
            else None
        )
        # Central clusters' Events by their rules, through the alert outbox (edgefleet.cloud.event_forwarding).
        self.event_forwarding: EventForwarding | None = (
            EventForwarding(
                self.gateway,
                lambda: list(self.state.inventory.clusters.values()),
                self.alert_loop.outbox,
                ToldEvents(self.store),
                lambda: self.alert_loop.config,
                clock=clock,
                on_accepted=self.delivery.wake,
            )
            if self.gateway is not None
            else None
        )
        self.persister = Persister(
            self.state,
            self.store,
            clock=clock,
            interval_s=settings.flush_interval_s,
            history_retention_s=settings.history_retention_s,
            history_max_points=settings.history_max_points,
        )
        self.cluster_probing: ClusterProbing | None = (
            ClusterProbing(self.gateway, list(inventory.clusters), interval_s=cluster_probe_interval_s)
            if self.gateway is not None
            else None
        )
        self._running = False
        self._history_failing = False
        self._reloading = threading.Lock()
        # Serialises taking over and stepping down (the election's thread) with start and stop.
        self._leading_lock = threading.Lock()
        self._leading = False
        self._led_once = False

    def _restore(self) -> None:
        boxes, unknown = self.store.load()
        restored = dropped = 0
        for saved in boxes:
            live = self.state.boxes.get(saved.box)
            if live is None:
                dropped += 1  # removed from the inventory since; its row stays until the box is added again
                continue
            _resume(live, saved)
            restored += 1
        for entry in unknown:
            if entry.box not in self.state.boxes:
                self.state.unknown[entry.box] = entry
        log.info(
            "Restored fleet state from database",
            extra={
                "boxes": restored,
                "boxes_not_in_inventory": dropped,
                "unknown_boxes": len(self.state.unknown),
                "database": self.store.url_shown,
            },
        )

    def saving(self) -> SavingHealth:
        """How the writes to the database fare: the persister's flushes and the alert loop's saves."""
        return SavingHealth(
            fleet=self.persister.saving,
            alerts=self.alert_loop.saving,
            dropped_samples=self.persister.stats.dropped_samples,
        )

    @property
    def tokens(self) -> TokenStore:
        """The API tokens ``require_access`` admits (the ``api_token`` table of this controller's database)."""
        return self._tokens

    @property
    def hearing(self) -> Hearing:
        """Whether the controller hears the fleet well enough to judge box silence (the alert loop assesses it)."""
        return self.alert_loop.hearing

    @property
    def inventory_version(self) -> str:
        """The content hash of the site manifests in force (``inventory.inventory_version``)."""
        return self.state.inventory.version

    def reload_inventory(self, *, expect_version: str | None = None) -> InventoryChange:
        """Read the sites directory again and take it whole, or nothing of it.

        Raises ``InventoryError`` listing every problem (file, line, field, reason), or
        ``InventoryVersionMismatch`` when ``expect_version`` is given and the directory holds another version;
        either way the inventory in force stays. Taken: new boxes are tracked at once, removed boxes stop being
        judged and their open alerts resolve with "removed from inventory" at the next pass, adopted boxes leave
        the unknown list. Called by ``POST /api/v1/inventory/reload`` (``edgefleet sites apply``) and on SIGHUP.
        """
        with self._reloading:
            inventory = load_inventory(self.settings.sites_dir)
            if expect_version is not None and inventory.version != expect_version:
                raise InventoryVersionMismatch(
                    f"the controller's sites directory {self.settings.sites_dir} holds inventory version "
                    f"{inventory.version}, not {expect_version}; copy the site files there (or point the controller "
                    "at yours with --sites), then apply again"
                )
            with self.state.lock:
                change = replace_inventory(self.state, inventory)
            self.ingest.inventory_changed()
            self.node_watch.inventory_changed()
            self.workload_watch.inventory_changed()
        settle_heap()
        log.info(
            "Applied inventory" if change.changed else "Reloaded inventory: nothing changed",
            extra={
                "version": change.version,
                "previous_version": change.previous_version,
                "sites": len(inventory.sites),
                "boxes": len(inventory.boxes),
                "sites_added": list(change.sites_added),
                "sites_removed": list(change.sites_removed),
                "boxes_added": len(change.boxes_added),
                "boxes_removed": list(change.boxes_removed)[:50],
                "boxes_moved": list(change.boxes_moved)[:50],
                "adopted": list(change.adopted)[:50],
            },
        )
        return change

    def start(self) -> None:
        """Start what every replica runs (the ingest, the clusters' watches and probes), then the election: the
        leader's part (persister, alert passes, delivery, rollouts, taints, event forwarding) runs while this
        controller leads (``_lead`` / ``_step_down``)."""
        if self._running:
            return
        self._running = True
        self.ingest.start()
        self.node_watch.start()
        if self.cluster_probing is not None:
            self.cluster_probing.start()
        self.workload_watch.start()
        # Every replica assesses its hearing; passes run only while it leads (``_lead``).
        self.alert_loop.passing = False
        self.alert_loop.start()
        # A standby's persister follows the leader, holding what the database lacks (``Persister.stand_by``).
        with self._leading_lock:
            if not self._leading:
                self.persister.stand_by()
        self.leadership.start(self._lead, self._step_down, lambda: self.ingest.connected)
        if self.inventory_following is not None:
            self.inventory_following.start()
        settle_heap()
        log.info(
            "Started controller",
            extra={
                "sites": len(self.state.inventory.sites),
                "boxes": len(self.state.boxes),
                "inventory_version": self.inventory_version,
                "broker": self.settings.broker_url_shown,
                "database": self.store.url_shown,
                "notifications": str(self.settings.notifications_file) if self.alert_loop.sending else None,
                "clusters": len(self.state.inventory.clusters),
                "kubeconfig": str(self.settings.kubeconfig),
                "leader": self.leadership.leader,
                "epoch": self.leadership.epoch,
            },
        )

    def _lead(self, epoch: int) -> None:
        """Elected: run the leader's part. A standby taking over first reads what the previous leader left."""
        with self._leading_lock:
            if self._leading or not self._running:
                return
            # The alerts were loaded at construction; read again unless this is the epoch it was built in (no
            # other leader can have written since).
            self.persister.stop_standing_by()
            if self._led_once or epoch != self._built_epoch:
                self.alert_loop.take_over()
                # What it heard as a standby, less what the previous leader saved: each point saved once.
                self.persister.take_over()
            self._led_once = True
            self._leading = True
            self.persister.start()
            self.delivery.start()
            self.alert_loop.passing = True
            if self.exclusive_windows is not None:
                self.exclusive_windows.start()
            if self.event_forwarding is not None:
                self.event_forwarding.start()
            self.reconciler.start()
        log.info("Leading the database", extra={"epoch": epoch, "database": self.store.url_shown})

    def _step_down(self, why: str) -> None:
        """Deposed (superseded, lease run out, broker lost): stop the leader's part. Its writes are already
        refused by the fence; this stops it trying. Runs on the election's thread; the controller stays a standby
        and contends again."""
        with self._leading_lock:
            if not self._leading:
                return
            self._leading = False
            self._stop_leading()
            if self._running:
                self.persister.stand_by()  # keeps what it could not save, for whichever replica leads next
        log.warning("Serving as a standby", extra={"reason": why, "database": self.store.url_shown})

    def _stop_leading(self) -> None:
        self.reconciler.stop()
        if self.exclusive_windows is not None:
            self.exclusive_windows.stop()
        if self.event_forwarding is not None:
            self.event_forwarding.stop()
        self.alert_loop.passing = False
        self.delivery.stop()
        self.persister.stop()  # its last flush is fenced: refused when another leads

    @property
    def leading(self) -> bool:
        """Whether this controller runs the leader's part now."""
        return self._leading and self.leadership.leader

    def stop(self) -> None:
        """Stop taking messages, then save what is left, then hand the lead over. Safe to call twice, and without
        ``start``."""
        if self._running:
            self._running = False
            if self.inventory_following is not None:
                self.inventory_following.stop()
            self.workload_watch.stop()
            with self._leading_lock:
                if self._leading:
                    self._leading = False
                    self._stop_leading()
                self.persister.stop_standing_by()
            self.alert_loop.stop()
            if self.cluster_probing is not None:
                self.cluster_probing.stop()
            self.ingest.stop()
            log.info("Stopped controller", extra={"persister": str(self.persister.stats)})
        # Also when started alone (a test, an API-only controller): its threads must not outlive the controller.
        self.node_watch.stop()
        self.workload_watch.stop()
        try:
            if self.gateway is not None:
                self.gateway.close()
            self.store.close()
        finally:
            self.leadership.stop()  # last: a successor takes over only after the last flush

    def __enter__(self) -> Controller:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def cluster_health(self) -> list[ClusterHealth]:
        """What the controller knows of each cluster of the inventory in force, by name: the gateway's records
        (``probe`` and failed calls); a cluster the gateway was not built for says so in ``last_error``."""
        known = {h.cluster: h for h in self.gateway.health()} if self.gateway is not None else {}
        answer = []
        for cluster in sorted(self.state.inventory.clusters.values(), key=lambda c: c.id):
            health = known.get(cluster.id)
            answer.append(
                health
                if health is not None
                else ClusterHealth(cluster.id, cluster.context, last_error=NOT_REACHED_UNTIL_RESTART)
            )
        return answer

    def box_history(self, box: BoxId, since: float | None = None) -> list[HealthPoint]:
        """The box's health points received at ``since`` or later, oldest first (``since`` None: the newest
        ``HISTORY_POINTS``). Memory holds the last hour; older points come from the database, and while the
        database is away the answer is what memory holds. KeyError for a box not in the inventory."""
        live = self.state.boxes[box]
        with self.state.lock:
            recent = list(live.history)
        if since is not None:
            covered = bool(recent) and recent[0].at <= since
            recent = [p for p in recent if p.at >= since]
            if covered:
                return recent
            return self._older(box, since=since, before=recent[0].at if recent else None, limit=None) + recent
        if len(recent) >= HISTORY_POINTS:
            return recent
        before = recent[0].at if recent else None
        return self._older(box, since=None, before=before, limit=HISTORY_POINTS - len(recent)) + recent

    def _older(self, box: BoxId, *, since: float | None, before: float | None, limit: int | None) -> list[HealthPoint]:
        try:
            points = self.store.history(box, since=since, before=before, limit=limit)
        except EdgefleetError as exc:
            if not self._history_failing:
                log.warning(
                    "Failed to read health history from database; answering from memory", extra={"error": str(exc)}
                )
            self._history_failing = True
            return []
        self._history_failing = False
        return points


def advertised_address(settings: Settings) -> str:
    """Where this controller's API listens, as standbys name the leader to clients and forward writes to it:
    ``EDGEFLEET_ADVERTISE_URL`` when set (in a pod, its IP: a pod's name resolves nowhere), else ``http://host:port``
    of ``listen``, with this machine's name when it listens on every address."""
    if settings.advertise_url is not None:
        return settings.advertise_url
    host = settings.listen_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.listen_port}"


def _build_gateway(inventory: Inventory, settings: Settings, clock: Clock) -> ClusterGateway | None:
    """The gateway to the inventory's clusters by their contexts; None when it declares none."""
    if not inventory.clusters:
        return None
    contexts = {cluster.id: cluster.context for cluster in inventory.clusters.values()}
    return KubernetesGateway(ClusterClients(contexts, settings.kubeconfig), clock=clock)


def settle_heap() -> None:
    """Move the objects alive now (modules, the inventory, the restored fleet, the web and database libraries:
    ~160,000 for the shipped 2,000 boxes) out of the garbage collector's sight, so that its full collections walk
    only what was made since. Unfrozen, each full collection walked them all, every ~12 s, and stopped every
    thread for 165-270 ms: the alert tick that ran into one overran its 0.2 s and APScheduler logged it as
    skipped; frozen, a full collection takes ~30 ms (docs/performance.md, "Alert ticks"). Called after start-up
    and after an inventory change (the old inventory is collected first: it would stay frozen otherwise).

    The collection finalizes whatever other code left unclosed since the last one (a socket a library dropped):
    their ResourceWarnings are that code's to report, not this collection's, so they are not raised here."""
    gc.unfreeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.freeze()


def _resume(live: BoxLive, saved: BoxLive) -> None:
    """Take the saved state of a box of the inventory; the inventory's site wins over the saved one."""
    live.boot = saved.boot
    live.boot_started_at = saved.boot_started_at
    live.seq = saved.seq
    live.first_seen = saved.first_seen
    live.last_seen = saved.last_seen
    live.heartbeat = saved.heartbeat
    live.clock_skew_s = saved.clock_skew_s
    live.status_state = saved.status_state
    live.status_reason = saved.status_reason
    live.status_session = saved.status_session
    live.status_at = saved.status_at
    live.status_boot = saved.status_boot
    live.status_seq = saved.status_seq
    live.dirty = live.site != saved.site
