"""The rollouts' shell: one tick re-reads every active rollout, asks ``deciding.decide`` what comes next, applies
it through the gateway and only then writes the new status (DESIGN.md, "One tick of a rollout, as data").

``Reconciler`` is built by the controller (``edgefleet.cloud.controller``) and runs as one APScheduler job
(``max_instances=1, coalesce=True``, a fixed id, every ``TICK_S``); ``wake()`` runs it early, never instead of the
schedule: the API's commands call it, and so does ``heartbeat_taken``, which the ingest calls with every heartbeat
it takes, when a box of a site in flight reports another version or state of the rollout's app than before (the
agents' gate waits for exactly that), and ``workload_changed``, which the clusters' workload watch
(``workload_watching``) calls when a site's Deployment or DaemonSet changes: a rollout is followed through its
watch. Wakes are coalesced: at most one woken tick is pending. A tick still lists the workloads it judges (what
it compares is the cluster's state now; an event only says when to look). Tests call ``tick()``.

One tick, per active rollout:
1. the rollout (its release manifest as submitted, the spec with the commands, the status) from the store; the
   release is loaded again against the inventory in force;
2. a ``SiteObservation`` per site of the spec: reachable (a box of the site is online, ``facts.site_facts``); the
   boxes that run the app (edge or cluster nodes for scan-upload, GPU boxes for sorting-recognition) with the
   version and state of their latest heartbeat (less those that report no such app while another box reports it:
   ``_without_boxes_that_run_none``); the site's workloads of the app as the cluster serves them (one
   list per cluster, the release label and kubectl's rollout rule); the site's active alerts with their start;
   the hold from the store; the blackout window in force in the site's time zone (``windows.blocked``); the
   release the site runs (the recorded previous release once the rollout touched it, else the workload's label);
3. ``decide``; its ``Apply`` and ``Revert`` actions through the gateway: the namespace once per cluster, then
   every manifest of the site's rendering with server-side apply (forced: edgefleet owns these objects); a
   workload of the app at the site that the rendering no longer lists is deleted; a ``Revert`` applies the
   previous release's rendering, or deletes the rollout's workloads where the app was not there before;
4. the new status and gates and the audit of the actions, in one transaction.

One cluster does not stall the others: a cluster whose workloads cannot be listed makes its sites unreachable
for the tick (``SiteObservation.unreachable`` says why; deferred, never failed), and each action is applied on
its own. When a site's apply or revert fails, ``decide`` runs again from the old status with that site
unreachable, and the actions of the other sites that are left are applied (those applied already are not applied
again): the status written says of the failed site only what is true (deferred, not applied; or not reverted),
and the next tick tries it again. A store that fails writes nothing: the next tick decides again from the old
status and issues the same actions, each a statement of state ("site X runs release R"), so applying twice is
harmless.

What a site ran before (the revert's target) is recorded before the first apply there, once: after a crash
between an apply and the status write, the next tick re-applies, and the record still names the release that ran
before, not the rollout's own. It is the release its workload's label names; a workload without one (set up before
edgefleet ran rollouts, as the simulator's) is named ``<app>-<version>`` from its image's tag. Its manifest comes
from the rollout that brought it, else from the releases directory (``releases_dir``, by name, or by app and
version); a previous release whose manifest is found nowhere is not reverted (audited so), never deleted. Only a
site where the app had no workload at all has no previous release: a revert there deletes the rollout's workloads. Everything a tick needs is in the database and the live fleet: ``kill -9`` at any
point, and the next controller's first tick resumes.

Kept in memory only: since when each box has reported each version running (the agents' gate's
``running_since``; heartbeats carry no start time). After a restart a soak starts again: never shorter.
Notifications (``Notify``) go to the announcer (``announcing.RolloutAnnouncer``: one grouped message per channel
per rollout and tick, through the alert routes and outbox) before the status is written, and are logged.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.clock import Clock
from edgefleet.cloud.alerting.alerts import AlertKind
from edgefleet.cloud.alerting.service import AlertService
from edgefleet.cloud.fleet import FleetState, box_reachability
from edgefleet.cloud.k8s.errors import ClusterError, TemporaryClusterError
from edgefleet.cloud.k8s.gateway import ClusterGateway, Kind, ObjectList
from edgefleet.cloud.k8s.rollout import daemonset_rollout, deployment_rollout
from edgefleet.cloud.rollouts import rendering
from edgefleet.cloud.rollouts.announcing import RolloutAnnouncer
from edgefleet.cloud.rollouts.deciding import (
    Apply,
    Decision,
    Notify,
    Revert,
    RolloutSpec,
    SiteObservation,
    decide,
)
from edgefleet.cloud.rollouts.facts import site_figures
from edgefleet.cloud.rollouts.figures import FigureWindow
from edgefleet.cloud.rollouts.gates import MIN_READINGS_TO_FAIL, BoxApp, FiringAlert, SiteHealth, Workload
from edgefleet.cloud.rollouts.store import AuditEntry, PreviousRelease, RolloutStore, StoredRollout
from edgefleet.cloud.rollouts.windows import blocked
from edgefleet.cloud.scheduling import start_interval_job
from edgefleet.errors import EdgefleetError, ReleaseError
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Inventory, Site
from edgefleet.messages import Heartbeat
from edgefleet.releases import Release, load_release, load_release_text, release_files

log = logging.getLogger(__name__)

# A tick reads the store and one list per cluster: cheap enough every 2 s, and an abort lands within one tick.
TICK_S: Final = 2.0
JOB_ID: Final = "rollouts:reconcile"
# A woken tick starts this long after the wake (or after the tick in flight ends): a wave's boxes report their new
# version over a second or so, and their wakes fold into a few ticks rather than one tick per heartbeat.
WAKE_DELAY_S: Final = 0.2
# Who the audit names for what the reconciler itself did.
RECONCILER: Final = "reconciler"

# Sites whose agents' reports the gates wait on (``deciding``'s sites in flight).
_IN_FLIGHT: Final = frozenset({"in-progress", "soaking"})

# Which kind of workload runs each app (rendering's shapes), and which boxes run it.
_WORKLOAD_KIND: Final[Mapping[str, Kind]] = {"scan-upload": "Deployment", "sorting-recognition": "DaemonSet"}


def app_boxes(inventory: Inventory, site: Site, app: str) -> list[BoxId]:
    """The boxes of ``site`` that run ``app`` (as ``rendering`` places it)."""
    if app == "sorting-recognition":
        roles = {"gpu-box"}
    else:
        roles = {"edge-node"} if site.kind == "transfer-center" else {"cluster-node"}
    return [box.id for box in inventory.site_boxes(site.id) if box.role in roles]


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one rollout's reconcile did: the decision, and whether its status was saved (False when the release
    no longer loads or the store failed, with the error). Saved with an ``error``: the sites whose apply or revert
    the cluster refused (left for the next tick)."""

    rollout_id: str
    decision: Decision | None
    saved: bool
    error: str | None = None


class Reconciler:
    """Ticks every active rollout of ``store``. Thread-safe: ticks are serialised by a lock."""

    def __init__(
        self,
        store: RolloutStore,
        state: FleetState,
        gateway: ClusterGateway | None,
        *,
        clock: Clock,
        alerting: Callable[[], AlertService | None] = lambda: None,
        interval_s: float = TICK_S,
        releases_dir: Path | None = None,
        announcer: RolloutAnnouncer | None = None,
    ) -> None:
        self.store = store
        self.announcer = announcer
        self.releases_dir = releases_dir
        self.state = state
        self.gateway = gateway
        self.clock = clock
        self._alerting = alerting
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        # (box, version) -> since when (controller time) the box has reported that version running. Memory only: a
        # new reconciler (a restart, a takeover) first seeds it from the site's stored soak (``_boxes``).
        self._running_since: dict[tuple[BoxId, str], float] = {}
        # Each site's figures per version, summed over the ticks that saw them (release, site, version): the health
        # gate compares means, not one noisy reading with another (a single reading is a few % off either way).
        self._figures = _FigureMeans()
        # Every site's figures over the last quarter of an hour, fed by every heartbeat the ingest takes: what a
        # site's baseline is taken from when its rollout first reaches it (``_baseline``).
        self._window = FigureWindow()
        self._window_lock = threading.Lock()
        # Clusters whose namespace this reconciler applied (again after a restart: applying twice is harmless).
        self._namespaced: set[ClusterId] = set()
        # Rollouts whose release no longer loads, with why (logged once).
        self._stalled: dict[str, str] = {}
        self.ticks = 0
        # Whether the last scheduled tick failed for the database: its failure is logged once per streak.
        self._tick_failing = False
        # The boxes of the sites in flight, with the rollout's app: what ``heartbeat_taken`` looks a box up in.
        # Replaced whole at the end of each tick, so the ingest's thread reads it without the tick's lock.
        self._awaited: Mapping[BoxId, str] = {}
        # The sites in flight, for ``workload_changed``; replaced whole at the end of each tick as ``_awaited``.
        self._sites_awaited: frozenset[SiteId] = frozenset()
        # Wakes: one pending at most; a wake while a scheduled tick runs is run after it (``_scheduled_tick``).
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._ticking = False
        self.wakes = 0

    # --- schedule -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._scheduler is not None:
            return
        self._scheduler = start_interval_job(self._scheduled_tick, seconds=self.interval_s, job_id=JOB_ID, run_now=True)

    def stop(self) -> None:
        """Stop ticking, waiting for a tick in flight. Safe to call twice."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def wake(self) -> None:
        """Tick soon (``WAKE_DELAY_S``): a command came, or a heartbeat changed what a rollout waits for. The
        schedule goes on as before. Coalesced: a wake while one is pending does nothing; one while a scheduled tick
        runs is run after that tick, which may have read the state before the change."""
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
            self.wakes += 1
            if self._ticking:
                return
        self._run_soon()

    @property
    def idle(self) -> bool:
        """No scheduled tick runs and no woken one is pending (the next tick is the schedule's)."""
        with self._wake_lock:
            return not (self._ticking or self._wake_pending)

    def heartbeat_taken(self, box: BoxId, before: Heartbeat | None, after: Heartbeat) -> None:
        """The ingest took ``after``, the heartbeat of ``box`` that follows ``before``: wake when the box is one a
        rollout waits on and it reports another version or state of the rollout's app. Called on the ingest's
        thread for every heartbeat taken (~200 a second for 2,000 boxes), never under the tick's lock: its apps'
        figures go into the site's 15-minute window (~0.8 us a heartbeat under the window's own lock, timed alone),
        then one dict lookup decides whether to wake."""
        with self._window_lock:
            now = self.clock.now()
            for reported in after.apps.apps:
                self._window.add(after.site, reported, now)
        app = self._awaited.get(box)
        if app is not None and _reported(before, app) != _reported(after, app):
            self.wake()

    def workload_changed(self, site: SiteId) -> None:
        """The workload watch saw a site's Deployment or DaemonSet change: wake when the site is in flight (its
        kubernetes gate may have passed). Called on the watch's threads; never the tick's lock."""
        if site in self._sites_awaited:
            self.wake()

    def _run_soon(self) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        job = scheduler.get_job(JOB_ID)
        at = datetime.now(UTC) + timedelta(seconds=WAKE_DELAY_S)
        # Only ever earlier than the schedule: a wake never puts off a scheduled tick.
        if job is not None and (job.next_run_time is None or at < job.next_run_time):
            job.modify(next_run_time=at)

    def _scheduled_tick(self) -> None:
        with self._wake_lock:
            self._ticking = True
            self._wake_pending = False  # this tick reads the state after every wake so far
        try:
            self.tick()
        except EdgefleetError as exc:  # the database away: the next tick tries again
            if not self._tick_failing:  # once per streak: a tick every few seconds through an outage
                log.warning("Failed to tick rollouts; trying again at every tick", extra={"error": str(exc)})
            self._tick_failing = True
        except Exception:  # pragma: no cover - a bug; the schedule must go on
            log.exception("Failed to tick rollouts")
        else:
            if self._tick_failing:
                log.info("Ticked rollouts again after failed ticks")
            self._tick_failing = False
        finally:
            with self._wake_lock:
                self._ticking = False
                again = self._wake_pending
            if again:
                # Woken while ticking. WAKE_DELAY_S from now, the scheduler has long seen this run end (one
                # that had not would skip the woken run, and the next scheduled tick would see the change).
                self._run_soon()

    # --- one tick -------------------------------------------------------------------------------------------

    def tick(self) -> list[TickResult]:
        """Reconcile every active rollout once."""
        with self._lock:
            self.ticks += 1
            active = self.store.active()
            self._figures.forget_all_but({rollout.release_name for rollout in active})
            results = [self._reconcile(rollout) for rollout in active]
            self._awaited = self._boxes_awaited(active, results)
            self._sites_awaited = self._in_flight(active, results)
            return results

    @staticmethod
    def _in_flight(active: Sequence[StoredRollout], results: Sequence[TickResult]) -> frozenset[SiteId]:
        """The sites in flight of every active rollout after this tick."""
        return frozenset(
            site_id
            for rollout, result in zip(active, results, strict=True)
            for site_id, site in (
                result.decision.status if result.decision is not None else rollout.status
            ).sites.items()
            if site.state in _IN_FLIGHT
        )

    def _boxes_awaited(self, active: Sequence[StoredRollout], results: Sequence[TickResult]) -> dict[BoxId, str]:
        """The boxes whose agents' next report a rollout waits for (those of its sites in flight), with its app."""
        inventory = self.state.inventory
        awaited: dict[BoxId, str] = {}
        for rollout, result in zip(active, results, strict=True):
            status = result.decision.status if result.decision is not None else rollout.status
            for site_id, site in status.sites.items():
                if site.state in _IN_FLIGHT and site_id in inventory.sites:
                    for box in app_boxes(inventory, inventory.sites[site_id], rollout.spec.app):
                        awaited[box] = rollout.spec.app
        return awaited

    def reconcile(self, rollout_id: str) -> TickResult:
        with self._lock:
            return self._reconcile(self.store.get(rollout_id))

    def _reconcile(self, rollout: StoredRollout) -> TickResult:
        inventory = self.state.inventory
        try:
            release = load_release_text(rollout.release_yaml, f"rollout {rollout.id}", inventory)
        except EdgefleetError as exc:
            # Stalled: the inventory changed under the release (a site removed); a human must act. Said once per
            # problem, not every tick.
            if self._stalled.get(rollout.id) != str(exc):
                log.warning("Failed to load a rollout's release", extra={"rollout": rollout.id, "error": str(exc)})
            self._stalled[rollout.id] = str(exc)
            return TickResult(rollout.id, None, False, str(exc))
        self._stalled.pop(rollout.id, None)
        now = self.clock.now()
        previous = self.store.previous(rollout.id)
        # Where a site soaks already (stored), a box this reconciler sees running the release for the first time
        # is taken to have run it since the soak began, as the reconciler that started the soak saw: else every
        # takeover or restart would start every soak again (found by the leader-kill fault test).
        soaking = {
            site: (release.version, status.soaking_since)
            for site, status in rollout.status.sites.items()
            if status.state == "soaking" and status.soaking_since is not None
        }
        observations = self._observe(rollout.spec, release, inventory, previous, soaking, now=now)
        audit: list[AuditEntry] = []
        done: set[Apply | Revert] = set()
        refused: dict[SiteId, str] = {}
        # A site whose apply or revert failed is unreachable for this tick: decide again without it, so the status
        # never says a site was changed when it was not, and the other sites go on. Each round leaves one site
        # more out (an unreachable site gets no action), so this ends.
        for _ in range(len(observations) + 1):
            decision = decide(rollout.spec, rollout.status, observations, now=now)
            try:
                failed = self._act(rollout, release, inventory, decision, observations, previous, audit, done, now=now)
            except EdgefleetError as exc:  # the store, or no gateway at all: nothing of this tick is kept
                log.warning(
                    "Failed to apply a rollout's actions; the next tick issues them again",
                    extra={"rollout": rollout.id, "error": str(exc)},
                )
                return TickResult(rollout.id, decision, False, str(exc))
            if not failed:
                break
            refused.update(failed)
            for site, error in failed.items():
                observations[site] = replace(observations[site], reachable=False, unreachable=error)
        else:  # pragma: no cover - every round leaves a site out, so the loop breaks before
            return TickResult(rollout.id, None, False, "deciding around failed applies did not settle")
        notes = [action for action in decision.actions if isinstance(action, Notify)]
        if notes and self.announcer is not None:
            # Before the status: a notification accepted and a status not written is decided again next tick, with
            # the same message ids (kept once); the other order could lose the notification.
            try:
                self.announcer.announce(rollout, notes, inventory, now=now)
            except EdgefleetError as exc:
                log.warning(
                    "Failed to accept a rollout's notifications; the next tick decides them again",
                    extra={"rollout": rollout.id, "error": str(exc)},
                )
                return TickResult(rollout.id, decision, False, str(exc))
        if decision.status != rollout.status or dict(decision.gates) != dict(rollout.gates) or audit:
            self.store.save_status(rollout.id, decision.status, decision.gates, now=now, audit=audit)
        for note in notes:
            log.info(note.message, extra={"rollout": rollout.id, "notify": note.kind, "sites": note.sites})
        errors = "; ".join(f"{site}: {error}" for site, error in sorted(refused.items()))
        return TickResult(rollout.id, decision, True, errors or None)

    # --- observing ------------------------------------------------------------------------------------------

    def _observe(
        self,
        spec: RolloutSpec,
        release: Release,
        inventory: Inventory,
        previous: Mapping[SiteId, PreviousRelease],
        soaking: Mapping[SiteId, tuple[str, float]],
        *,
        now: float,
    ) -> dict[SiteId, SiteObservation]:
        sites = [inventory.sites[s] for wave in spec.waves for s in wave.sites if s in inventory.sites]
        workloads, runs, unreachable = self._workloads(spec.app, {site.cluster for site in sites})
        alerts = self._alerts()
        holds = self.store.holds()
        observations: dict[SiteId, SiteObservation] = {}
        # The sites' figures on the release now, read before taking the fleet's lock (site_figures takes it).
        for site in sites:
            self._figures.add(
                release.name,
                site.id,
                site_figures(self.state, site.id, spec.app, now=now),
                self._reading(site.id, spec.app),
            )
        current = {site.id: self._figures.mean(release.name, site.id, release.version) for site in sites}
        readings = {site.id: self._figures.readings(release.name, site.id, release.version) for site in sites}
        with self.state.lock:
            for site in sites:
                boxes, reachable = self._boxes(inventory, site, spec.app, soaking.get(site.id), now=now)
                covering = [b for b in release.strategy.blackouts if b.applies_to(site.id)]
                window = blocked(site.timezone, covering, now) if covering else None
                seen = workloads.get(site.id, ())
                recorded = previous.get(site.id)
                running = recorded.release if recorded is not None else runs.get(site.id)
                hold = holds.get(site.id)
                cluster_error = unreachable.get(site.cluster)
                observations[site.id] = SiteObservation(
                    # Its cluster cannot be listed: it cannot be changed or judged now, so it is unreachable
                    # (deferred, never failed), whatever its boxes say.
                    reachable=reachable and cluster_error is None,
                    unreachable=cluster_error,
                    held=hold.reason if hold is not None else None,
                    blackout=window.blackout.reason if window is not None else None,
                    running_release=running,
                    workloads=seen,
                    boxes=tuple(boxes),
                    alerts=tuple(alerts.get(site.id, ())),
                    health=SiteHealth(
                        current=dict(current[site.id] or {}),
                        baseline=recorded.baseline if recorded is not None else None,
                        previous_version=_version_of(recorded.release) if recorded is not None else None,
                        readings=readings[site.id],
                    ),
                )
        return observations

    def _boxes(
        self, inventory: Inventory, site: Site, app: str, soaking: tuple[str, float] | None, *, now: float
    ) -> tuple[list[BoxApp], bool]:
        """The boxes that run the app, as their agents last said, and whether any box of the site is online.
        ``soaking``: the version the site soaks on and since when (stored), what a box first seen running that
        version here is taken to have run since. Called under the fleet's lock."""
        reachable = False
        for box_id in site.boxes:
            if box_reachability(self.state, self.state.boxes[box_id], now=now).state == "online":
                reachable = True
        answer: list[BoxApp] = []
        for box_id in app_boxes(inventory, site, app):
            live = self.state.boxes[box_id]
            online = box_reachability(self.state, live, now=now).state == "online"
            reported = None
            if live.heartbeat is not None:
                reported = next((a for a in live.heartbeat.apps.apps if a.name == app), None)
            if reported is None:
                answer.append(BoxApp(box_id, online=online))
                continue
            since: float | None = None
            if reported.state == "running":
                first = soaking[1] if soaking is not None and soaking[0] == reported.version else now
                since = self._running_since.setdefault((box_id, reported.version), min(first, now))
            else:
                self._running_since.pop((box_id, reported.version), None)
            answer.append(BoxApp(box_id, online, reported.version, reported.state, since))
        return _without_boxes_that_run_none(answer, self.state), reachable

    def _workloads(
        self, app: str, clusters: set[ClusterId]
    ) -> tuple[dict[SiteId, tuple[Workload, ...]], dict[SiteId, str], dict[ClusterId, str]]:
        """The app's workloads in each cluster, by the site their label names (one list per cluster), the release
        each site runs by them (``running_release``), and the clusters that could not be listed, with why: one
        cluster down must not stall the sites of the others."""
        found: dict[SiteId, list[Workload]] = defaultdict(list)
        runs: dict[SiteId, str] = {}
        failed: dict[ClusterId, str] = {}
        if self.gateway is None:
            return {}, {}, {}
        kind = _WORKLOAD_KIND[app]
        judge = deployment_rollout if kind == "Deployment" else daemonset_rollout
        for cluster in sorted(clusters):
            try:
                listed = self._list_workloads(cluster, kind, app)
            except ClusterError as exc:
                log.warning("Failed to list a cluster's workloads", extra={"cluster": cluster, "error": str(exc)})
                failed[cluster] = f"cluster {cluster} cannot be reached ({exc.message})"
                continue
            for item in listed.items:
                labels = item.get("metadata", {}).get("labels") or {}
                site = labels.get(rendering.SITE_LABEL)
                if site is None:
                    continue
                found[SiteId(site)].append(
                    Workload(item["metadata"]["name"], labels.get(rendering.RELEASE_LABEL), judge(item))
                )
                runs.setdefault(SiteId(site), running_release(app, item))
        return {site: tuple(sorted(ws, key=lambda w: w.name)) for site, ws in found.items()}, runs, failed

    def _list_workloads(self, cluster: ClusterId, kind: Kind, app: str) -> ObjectList:
        """One list of the app's workloads in ``cluster``, asked a second time at once when the first failed for a
        passing reason (a dropped connection, a 5xx): a list that fails makes the cluster's sites unreachable for
        the tick, which defers every site in flight there and starts its soak again when it is back. In the demo,
        one reset keep-alive connection did that to the canary of a 10-minute soak again and again, each time with
        a "sites deferred" message. Not a timeout (it would hold the tick twice as long) nor a 429 (the server
        asked to wait); a cluster that is down fails both and its sites are deferred as before."""
        gateway = self.gateway
        assert gateway is not None  # _workloads lists nothing without one
        selector = f"{rendering.NAME_LABEL}={app}"
        try:
            return gateway.list_objects(cluster, kind, namespace=rendering.NAMESPACE, label_selector=selector)
        except TemporaryClusterError as exc:
            if exc.retry_after_s is not None or exc.message.startswith("timed out"):
                raise
            log.info("Listing a cluster's workloads again", extra={"cluster": cluster, "error": str(exc)})
        return gateway.list_objects(cluster, kind, namespace=rendering.NAMESPACE, label_selector=selector)

    def _alerts(self) -> dict[SiteId, list[FiringAlert]]:
        alerting = self._alerting()
        if alerting is None:
            return {}
        by_site: dict[SiteId, list[FiringAlert]] = defaultdict(list)
        for state in ("firing", "acknowledged"):
            for alert in alerting.list_alerts(state=state, limit=10_000):
                app = alert.key.detail if alert.key.kind == AlertKind.APP_DOWN else None
                by_site[alert.key.site].append(FiringAlert(str(alert.key.kind), alert.started_at, alert.summary, app))
        return by_site

    # --- acting ---------------------------------------------------------------------------------------------

    def _act(
        self,
        rollout: StoredRollout,
        release: Release,
        inventory: Inventory,
        decision: Decision,
        observations: Mapping[SiteId, SiteObservation],
        previous: dict[SiteId, PreviousRelease],
        audit: list[AuditEntry],
        done: set[Apply | Revert],
        *,
        now: float,
    ) -> dict[SiteId, str]:
        """Apply the decision's actions but those ``done`` already, each on its own: the sites whose change the
        cluster refused, with why (the others are applied, added to ``done`` and audited in ``audit``). A store
        that fails raises: nothing of the tick is kept then."""
        failed: dict[SiteId, str] = {}
        before: str | None
        after: str | None
        for action in decision.actions:
            if not isinstance(action, Apply | Revert) or action in done:
                continue
            try:
                if isinstance(action, Apply):
                    recorded = previous.get(action.site)
                    if recorded is None:
                        running = observations[action.site].running_release
                        yaml = self._manifest_of(running, inventory) if running is not None else None
                        baseline = self._baseline(action.site, release, now=now)
                        recorded = previous[action.site] = self.store.record_previous(
                            rollout.id, PreviousRelease(action.site, running, yaml, baseline), now=now
                        )
                    self._apply(release, action.site, inventory, rollout_id=rollout.id)
                    what, before, after = f"apply {release.name} at {action.site}", recorded.release, release.name
                else:
                    recorded = previous.get(action.site) or PreviousRelease(action.site, action.previous_release, None)
                    what = self._revert(rollout, release, recorded, inventory)
                    before, after = release.name, recorded.release
            except (ClusterError, ReleaseError, ValueError) as exc:
                doing = "apply" if isinstance(action, Apply) else "revert"
                log.warning(
                    f"Failed to {doing} a site; it is left for the next tick",
                    extra={"rollout": rollout.id, "site": action.site, "error": str(exc)},
                )
                failed[action.site] = f"its cluster refused the {doing} ({exc})"
                continue
            done.add(action)
            audit.append(AuditEntry(now, RECONCILER, what, before, after, rollout.id, site=action.site))
        return failed

    def _baseline(self, site: SiteId, release: Release, *, now: float) -> dict[str, float] | None:
        """The site's own health figures before the release reaches it: the mean over its online boxes of the
        version most of them run now (not the release's), or None when none reports figures."""
        self._figures.add(
            release.name, site, site_figures(self.state, site, release.app, now=now), self._reading(site, release.app)
        )
        # The site's figures over the last quarter of an hour (every heartbeat the ingest took), when they rest on
        # enough readings; else the means this reconciler summed over its own ticks (a controller just started).
        with self._window_lock:
            windowed = {
                version: found
                for version in self._window.versions(site, release.app)
                if version != release.version
                and (found := self._window.mean(site, release.app, version, now)) is not None
                and found[1] >= MIN_READINGS_TO_FAIL
            }
        before = {version: figures for version, (figures, _count) in windowed.items()} or {
            version: figures
            for version in self._figures.versions(release.name, site)
            if version != release.version and (figures := self._figures.mean(release.name, site, version))
        }
        if not before:
            return None
        counts = self._versions(site, release.app, now=now)
        return dict(before[max(before, key=lambda version: (counts.get(version, 0), version))])

    def _reading(self, site: SiteId, app: str) -> tuple[tuple[str | None, int], ...]:
        """Which heartbeats the site's figures of ``app`` come from now (the boot and sequence number of each box
        that runs it): ticks come faster than heartbeats, and a heartbeat read on two ticks is one reading, not
        two; nor is a heartbeat of a box that does not run the app (a GPU box's says nothing of scan-upload)."""
        inventory = self.state.inventory
        boxes = app_boxes(inventory, inventory.sites[site], app)
        with self.state.lock:
            return tuple((self.state.boxes[b].boot, self.state.boxes[b].seq) for b in boxes)

    def _versions(self, site: SiteId, app: str, *, now: float) -> dict[str, int]:
        """How many of the site's online boxes report each version of ``app``."""
        counts: dict[str, int] = defaultdict(int)
        with self.state.lock:
            for box_id in self.state.inventory.sites[site].boxes:
                live = self.state.boxes[box_id]
                if live.heartbeat is None or box_reachability(self.state, live, now=now).state != "online":
                    continue
                for app_state in live.heartbeat.apps.apps:
                    if app_state.name == app:
                        counts[app_state.version] += 1
        return counts

    def _manifest_of(self, release: str, inventory: Inventory) -> str | None:
        """The manifest of ``release``: as a rollout of it was submitted, else its file in the releases directory."""
        stored = self.store.release_yaml(release)
        if stored is not None or self.releases_dir is None or not self.releases_dir.is_dir():
            return stored
        for path in release_files([self.releases_dir]):
            try:
                found = load_release(path, inventory)
            except ReleaseError:
                continue  # 'edgefleet releases validate' reports it; another file may be the one
            if release in (found.name, f"{found.app}-{found.version}"):
                return path.read_text(encoding="utf-8")
        return None

    def _gateway(self) -> ClusterGateway:
        if self.gateway is None:
            raise EdgefleetError("the inventory declares no cluster: a rollout has nothing to apply to")
        return self.gateway

    def _apply(self, release: Release, site: SiteId, inventory: Inventory, *, rollout_id: str | None) -> None:
        """Site ``site`` runs ``release``: its rendering applied, the app's other workloads there deleted."""
        gateway = self._gateway()
        cluster = inventory.sites[site].cluster
        if cluster not in self._namespaced:
            gateway.apply(cluster, rendering.namespace(), force=True)
            self._namespaced.add(cluster)
        manifests = rendering.render(release, site, inventory, rollout_id=rollout_id)
        for manifest in manifests:
            gateway.apply(cluster, manifest, force=True)
        keep = {(m["kind"], m["metadata"]["name"]) for m in manifests}
        self._delete(cluster, release.app, site, keep=keep)
        log.info("Applied release to site", extra={"site": site, "release": release.name, "rollout": rollout_id})

    def _delete(
        self, cluster: ClusterId, app: str, site: SiteId, *, keep: set[tuple[str, str]], rollout: str = ""
    ) -> int:
        """Delete the app's workloads and configs at ``site`` but those of ``keep`` (``rollout``: only that
        rollout's); how many were deleted."""
        gateway = self._gateway()
        selector = f"{rendering.NAME_LABEL}={app},{rendering.SITE_LABEL}={site}"
        if rollout:
            selector += f",{rendering.ROLLOUT_LABEL}={rollout}"
        deleted = 0
        kinds: Sequence[Kind] = (_WORKLOAD_KIND[app], "ConfigMap")
        for kind in kinds:
            for item in gateway.list_objects(
                cluster, kind, namespace=rendering.NAMESPACE, label_selector=selector
            ).items:
                name = item["metadata"]["name"]
                if (kind, name) not in keep and gateway.delete(cluster, kind, name, namespace=rendering.NAMESPACE):
                    deleted += 1
        return deleted

    def _revert(self, rollout: StoredRollout, release: Release, recorded: PreviousRelease, inventory: Inventory) -> str:
        """The site runs what it ran before; the audit's words for what was done."""
        site, cluster = recorded.site, inventory.sites[recorded.site].cluster
        if recorded.release is None:
            deleted = self._delete(cluster, release.app, site, keep=set(), rollout=rollout.id)
            log.info("Reverted site: the app was not there before", extra={"site": site, "deleted": deleted})
            return f"revert {site}: deleted {release.app} (it was not there before)"
        if recorded.yaml is None:
            # The release that ran before never went through a rollout here: its manifest is not on record.
            log.warning(
                "Failed to revert site: the previous release's manifest is not on record",
                extra={"site": site, "previous_release": recorded.release, "rollout": rollout.id},
            )
            return f"revert {site}: not done, no manifest of {recorded.release} on record; roll it out by hand"
        before = load_release_text(recorded.yaml, f"release {recorded.release}", inventory)
        self._apply(before, site, inventory, rollout_id=None)
        return f"revert {site} to {recorded.release}"


def _without_boxes_that_run_none(boxes: list[BoxApp], state: FleetState) -> list[BoxApp]:
    """Leave out a box whose agent's latest heartbeat read its apps and lists not the app, once another box of the
    site reports the app: a Deployment's replicas need not land one on each edge node (two may share a node and
    leave another without a pod), and a box that runs no replica would keep the agents' gate waiting until the
    site's deadline. While no box reports the app (a first install), every box counts, so the gate still waits
    for an agent to report the new version."""
    if not any(box.version is not None for box in boxes):
        return boxes
    kept = []
    for box in boxes:
        heartbeat = state.boxes[box.box].heartbeat
        runs_none = box.version is None and heartbeat is not None and heartbeat.apps.error is None
        if not runs_none:
            kept.append(box)
    return kept


def running_release(app: str, workload: Mapping[str, Any]) -> str:
    """The release a workload of ``app`` runs: its release label, else ``<app>-<version>`` from the tag of the
    app's image (a workload set up before edgefleet's rollouts), else ``<app> (unknown release)``."""
    labels = workload.get("metadata", {}).get("labels") or {}
    label = labels.get(rendering.RELEASE_LABEL)
    if label:
        return str(label)
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    image = next((str(c.get("image", "")) for c in containers if c.get("name") == app), "")
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if ":" in name:
        return f"{app}-{name.rsplit(':', 1)[1]}"
    return f"{app} (unknown release)"


def _reported(heartbeat: Heartbeat | None, app: str) -> tuple[str, str] | None:
    """The version and state of ``app`` that ``heartbeat`` reports (None: it reports no such app)."""
    if heartbeat is None:
        return None
    for reported in heartbeat.apps.apps:
        if reported.name == app:
            return reported.version, reported.state
    return None


def _version_of(release: str | None) -> str | None:
    """The version a release's name carries (``sorting-recognition-3.5.0`` -> ``3.5.0``), for the gate's words."""
    if release is None:
        return None
    return release.rsplit("-", 1)[-1] if "-" in release else release


class _FigureMeans:
    """Running means of each site's health figures per version, per release being rolled out (in memory: after a
    restart the means start again, as the soak does). Each mean is updated in place (``mean += (x - mean) / n``), so
    equal readings keep their exact value where a sum divided by its count would drift by a rounding error. A
    reading is counted once: ``add`` with the same ``reading`` (which heartbeats it comes from) as the last one
    for the site adds nothing, so the count says how many readings a mean rests on (the health gate's
    ``readings``)."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, SiteId, str], dict[str, tuple[float, int]]] = {}
        self._last: dict[tuple[str, SiteId], Hashable] = {}

    def add(self, release: str, site: SiteId, by_version: Mapping[str, Mapping[str, float]], reading: Hashable) -> None:
        if self._last.get((release, site)) == reading:
            return
        self._last[(release, site)] = reading
        for version, figures in by_version.items():
            sums = self._sums.setdefault((release, site, version), {})
            for name, value in figures.items():
                mean, count = sums.get(name, (0.0, 0))
                sums[name] = (mean + (value - mean) / (count + 1), count + 1)

    def mean(self, release: str, site: SiteId, version: str) -> dict[str, float] | None:
        sums = self._sums.get((release, site, version))
        if not sums:
            return None
        return {name: mean for name, (mean, _count) in sums.items()}

    def readings(self, release: str, site: SiteId, version: str) -> int:
        """How many readings the means rest on: the fewest of any figure (0: none)."""
        sums = self._sums.get((release, site, version))
        return min((count for _mean, count in sums.values()), default=0) if sums else 0

    def versions(self, release: str, site: SiteId) -> list[str]:
        return sorted(version for (r, s, version) in self._sums if r == release and s == site)

    def forget_all_but(self, releases: set[str]) -> None:
        """Drop the sums of releases no longer being rolled out."""
        for key in [key for key in self._sums if key[0] not in releases]:
            del self._sums[key]
        for last in [last for last in self._last if last[0] not in releases]:
            del self._last[last]
