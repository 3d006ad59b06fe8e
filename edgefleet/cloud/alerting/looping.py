"""The alert loop: the thin I/O shell that runs the pure alerting modules' passes, built and started by the
controller.

An APScheduler job (``JOB_ID``, ``max_instances=1``, ``coalesce=True``) ticks every ``TICK_S`` and runs a pass
when one is due: every ``PASS_INTERVAL_S``, and at once when a box's "offline" status (its Last Will) arrived
since the last pass, or when someone acknowledged an alert or changed the silences. One pass:

1. copies every box and the inventory in force under the fleet lock (``fleet.copy_box``) and evaluates the copies
   outside it (``evaluating.evaluate``: reachability, flapping, site correlation, health);
2. resolves the alerts of boxes and sites the inventory no longer has (``reconciling.resolve_removed``: "removed
   from inventory"), and reconciles the rest with the evaluation and the silences (``reconciling.reconcile_alerts``);
3. hands the transitions to ``record``: with a notification file, it plans the messages
   (``notifying.plan_notifications``) and puts them in the outbox together with the planner's state
   (``outbox.Outbox.put``: one transaction), then saves every transition's alert in the alert store
   (``store.AlertStore``) and calls ``on_planned`` (the delivery worker's wake, ``delivering.DeliveryWorker``).

Why a pass also runs on an "offline" status: a dropped connection must be told within 2 s, and a box whose agent
reconnects within a second (paho's first retry comes after 1 s) would otherwise fall between two passes and
never be told at all. The check is a scan of the boxes' status fields under the lock (about 0.1 ms for 2,000
boxes); heartbeats need no such trigger, their timeout is measured in whole seconds.

Two transactions, outbox first. ``Outbox.put`` opens its own transaction, so the alerts cannot join it. At
start-up ``resuming.resume_transitions`` makes the two agree (see there). A failed save of alerts is kept and
retried by the next pass; a failed ``put`` leaves everything as it was, and the next pass plans the same again.

Hearing. A box silent because the controller could not hear it is not lost. Every tick assesses the ingest's own
measurements (``hearing.assess``: deaf, behind, recovering or hearing). While it is not "hearing", passes run
held: they judge no silence (no evaluation, the memory stays as it was) and only keep the one fleet-level alert
(``controller-deaf``, once a spell lasts ``hearing.FLEET_ALERT_AFTER_S``). A (re)start begins recovering: the
saved receive times are old. Once hearing again, the time the controller was deaf, behind or recovering is not
counted as any box's silence (``credit_silence``): a box is lost after a whole timeout of silence the controller
could have heard. Last Wills are judged only while hearing, and only ``hearing.WILL_SETTLE_S`` after they arrived.

Every time the loop reads comes from its ``Clock``: wall-clock ``now()`` for what is judged, ``monotonic()`` for
when passes are due and how long a hold lasts, so tests drive the whole loop with a ``FakeClock``.

People's commands (``commands.AlertCommands``: acknowledge, silence) change alerts through ``record`` and
``silences_changed`` while holding ``lock``, the pass lock, so a pass never overwrites an acknowledgement with the
alert as it was read before it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.clock import Clock
from edgefleet.cloud.alerting.alerts import (
    FLEET,
    AlertingError,
    AlertKey,
    AlertKind,
    DesiredAlert,
    Severity,
    StoredAlert,
    Transition,
)
from edgefleet.cloud.alerting.config import NotificationConfig
from edgefleet.cloud.alerting.evaluating import Evaluation, evaluate
from edgefleet.cloud.alerting.notifying import NotifierState, plan_notifications
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.alerting.reconciling import reconcile_alerts, resolve_removed
from edgefleet.cloud.alerting.resuming import resume_memory, resume_transitions
from edgefleet.cloud.alerting.routes import DEFAULT_DINGTALK_PER_MINUTE
from edgefleet.cloud.alerting.rules import AlertRules
from edgefleet.cloud.alerting.silences import Silence
from edgefleet.cloud.alerting.store import AlertStore
from edgefleet.cloud.alerting.tracking import FleetTrack
from edgefleet.cloud.fleet import BoxLive, FleetState, SilenceHold, copy_box, heartbeat_timeout
from edgefleet.cloud.hearing import (
    Hearing,
    HearingLimits,
    IngestStats,
    assess,
    fleet_alert_due,
    recovery_bound,
    settling,
    starting,
)
from edgefleet.cloud.leading import NotLeaderError
from edgefleet.cloud.nodes import NodeBook
from edgefleet.cloud.saving import WriterHealth
from edgefleet.cloud.scheduling import start_interval_job
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId
from edgefleet.inventory import Inventory

log = logging.getLogger(__name__)

JOB_ID: Final = "edgefleet-alerts"
# The scheduler's tick: how soon a Last Will, an acknowledgement or a new silence reaches a pass.
TICK_S: Final = 0.2
# A full pass every second: a heartbeat timeout is told within a second of passing (the target is the
# timeout + 2 s), at about 25 ms of CPU a pass for 2,000 boxes (docs/performance.md, "Detection").
PASS_INTERVAL_S: Final = 1.0
# A pass longer than this delays what it tells; say so (once per streak) so that it can be looked into.
SLOW_PASS_S: Final = 0.5
# Alerts without a route are logged once each; past this many the log names no more of them.
MAX_UNROUTED_LOGGED: Final = 1000
# A restart's hold is one heartbeat timeout of the slowest site, but never longer than this: judging nothing for an
# hour after each restart (a site that beats hourly) would be worse than a late box-lost alert of such a site.
MAX_RESTART_HOLD_S: Final = 300.0
# Spans of deafness kept for crediting silence: a box silent longer than a day is lost whatever happened before.
MAX_HOLDS_KEPT: Final = 100
HOLD_MEMORY_S: Final = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did: its evaluation time, transitions, messages planned and how long it took."""

    at: float
    transitions: int
    fired: int
    resolved: int
    messages: int
    seconds: float
    # Run while the controller did not hear the fleet: no silence was judged.
    held: bool = False


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What evaluation reads (``evaluating.FleetView``): the inventory, copies of every box, and the spans the
    controller could not hear."""

    inventory: Inventory
    boxes: Mapping[BoxId, BoxLive]
    silence_holds: Sequence[SilenceHold]
    nodes: NodeBook


# A box's "offline" status as the loop remembers having evaluated it: a new one triggers a pass at once.
_OfflineMark = tuple[BoxId, str | None, int]


class FailureLog:
    """Logs a failing step once per streak (a database away for an hour is one warning, not 3,600) and its
    recovery once. Shared by the loop and the delivery worker."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._failing: set[str] = set()

    def failed(self, what: str, message: str, exc: Exception, **context: object) -> None:
        if what in self._failing:
            return
        self._failing.add(what)
        self._log.warning(
            message, extra={"error": str(exc)[:500], **context}, exc_info=not isinstance(exc, AlertingError)
        )

    def recovered(self, what: str, message: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            self._log.info(message)


def hearing_limits(inventory: Inventory) -> HearingLimits:
    """The recovery bounds for this inventory: after an outage, the agents' backoff plus the slowest site's
    heartbeat interval; after a (re)start, one heartbeat timeout of the slowest site (at most ``MAX_RESTART_HOLD_S``)."""
    sites = inventory.sites.values()
    slowest = max((site.interval_s for site in sites), default=10.0)
    timeout = max((heartbeat_timeout(site.interval_s, site.missed_beats) for site in sites), default=36.0)
    return HearingLimits(recovery_max_s=recovery_bound(slowest), restart_max_s=min(MAX_RESTART_HOLD_S, timeout))


def _always_hearing() -> IngestStats:
    return IngestStats(subscribed=True, since_last_message_s=0.0, lag_s=0.0, busy=0.0)


class AlertLoop:
    """Evaluates, stores and plans the notification of alerts. Build it after the fleet state is restored (it
    reads the database: the alert tables are created, the active alerts and the planner's state loaded), then
    ``start``; ``stop`` ends the job. ``config`` None: alerts are evaluated, stored and listed, but nothing is
    planned for sending. ``stats`` gives the ingest's measurements of its own hearing (``Ingest.stats``; by default
    always hearing); ``on_planned`` is called after messages went into the outbox; ``limits`` overrides the
    hearing limits taken from the inventory."""

    def __init__(
        self,
        state: FleetState,
        store: Store,
        *,
        clock: Clock,
        config: NotificationConfig | None,
        stats: Callable[[], IngestStats] = _always_hearing,
        on_planned: Callable[[], None] = lambda: None,
        pass_interval_s: float = PASS_INTERVAL_S,
        limits: HearingLimits | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.config = config
        self.pass_interval_s = pass_interval_s
        self._stats = stats
        self._on_planned = on_planned
        self._rules = config.rules if config is not None else AlertRules()
        self._limits = limits if limits is not None else hearing_limits(state.inventory)
        self.alerts = AlertStore(store)
        # The outbox's own limit counts every request to a robot, retries included, against the same budget the
        # planner keeps: a robot never gets more than ``dingtalk_per_minute`` requests a minute.
        self.outbox = Outbox(
            store,
            dingtalk_per_minute=config.routes.dingtalk_per_minute if config else DEFAULT_DINGTALK_PER_MINUTE,
        )
        # Held by a pass and by every command that changes alerts or silences (re-entrant: ``record`` takes it too).
        self.lock = threading.RLock()
        self._active: dict[AlertKey, StoredAlert] = {}
        self._unsaved: dict[str, StoredAlert] = {}
        self._queued: list[Transition] = []
        self._notifier = NotifierState()
        self._silences: list[Silence] = []
        self._offline_seen: frozenset[_OfflineMark] = frozenset()
        self._unrouted_logged: set[AlertKey] = set()
        self._pass_requested = False
        self._next_pass_at = clock.monotonic()
        self._bad_since_at: float | None = None
        self._failures = FailureLog(log)
        self._saving = WriterHealth()
        self._slow_passes = 0
        self._scheduler: BackgroundScheduler | None = None
        # Whether ticks run passes: only on the leader. A standby's ticks assess its hearing alone, so its
        # /healthz and the holds its API judges reachability by stay true (edgefleet.cloud.leading).
        self.passing = True
        self._resume()
        self._track = self._resume_memory()
        # A (re)started controller recovers first; the time since the last receive it saved is nobody's silence.
        with state.lock:
            seen = [live.last_seen for live in state.boxes.values() if live.last_seen is not None]
        wall_now = clock.now()
        self._hearing: Hearing = starting(now=clock.monotonic(), wall_now=wall_now)
        self._holds: list[SilenceHold] = []
        self._hold_started_at: float | None = min(max(seen, default=wall_now), wall_now)
        self._online_before = self._online_now()
        self._publish_holds()

    # --- start-up ---------------------------------------------------------------------------------------------

    def _resume(self) -> None:
        now = self.clock.now()
        active = self.alerts.active()
        self._silences = [r.silence for r in self.alerts.silences(ending_after=now, limit=None)]
        if self.config is None:
            self._active = active
            # Info, not a warning: running without a file is a choice (a lab, a first start), not a fault.
            log.info(
                "Started alerting without a notification file: alerts are evaluated, stored and listed, not sent",
                extra={"active_alerts": len(active), "hint": "set EDGEFLEET_NOTIFICATIONS or --notifications"},
            )
            return
        self._notifier = self.outbox.load_state()
        latest = self.alerts.latest([key for key in self._notifier.alerts if key not in active])
        resume = resume_transitions(active, latest, self._notifier.alerts, now=now)
        if resume.repairs:
            try:
                self.alerts.save(resume.repairs)
            except NotLeaderError:
                # A standby repairs nothing: the leader does, and this one again when it takes over (``take_over``).
                log.info("Left alert repairs to the leader", extra={"count": len(resume.repairs)})
                return
            log.warning(
                "Repaired alerts that the planner knew and the store lacked",
                extra={"alerts": [a.id for a in resume.repairs][:20], "count": len(resume.repairs)},
            )
        for alert in resume.repairs:
            active[alert.key] = alert
        self._active = {key: alert for key, alert in active.items() if alert.active}
        self._queued = list(resume.transitions)
        log.info(
            "Resumed alerting",
            extra={
                "active_alerts": len(self._active),
                "silences": len(self._silences),
                "to_plan": len(self._queued),
                "notification_file": self.config.source,
                "channels": len(self.config.targets),
            },
        )

    def _resume_memory(self) -> FleetTrack:
        inventory = self.state.inventory
        window = max((self._rules.for_site(s).flapping_window_s for s in inventory.sites), default=0.0)
        history = self.alerts.changed_since((AlertKind.BOX_LOST, AlertKind.SITE_UNREACHABLE), self.clock.now() - window)
        with self.state.lock:
            seen = {box for box, live in self.state.boxes.items() if live.last_seen is not None}
        return resume_memory(self._active.values(), history, seen=seen)

    def take_over(self) -> None:
        """A standby became the leader: read again what the previous leader left (active alerts, silences, the
        planner's state and the flapping memory). The live fleet state is not touched: this controller heard it
        all along, and its hearing is assessed as at any pass, so a takeover is no cold start and no box is judged
        lost for the time it was a standby."""
        with self.lock:
            self._active = {}
            self._unsaved = {}
            self._queued = []
            self._notifier = NotifierState()
            self._resume()
            self._track = self._resume_memory()
            self._pass_requested = True

    def start(self) -> None:
        if self._scheduler is not None:
            return
        self._scheduler = start_interval_job(self.tick, seconds=TICK_S, job_id=JOB_ID)

    def stop(self) -> None:
        """Stop the job, waiting for a pass in flight. Safe to call twice."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    @property
    def evaluating(self) -> bool:
        """Whether passes judge the fleet now (the controller hears it: ``hearing``)."""
        return self._hearing.judging

    @property
    def hearing(self) -> Hearing:
        """The latest assessment of the controller's hearing (for /healthz and /metrics)."""
        return self._hearing

    @property
    def sending(self) -> bool:
        """Whether notifications are planned and sent (a notification file was given)."""
        return self.config is not None

    # --- the job ----------------------------------------------------------------------------------------------

    def tick(self) -> PassReport | None:
        """Assess the hearing, and run a pass if one is due (see the module docstring). Never raises: it runs in
        the scheduler's thread."""
        try:
            self._assess()
            if not self.passing:
                return None
            due = self.clock.monotonic() >= self._next_pass_at or self._pass_requested
            if due or (self._hearing.judging and self._new_offline_status()):
                report = self.run_pass()
                self._failures.recovered("pass", "Ran alert pass again after failures")
                return report
        except Exception as exc:
            self._failures.failed("pass", "Failed to run alert pass; trying again", exc)
        return None

    def _online_now(self) -> frozenset[BoxId]:
        """The boxes online as the last pass saw them: whose return says the fleet is heard again."""
        return frozenset(box for box, track in self._track.boxes.items() if track.state == "online")

    def _heard_share(self) -> float:
        since = self._hearing.recovery_started_at
        if since is None or not self._online_before:
            return 1.0
        with self.state.lock:
            boxes = self.state.boxes
            heard = sum(
                1
                for box in self._online_before
                if (live := boxes.get(box)) is None or (live.last_seen is not None and live.last_seen >= since)
            )
        return heard / len(self._online_before)

    def _publish_holds(self) -> None:
        """Put the spans the controller could not hear into the fleet state, the open one ending at infinity, so
        that the API judges reachability as evaluation does."""
        holds = list(self._holds)
        if self._hold_started_at is not None:
            holds.append((self._hold_started_at, float("inf")))
        with self.state.lock:
            self.state.silence_holds = tuple(holds)

    def _assess(self) -> None:
        before = self._hearing
        now, wall_now = self.clock.monotonic(), self.clock.now()
        after = assess(
            before,
            self._stats(),
            now=now,
            wall_now=wall_now,
            heard_share=self._heard_share(),
            boxes_were_online=bool(self._online_now()),
            limits=self._limits,
        )
        self._hearing = after
        if after.state == before.state:
            return
        if before.state == "hearing":  # a hold begins: who is online now must be heard again to end it
            self._hold_started_at = wall_now
            self._online_before = self._online_now()
        if after.state in ("deaf", "behind") and before.state not in ("deaf", "behind"):
            self._bad_since_at = wall_now
        if after.state == "hearing":
            if self._hold_started_at is not None:
                self._holds = [*self._holds, (self._hold_started_at, wall_now)][-MAX_HOLDS_KEPT:]
                self._holds = [(s, e) for s, e in self._holds if e > wall_now - HOLD_MEMORY_S]
            self._hold_started_at = None
            self._bad_since_at = None
        self._publish_holds()
        level = logging.WARNING if after.state in ("deaf", "behind") else logging.INFO
        log.log(
            level,
            "Judging box silence again"
            if after.judging
            else f"Holding alert evaluation: the controller is {after.state}",
            extra={"hearing": after.state, "reason": after.reason},
        )

    def _new_offline_status(self) -> bool:
        seen = self._offline_seen
        with self.state.lock:
            for box, live in self.state.boxes.items():
                if live.status_state == "offline" and (box, live.status_boot, live.status_session) not in seen:
                    return True
        return False

    def _snapshot(self) -> _Snapshot:
        with self.state.lock:
            boxes = {box: copy_box(live) for box, live in self.state.boxes.items()}
            inventory = self.state.inventory
            holds = self.state.silence_holds
            nodes = self.state.nodes
        return _Snapshot(inventory, boxes, holds, nodes)

    def run_pass(self) -> PassReport:
        """One pass now: evaluate, reconcile, record; held (no silence judged) while the controller does not hear
        the fleet. Raises when the outbox cannot take the plan (nothing is taken then: the next pass plans the
        same again)."""
        with self.lock:
            started = self.clock.monotonic()
            self._pass_requested = False
            self._next_pass_at = started + self.pass_interval_s
            now = self.clock.now()
            self._silences = [s for s in self._silences if s.ends_at > now]
            fleet_active = {k: a for k, a in self._active.items() if k.site == FLEET}
            fleet = self._fleet_evaluation(now)
            fleet_transitions = reconcile_alerts(fleet_active, fleet, self._silences, now=now)
            held = not self._hearing.judging
            if held:
                transitions = [*self._queued, *fleet_transitions]
                evaluation = None
                view = None
            else:
                view = self._snapshot()
                for live in view.boxes.values():  # copies: a will too fresh to judge leaves the box to its heartbeats
                    if settling(live.status_state, live.status_taken_at, now=now):
                        live.status_state = None
                evaluation = evaluate(view, self._track, self._rules, now=now)
                boxes_active = {k: a for k, a in self._active.items() if k.site != FLEET}
                # Alerts of boxes and sites the inventory no longer has resolve with that reason, not as "cleared".
                removed = resolve_removed(boxes_active, view.inventory, now=now)
                gone = {t.alert.key for t in removed}
                active = {key: alert for key, alert in boxes_active.items() if key not in gone}
                reconciled = reconcile_alerts(active, evaluation, self._silences, now=now)
                transitions = [*self._queued, *removed, *reconciled, *fleet_transitions]
            messages = self.record(transitions, now=now)
            # The plan is in the outbox: from here on the pass counts as done, whatever the alert store says.
            self._queued = []
            if evaluation is not None and view is not None:
                self._track = evaluation.track
                self._offline_seen = frozenset(
                    (box, live.status_boot, live.status_session)
                    for box, live in view.boxes.items()
                    if live.status_state == "offline"
                )
            seconds = self.clock.monotonic() - started
        self._note_duration(seconds)
        return PassReport(
            at=now,
            transitions=len(transitions),
            fired=sum(1 for t in transitions if t.action == "fire"),
            resolved=sum(1 for t in transitions if t.action == "resolve"),
            messages=messages,
            seconds=seconds,
            held=held,
        )

    def _fleet_evaluation(self, now: float) -> Evaluation:
        """The fleet-level alert as an evaluation of its own: desired while a deaf or behind spell lasts long
        enough (and through its recovery)."""
        hearing = self._hearing
        desired: dict[AlertKey, DesiredAlert] = {}
        if fleet_alert_due(hearing, now=self.clock.monotonic()):
            key = AlertKey(AlertKind.CONTROLLER_DEAF, FLEET)
            behind = hearing.state == "behind"
            summary = (
                "Controller cannot keep up with the fleet's messages" if behind else "Controller cannot hear the fleet"
            )
            desired[key] = DesiredAlert(
                key=key,
                severity=Severity.CRITICAL,
                summary=summary,
                description=(
                    "The controller does not judge box silence while it cannot hear the fleet: no box-lost or "
                    "site-unreachable alert is raised for silence it caused itself. Check the broker, the "
                    "controller's log (hearing) and /healthz; GET /metrics has edgefleet_ingest_lag_seconds and "
                    "edgefleet_ingest_busy_ratio."
                ),
                labels={"kind": str(AlertKind.CONTROLLER_DEAF), "site": str(FLEET), "severity": "critical"},
                started_at=self._bad_since_at if self._bad_since_at is not None else now,
                details={"hearing": "behind" if behind else "deaf"},
            )
        return Evaluation(desired=desired, inhibited=frozenset(), inhibited_by={}, track=self._track, at=now)

    # --- what passes and commands share -------------------------------------------------------------------

    def record(self, transitions: Sequence[Transition], *, now: float) -> int:
        """Plan the transitions' notifications into the outbox, keep each alert as the latest of its key and
        save them; returns how many messages were planned. Raises when the outbox cannot take the plan (then
        nothing was taken). Takes ``lock``."""
        with self.lock:
            messages = 0
            if self.config is not None:  # also with no transitions: held groups fall due with time
                plan = plan_notifications(transitions, self.config.routes, self._notifier, now=now)
                self.outbox.put(plan.messages, plan.state)
                self._notifier = plan.state
                messages = len(plan.messages)
                self._note_unrouted(plan.unrouted)
            for transition in transitions:
                self._take(transition)
            self._save_unsaved()
        if messages:
            self._on_planned()
        return messages

    def find(self, alert_id: str) -> StoredAlert | None:
        """The loop's own copy of an alert: active, or changed and not yet saved; None when it holds none."""
        with self.lock:
            for alert in self._active.values():
                if alert.id == alert_id:
                    return alert
            return self._unsaved.get(alert_id)

    def unsaved(self) -> dict[str, StoredAlert]:
        """The alerts changed since the last successful save, by id (a copy): what the store lacks or holds an
        older version of. Lists merge these over the store's rows, so an alert the store refused is still listed."""
        with self.lock:
            return dict(self._unsaved)

    @property
    def saving(self) -> WriterHealth:
        """How the saves of alerts fare (for /healthz and /metrics)."""
        return self._saving

    def silences_changed(self, *, added: Silence | None = None, ended: str | None = None) -> None:
        """A silence was stored or ended: mute (or unmute) by it from the next pass, which runs at once."""
        with self.lock:
            if added is not None:
                self._silences.append(added)
            if ended is not None:
                self._silences = [s for s in self._silences if s.id != ended]
            self._pass_requested = True

    def _take(self, transition: Transition) -> None:
        """Keep ``transition.alert`` as the latest of its key (dropped once resolved) and queue it for the store."""
        alert = transition.alert
        if alert.active:
            self._active[alert.key] = alert
        elif self._active.get(alert.key, alert).id == alert.id:
            self._active.pop(alert.key, None)
        self._unsaved[alert.id] = alert
        if transition.action in ("fire", "resolve"):
            level = logging.INFO if transition.notify else logging.DEBUG
            log.log(
                level,
                "Fired alert" if transition.action == "fire" else "Resolved alert",
                extra={
                    "alert": alert.id,
                    "kind": str(alert.key.kind),
                    "site": alert.key.site,
                    "box": alert.key.box,
                    "detail": alert.key.detail,
                    "muted": alert.muted,
                    "notified": transition.notify,
                },
            )

    def _save_unsaved(self) -> None:
        if not self._unsaved:
            return
        saving = self._saving
        try:
            self.alerts.save(list(self._unsaved.values()))
        except Exception as exc:  # kept; the next pass tries again
            self._saving = dataclasses.replace(
                saving,
                failed_saves=saving.failed_saves + 1,
                failure_streak=saving.failure_streak + 1,
                last_error=str(exc)[:500],
                pending=len(self._unsaved),
            )
            self._failures.failed(
                "save", "Failed to save alerts; keeping them for the next pass", exc, alerts=len(self._unsaved)
            )
            return
        self._failures.recovered("save", "Saved alerts again after failures")
        self._unsaved.clear()
        self._saving = WriterHealth(
            saves=saving.saves + 1, failed_saves=saving.failed_saves, last_saved_at=self.clock.now()
        )

    def _note_unrouted(self, keys: Collection[AlertKey]) -> None:
        for key in keys:
            if key in self._unrouted_logged or len(self._unrouted_logged) >= MAX_UNROUTED_LOGGED:
                continue
            self._unrouted_logged.add(key)
            log.warning(
                "Found no route for alert; it is stored but sent nowhere",
                extra={"alert": str(key), "notification_file": self.config.source if self.config else None},
            )

    def _note_duration(self, seconds: float) -> None:
        if seconds > SLOW_PASS_S:
            self._slow_passes += 1
            if self._slow_passes == 1:
                log.warning("Ran slow alert pass", extra={"seconds": round(seconds, 3), "boxes": len(self.state.boxes)})
        else:
            self._slow_passes = 0
