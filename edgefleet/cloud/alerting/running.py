"""The alert loop: the thin I/O shell around the pure alerting modules, built and started by the controller.

An APScheduler job (``JOB_ID``, ``max_instances=1``, ``coalesce=True``) ticks every ``TICK_S`` and runs a pass
when one is due: every ``PASS_INTERVAL_S``, and at once when a box's "offline" status (its Last Will) arrived
since the last pass, or when someone acknowledged an alert or changed the silences. One pass:

1. copies every box under the fleet lock (``fleet.copy_box``) and evaluates the copies outside it
   (``evaluating.evaluate``: reachability, flapping, site correlation, health);
2. reconciles them with the active stored alerts and the silences (``reconciling.reconcile_alerts``);
3. with a notification file, plans the messages (``notifying.plan_notifications``) and puts them in the outbox
   together with the planner's state (``outbox.Outbox.put``: one transaction);
4. saves every transition's alert in the alert store (``store.AlertStore``), and wakes the delivery worker.

Delivery (``Outbox.deliver_due``) runs in a thread of its own, woken after a pass that planned messages and every
``DELIVERY_POLL_S`` for retries, so a receiver that takes its 5 s to time out never holds up evaluation.

Why a pass also runs on an "offline" status: a dropped connection must be told within 2 s, and a box whose agent
reconnects within a second (paho's first retry comes after 1 s) would otherwise fall between two passes and
never be told at all. The check is a scan of the boxes' status fields under the lock (about 0.1 ms for 2,000
boxes); heartbeats need no such trigger, their timeout is measured in whole seconds.

Two transactions, outbox first. ``Outbox.put`` opens its own transaction, so the alerts cannot join it. If the
controller dies between the two, the planner's state holds alerts (or newer versions of them) that the store
lacks. At start-up ``resume_transitions`` compares the two: it writes the planner's versions into the store, and
hands the planner what it missed (an acknowledgement, an alert no plan ever saw, such as one that fired while
there was no notification file). So a restart tells nothing twice and forgets nothing that fired. A failed save
of alerts is kept and retried by the next pass; a failed ``put`` leaves everything as it was, and the next pass
plans the same again. Evaluation's memory is rebuilt from the stored alerts by ``resume_memory``
(``evaluating.resume_track`` plus each box's reachability and recent transitions).

Warm-up. The fleet state restored at start-up holds the receive times of before the stop; judged at once, every
box would look lost. Evaluation waits until the ingest is subscribed and every site has had one full heartbeat
timeout (``missed_beats x interval_s``, at most ``MAX_WARM_UP_S``) to be heard. A lost broker connection pauses
evaluation the same way: a controller that hears nothing must not call every site unreachable.

The API acknowledges alerts and changes silences through this object; those steps take the pass lock, so a pass
never overwrites an acknowledgement with the alert as it was read before it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import httpx
from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.clock import Clock
from edgefleet.cloud.alerting.alerts import (
    RESOLVED_BY_CONTROLLER,
    AlertingError,
    AlertKey,
    AlertKind,
    AlertState,
    StoredAlert,
    Transition,
    acknowledge,
)
from edgefleet.cloud.alerting.config import NotificationConfig
from edgefleet.cloud.alerting.delivery import Sender, build_senders, http_client
from edgefleet.cloud.alerting.evaluating import evaluate, resume_track
from edgefleet.cloud.alerting.notifying import NotifierState, plan_notifications
from edgefleet.cloud.alerting.outbox import DeliveryReport, Outbox
from edgefleet.cloud.alerting.reconciling import reconcile_alerts
from edgefleet.cloud.alerting.routes import DEFAULT_DINGTALK_PER_MINUTE
from edgefleet.cloud.alerting.rules import TRANSITION_MEMORY, AlertRules
from edgefleet.cloud.alerting.silences import Silence, validate_silence
from edgefleet.cloud.alerting.store import AlertStore, SilenceRecord
from edgefleet.cloud.alerting.tracking import BoxTrack, FleetTrack
from edgefleet.cloud.fleet import BoxLive, FleetState, ReachabilityState, copy_box
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

log = logging.getLogger(__name__)

JOB_ID: Final = "edgefleet-alerts"
# The scheduler's tick: how soon a Last Will, an acknowledgement or a new silence reaches a pass.
TICK_S: Final = 0.2
# A full pass every second: a heartbeat timeout is told within a second of passing (the target is the
# timeout + 2 s), at about 25 ms of CPU a pass for 2,000 boxes (docs/performance.md, "Detection").
PASS_INTERVAL_S: Final = 1.0
# The delivery worker looks for retries due this often when no pass wakes it.
DELIVERY_POLL_S: Final = 1.0
# Delivered messages are kept a day and failed ones a week (outbox.py); trimming them hourly is plenty.
PRUNE_INTERVAL_S: Final = 3600.0
# A pass longer than this delays what it tells; say so (once per streak) so that it can be looked into.
SLOW_PASS_S: Final = 0.5
# Alerts without a route are logged once each; past this many the log names no more of them.
MAX_UNROUTED_LOGGED: Final = 1000
# The warm-up is one heartbeat timeout of the slowest site, but never longer than this: alerting blind for an
# hour after each restart (a site that beats hourly) would be worse than a box-lost alert of such a site's box that
# has not beaten since a long controller outage.
MAX_WARM_UP_S: Final = 300.0
# How long stop() waits for a delivery in flight (a receiver's 5 s timeout, and a margin).
DELIVERY_STOP_TIMEOUT_S: Final = 10.0


class AlertNotFound(AlertingError):
    """No alert (or silence) with the id asked for; the message says where to find ids."""


class SilenceRejected(AlertingError):
    """A new silence is not valid; ``problems`` lists every reason, each saying what to change."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class SilenceStateError(AlertingError):
    """The silence already ended; the message says when and by whom."""


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did: its evaluation time, transitions, messages planned and how long it took."""

    at: float
    transitions: int
    fired: int
    resolved: int
    messages: int
    seconds: float


# --- resuming after a restart (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resume:
    """What a restarted loop does before its first pass: ``repairs`` are alerts to write into the store (the
    planner had them, the store's write was lost), ``transitions`` are handed to the first pass's plan."""

    repairs: tuple[StoredAlert, ...]
    transitions: tuple[Transition, ...]


def resume_transitions(
    active: Mapping[AlertKey, StoredAlert],
    latest: Mapping[AlertKey, StoredAlert],
    planned: Mapping[AlertKey, StoredAlert],
    *,
    now: float,
) -> Resume:
    """Make the alert store and the planner's memory agree after a restart. Pure.

    ``active``: the store's active alerts; ``latest``: the store's newest firing of the other keys the planner
    knows; ``planned``: the planner's latest version of each alert it took (``NotifierState.alerts``: active,
    unmuted ones). Per key:
    - the planner has a firing the store lacks, or a newer version of it: the store's write was lost after the
      outbox's; the planner's version is written (and an older firing it replaced is resolved);
    - the store resolved an alert the planner still has, or holds a newer version (an acknowledgement): the
      planner is given the transition, a resolve being told;
    - the store has an active, unmuted alert the planner never took (it fired while there was no notification
      file, or the planner's state was unreadable): it is told as firing now.
    """
    repairs: list[StoredAlert] = []
    transitions: list[Transition] = []
    for key in sorted(active.keys() | planned.keys(), key=lambda k: k.sort_key):
        stored = active.get(key) or latest.get(key)
        told = planned.get(key)
        if told is None:
            if stored is not None and stored.active and stored.muted is None:
                transitions.append(Transition("fire", stored, None, notify=True, at=now))
            continue
        if stored is None or (stored.id != told.id and stored.fired_at < told.fired_at):
            if stored is not None and stored.active:
                repairs.append(
                    dataclasses.replace(
                        stored,
                        state="resolved",
                        resolved_by=RESOLVED_BY_CONTROLLER,
                        resolved_at=told.fired_at,
                        updated_at=told.fired_at,
                    )
                )
            repairs.append(told)
        elif not stored.active:
            transitions.append(Transition("resolve", stored, told, notify=True, at=now))
        elif stored.id != told.id or stored.updated_at > told.updated_at:
            acknowledged = stored.state == "acknowledged" and told.state != "acknowledged"
            transitions.append(
                Transition("acknowledge" if acknowledged else "update", stored, told, notify=False, at=now)
            )
        elif stored.updated_at < told.updated_at:
            repairs.append(told)
    return Resume(tuple(repairs), tuple(transitions))


def resume_memory(
    active: Iterable[StoredAlert], history: Iterable[StoredAlert], *, seen: Collection[BoxId]
) -> FleetTrack:
    """Evaluation's memory for a restarted loop, from the stored alerts. Pure.

    ``evaluating.resume_track`` rebuilds what active alerts need (health conditions, flapping, site alerts); this
    adds each box's reachability as the last pass saw it and its recent online/offline transitions:
    - a box with an active box-lost alert was offline since it fired; one of ``seen`` (boxes the fleet state has
      a heartbeat of) without one was online; the others were never seen. Left to be observed anew, a lost box
      would count as "just went offline": with a few quiet boxes beside it the correlation hold would mute its
      alert and unmute it a moment later, telling it twice; and a box that went offline during the restart would
      not count the change;
    - the transitions are the fire and resolve times of its box-lost alerts in ``history`` (a box-lost alert
      fires in the very pass that sees the box go offline and resolves in the one that sees it back), but those
      while its site's site-unreachable alert was active: evaluation does not count those either.
    ``history``: box-lost and site-unreachable alerts, any state, at least those changed within the flapping
    window.
    """
    current = list(active)
    track = resume_track(current)
    outages: dict[SiteId, list[tuple[float, float]]] = {}
    changes: dict[BoxId, list[float]] = {}
    lost: dict[BoxId, StoredAlert] = {}
    for alert in [*history, *current]:
        key = alert.key
        if key.kind == AlertKind.SITE_UNREACHABLE:
            end = alert.resolved_at if alert.resolved_at is not None else float("inf")
            outages.setdefault(key.site, []).append((alert.started_at, end))
        elif key.kind == AlertKind.BOX_LOST and key.box is not None:
            times = changes.setdefault(key.box, [])
            times += [t for t in (alert.fired_at, alert.resolved_at) if t is not None]
            if alert.active:
                lost[key.box] = alert
    boxes = dict(track.boxes)
    sites = {alert.key.box: alert.key.site for alert in [*history, *current] if alert.key.box is not None}
    for box in set(seen) | changes.keys() | lost.keys():
        before = boxes.get(box, BoxTrack())
        quiet = outages.get(sites[box], []) if box in sites else []
        transitions = sorted({t for t in changes.get(box, []) if not any(start <= t <= end for start, end in quiet)})[
            -TRANSITION_MEMORY:
        ]
        if box in lost:
            state: ReachabilityState = "offline"
            changed_at: float | None = lost[box].fired_at
        else:
            state = "online" if box in seen else "never-seen"
            changed_at = transitions[-1] if transitions else None
        boxes[box] = dataclasses.replace(
            before,
            state=state,
            changed_at=changed_at,
            transitions=tuple(transitions) if transitions else before.transitions,
        )
    return dataclasses.replace(track, boxes=boxes)


# --- the loop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What evaluation reads (``evaluating.FleetView``): the inventory and copies of every box."""

    inventory: Inventory
    boxes: Mapping[BoxId, BoxLive]


# A box's "offline" status as the loop remembers having evaluated it: a new one triggers a pass at once.
_OfflineMark = tuple[BoxId, str | None, int]


class AlertLoop:
    """Evaluates, stores and notifies alerts for the controller. Build it after the fleet state is restored
    (it reads the database: the alert tables are created, the active alerts and the planner's state loaded),
    then ``start``; ``stop`` ends the job and the delivery worker. ``config`` None: alerts are evaluated, stored
    and listed, but nothing is sent. ``listening`` says whether the controller hears the broker now."""

    def __init__(
        self,
        state: FleetState,
        store: Store,
        *,
        clock: Clock,
        config: NotificationConfig | None,
        listening: Callable[[], bool] = lambda: True,
        senders: Mapping[str, Sender] | None = None,
        pass_interval_s: float = PASS_INTERVAL_S,
    ) -> None:
        self.state = state
        self.clock = clock
        self.config = config
        self.pass_interval_s = pass_interval_s
        self._listening = listening
        self._rules = config.rules if config is not None else AlertRules()
        self._inventory = state.inventory
        timeouts = [s.interval_s * s.missed_beats for s in self._inventory.sites.values()]
        self._warm_up_s = min(MAX_WARM_UP_S, max(timeouts, default=0.0))
        self.alerts = AlertStore(store)
        # The outbox's own limit counts every request to a robot, retries included, against the same budget the
        # planner keeps: a robot never gets more than ``dingtalk_per_minute`` requests a minute.
        self.outbox = Outbox(
            store,
            dingtalk_per_minute=config.routes.dingtalk_per_minute if config else DEFAULT_DINGTALK_PER_MINUTE,
        )
        self._lock = threading.RLock()
        self._active: dict[AlertKey, StoredAlert] = {}
        self._unsaved: dict[str, StoredAlert] = {}
        self._queued: list[Transition] = []
        self._notifier = NotifierState()
        self._silences: list[Silence] = []
        self._offline_seen: frozenset[_OfflineMark] = frozenset()
        self._unrouted_logged: set[AlertKey] = set()
        self._pass_requested = False
        self._next_pass_at = 0.0
        self._listening_since: float | None = None
        self._evaluating = False
        self._failing: set[str] = set()
        self._slow_passes = 0
        self._last_prune = time.monotonic()
        self._scheduler: BackgroundScheduler | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._client: httpx.Client | None = None
        self._senders: Mapping[str, Sender] = senders or {}
        self.alerts.create_schema()
        self.outbox.create_schema()
        self._resume()
        self._track = self._resume_memory()

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
            self.alerts.save(resume.repairs)
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
        window = max((self._rules.for_site(s).flapping_window_s for s in self._inventory.sites), default=0.0)
        history = self.alerts.changed_since((AlertKind.BOX_LOST, AlertKind.SITE_UNREACHABLE), self.clock.now() - window)
        with self.state.lock:
            seen = {box for box, live in self.state.boxes.items() if live.last_seen is not None}
        return resume_memory(self._active.values(), history, seen=seen)

    def start(self) -> None:
        if self._scheduler is not None:
            return
        if self.config is not None and not self._senders:
            self._client = http_client()
            self._senders = dict(build_senders(self._client, clock=self.clock).items())
        self._stopping.clear()
        if self.config is not None:
            self._worker = threading.Thread(target=self._deliver_forever, name="edgefleet-alert-delivery", daemon=True)
            self._worker.start()
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self.tick, "interval", seconds=TICK_S, id=JOB_ID, max_instances=1, coalesce=True, replace_existing=True
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop the job (waiting for a pass in flight) and the delivery worker; what waits in the outbox is
        delivered after the next start. Safe to call twice."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(DELIVERY_STOP_TIMEOUT_S)
            self._worker = None
        if self._client is not None:
            self._client.close()
            self._client = None
            self._senders = {}

    @property
    def evaluating(self) -> bool:
        """Whether passes run now (the broker is heard and the warm-up is over)."""
        return self._evaluating

    @property
    def sending(self) -> bool:
        """Whether notifications are sent (a notification file was given)."""
        return self.config is not None

    # --- the job ----------------------------------------------------------------------------------------------

    def tick(self) -> PassReport | None:
        """Run a pass if one is due (see the module docstring). Never raises: it runs in the scheduler's thread."""
        try:
            if not self._ready():
                return None
            if time.monotonic() >= self._next_pass_at or self._pass_requested or self._new_offline_status():
                report = self.run_pass()
                self._recovered("pass", "Ran alert pass again after failures")
                return report
        except Exception as exc:
            self._failed("pass", "Failed to run alert pass; trying again", exc)
        return None

    def _ready(self) -> bool:
        """Whether evaluation may judge the fleet now: the broker is heard, and has been for a whole timeout."""
        if not self._listening():
            if self._listening_since is not None:
                log.warning("Paused alert evaluation: the controller does not hear the broker")
            self._listening_since = None
            self._evaluating = False
            return False
        now = time.monotonic()
        if self._listening_since is None:
            self._listening_since = now
            log.info(
                "Holding alert evaluation until every box could be heard",
                extra={"seconds": round(self._warm_up_s, 1)},
            )
        if now - self._listening_since < self._warm_up_s:
            return False
        if not self._evaluating:
            self._evaluating = True
            log.info("Started alert evaluation", extra={"pass_interval_s": self.pass_interval_s})
        return True

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
        return _Snapshot(self._inventory, boxes)

    def run_pass(self) -> PassReport:
        """One pass now: evaluate, reconcile, plan and put in the outbox, store. Raises when the outbox cannot
        take the plan (nothing is taken then: the next pass plans the same again)."""
        with self._lock:
            started = time.perf_counter()
            self._pass_requested = False
            self._next_pass_at = time.monotonic() + self.pass_interval_s
            now = self.clock.now()
            view = self._snapshot()
            evaluation = evaluate(view, self._track, self._rules, now=now)
            self._silences = [s for s in self._silences if s.ends_at > now]
            transitions = [*self._queued, *reconcile_alerts(self._active, evaluation, self._silences, now=now)]
            messages = 0
            if self.config is not None:
                plan = plan_notifications(transitions, self.config.routes, self._notifier, now=now)
                self.outbox.put(plan.messages, plan.state)
                self._notifier = plan.state
                messages = len(plan.messages)
                self._note_unrouted(plan.unrouted)
            # The plan is in the outbox: from here on the pass counts as done, whatever the alert store says.
            self._queued = []
            self._track = evaluation.track
            self._offline_seen = frozenset(
                (box, live.status_boot, live.status_session)
                for box, live in view.boxes.items()
                if live.status_state == "offline"
            )
            for transition in transitions:
                self._take(transition)
            self._save_unsaved()
            if messages:
                self._wake.set()
            seconds = time.perf_counter() - started
        self._note_duration(seconds)
        return PassReport(
            at=now,
            transitions=len(transitions),
            fired=sum(1 for t in transitions if t.action == "fire"),
            resolved=sum(1 for t in transitions if t.action == "resolve"),
            messages=messages,
            seconds=seconds,
        )

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
        try:
            self.alerts.save(list(self._unsaved.values()))
        except Exception as exc:  # kept; the next pass tries again
            self._failed(
                "save", "Failed to save alerts; keeping them for the next pass", exc, alerts=len(self._unsaved)
            )
            return
        self._recovered("save", "Saved alerts again after failures")
        self._unsaved.clear()

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

    def _failed(self, what: str, message: str, exc: Exception, **context: object) -> None:
        if what in self._failing:
            return
        self._failing.add(what)
        log.warning(message, extra={"error": str(exc)[:500], **context}, exc_info=not isinstance(exc, AlertingError))

    def _recovered(self, what: str, message: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info(message)

    # --- delivery -----------------------------------------------------------------------------------------------

    def _deliver_forever(self) -> None:
        while True:
            self._wake.wait(DELIVERY_POLL_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.deliver()

    def deliver(self) -> DeliveryReport | None:
        """Send what is due in the outbox now (the delivery worker's step). Never raises."""
        if self.config is None:
            return None
        try:
            report = self.outbox.deliver_due(self._senders, self.config.targets, now=self.clock.now())
            if time.monotonic() - self._last_prune >= PRUNE_INTERVAL_S:
                self._last_prune = time.monotonic()
                self.outbox.prune(now=self.clock.now())
        except Exception as exc:  # the database is away: the messages wait in the outbox
            self._failed("deliver", "Failed to read the outbox; trying again", exc)
            return None
        self._recovered("deliver", "Read the outbox again after failures")
        return report

    # --- what people do: acknowledge, silence (called by the API) ---------------------------------------------

    def acknowledge(self, alert_id: str, who: str) -> StoredAlert:
        """Acknowledge a firing alert. Raises AlertNotFound, AlertStateError (resolved or already acknowledged:
        the message says by whom and when) or ValueError (``who`` is empty)."""
        with self._lock:
            alert = self._find(alert_id)
            transition = acknowledge(alert, who, self.clock.now())
            if self.config is not None:
                plan = plan_notifications([transition], self.config.routes, self._notifier, now=transition.at)
                self.outbox.put(plan.messages, plan.state)
                self._notifier = plan.state
                if plan.messages:
                    self._wake.set()
            self._take(transition)
            self._save_unsaved()
        log.info(
            "Acknowledged alert",
            extra={"alert": alert_id, "kind": str(alert.key.kind), "site": alert.key.site, "by": who.strip()},
        )
        return transition.alert

    def _find(self, alert_id: str) -> StoredAlert:
        for alert in self._active.values():
            if alert.id == alert_id:
                return alert
        found = self._unsaved.get(alert_id) or self.alerts.get(alert_id)
        if found is None:
            raise AlertNotFound(f"no alert {alert_id!r}; GET /api/v1/alerts (or 'edgefleet alerts') lists the ids")
        return found

    def alert(self, alert_id: str) -> StoredAlert:
        """One alert by id; raises AlertNotFound."""
        with self._lock:
            return self._find(alert_id)

    def list_alerts(
        self,
        *,
        state: AlertState | None = None,
        site: SiteId | None = None,
        kind: AlertKind | None = None,
        sites: Collection[SiteId] | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Stored alerts newest first (see ``AlertStore.find``)."""
        return self.alerts.find(state=state, site=site, kind=kind, sites=sites, limit=limit)

    def add_silence(
        self,
        *,
        created_by: str,
        comment: str,
        site: SiteId | None = None,
        box: BoxId | None = None,
        kind: AlertKind | None = None,
        ends_at: float | None = None,
        duration_s: float | None = None,
    ) -> SilenceRecord:
        """Mute the alerts that match from now until ``ends_at`` (or for ``duration_s``). Raises SilenceRejected
        listing every problem (validated against the inventory)."""
        now = self.clock.now()
        problems: list[str] = []
        if (ends_at is None) == (duration_s is None):
            problems.append("give either ends_at or duration (how long the silence lasts, e.g. 2h), not both")
        elif duration_s is not None and duration_s <= 0:
            problems.append(f"duration must be more than 0 seconds, got {duration_s:g}")
        # Without a usable end, a stand-in one lets the other checks (matchers, who, why, the inventory) report.
        stand_in = now + 1.0
        end = stand_in if problems else (ends_at if ends_at is not None else now + (duration_s or 0.0))
        silence = Silence(
            id=f"silence-{uuid.uuid4().hex[:12]}",
            starts_at=now,
            ends_at=end,
            created_by=created_by.strip(),
            comment=comment.strip(),
            site=site,
            box=box,
            kind=kind,
        )
        problems += validate_silence(silence, self._inventory, now=None if problems else now)
        if problems:
            raise SilenceRejected(problems)
        with self._lock:
            self.alerts.add_silence(silence)
            self._silences.append(silence)
            self._pass_requested = True
        log.info(
            "Added silence",
            extra={
                "silence": silence.id,
                "site": site,
                "box": box,
                "kind": str(kind) if kind else None,
                "until": end,
                "by": silence.created_by,
            },
        )
        return SilenceRecord(silence, planned_ends_at=end)

    def end_silence(self, silence_id: str, *, by: str | None = None) -> SilenceRecord:
        """End a silence now; the alerts it muted are told if they still fire. Raises AlertNotFound, or
        SilenceStateError when it already ended."""
        with self._lock:
            now = self.clock.now()
            record = self.alerts.get_silence(silence_id)
            if record is None:
                raise AlertNotFound(
                    f"no silence {silence_id!r}; GET /api/v1/silences (or 'edgefleet silence list') lists the ids"
                )
            if record.state(now) == "expired":
                who = f" by {record.ended_by}" if record.ended_by else ""
                raise SilenceStateError(f"silence {silence_id} already ended at {record.silence.ends_at}{who}")
            self.alerts.end_silence(silence_id, at=now, by=by)
            self._silences = [s for s in self._silences if s.id != silence_id]
            self._pass_requested = True
        log.info("Ended silence", extra={"silence": silence_id, "by": by})
        return SilenceRecord(dataclasses.replace(record.silence, ends_at=now), record.planned_ends_at, by)

    def list_silences(self, *, include_expired: bool = False, limit: int = 100) -> list[SilenceRecord]:
        """Silences newest first: active and pending ones, or every one with ``include_expired``."""
        return self.alerts.silences(ending_after=None if include_expired else self.clock.now(), limit=limit)

    def silence(self, silence_id: str) -> SilenceRecord:
        record = self.alerts.get_silence(silence_id)
        if record is None:
            raise AlertNotFound(f"no silence {silence_id!r}; GET /api/v1/silences lists the ids")
        return record
