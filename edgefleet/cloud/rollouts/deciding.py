"""The rollout's state machine: ``decide(spec, status, observations, now) -> Decision`` (issue 15, DESIGN.md "One
tick of a rollout, as data"). Pure: the reconciler reads the spec (with the release manager's commands), the
stored status and the observations, calls ``decide``, applies the actions through the gateway, and writes the new
status and the audit in one transaction. When an action fails at a site, the reconciler decides again with that
site unreachable, so the status it writes never says a site was changed when it was not; the next tick issues
the same action again, which is harmless because each action is a statement of state ("site X runs release R"),
not a step.

Level-triggered: commands are part of the spec, as desired state (``paused``, the waves ``promoted``, ``aborted``,
``rolled_back``, a blackout override); site holds, blackout windows and reachability are observations. Deciding
again on the decision's status with the same observations changes nothing and issues no action: ``decide`` runs
its rules to a fixed point within one call.

Sites: ``pending`` -> ``in-progress`` (applied at ``started_at``) -> ``soaking`` (the new version runs there and
no gate fails since ``soaking_since``; the health gate judges the figures over the soak, ``gates.health_over_soak``)
-> ``passed`` once the soak is over and every gate passes, or ``failed`` when a gate fails or the gates still wait
after ``site_deadline_s`` (a site soaking is not held to the deadline until its soak is over). Beside that path:
- ``deferred``: offline (unreachable, or every box of the app offline) when its turn came, or cut off while in
  flight. Never counted as failed and never blocks its wave. When it is back it is started (or, if it had been
  applied, gated again from scratch) as soon as a slot is free, even after later waves started.
- ``held``: site staff hold it; it is skipped while held, and started like a deferred site once released. A hold
  placed on a site already in flight does not stop it: the site is already changed, and its gates still judge it.
- ``blocked``: in a blackout window now; started when the window ends, or at once if the rollout overrides the
  blackouts with a reason. Unlike deferred and held sites, a blocked site keeps its wave waiting (it is "not yet").
- ``rolled-back``: reverted to its previous release by an abort or a rollback.
Catch-ups (sites of earlier waves) go before the current wave's sites, within ``max_in_flight``.

Waves: ``waiting`` -> ``awaiting-approval`` (when it needs a promotion that has not come) -> ``running`` ->
``passed`` once none of its sites is pending, blocked or in flight: every one passed, failed (under the
threshold), deferred or held. A failed site under the threshold does not stop its wave, or the failure threshold
would mean nothing; it is listed, and an abort or rollback reverts it. A passed wave stays passed while its
deferred sites catch up.

The rollout: ``running``, ``paused`` (no site starts, catch-ups included; sites in flight are still gated and the
threshold still aborts), ``awaiting-approval``, ``aborting`` (reverting the touched sites), ``aborted``,
``rolled-back``, ``done``. It is ``done`` only when every wave passed and no site is left deferred, held or
blocked: a rollout that ended could not bring an offline site up to date when it returns (issue 15, "Offline is
not failed"). Until then it stays ``running`` and its ``reason`` lists the sites it still waits for.

Failure threshold: more than ``threshold.sites`` failed sites, or more than ``threshold.percent_of_wave`` percent
of one wave's planned sites, turns the rollout to ``aborting`` in the same call that sees the crossing. Aborting
(threshold, ``aborted`` or ``rolled_back`` command): no site starts, and every touched site (one that got an
``Apply``: in flight, soaking, passed, failed, or deferred after its apply) gets exactly one ``Revert`` to the
release it ran before. A touched site that is offline is reverted when it returns; the rollout stays ``aborting``
until then, and ends ``aborted`` (``rolled-back`` when a rollback was asked for). ``rolled_back`` on a ``done``
rollout reverts every site it changed; ``aborted`` on a ``done`` rollout does nothing (there is nothing to stop).

Wave indexes (``Commands.promoted``) count from 0, the canary; a release's ``approvalBefore: [1]`` (1 = the first
wave after the canary) is wave 1 here: ``planning.rollout_spec(plan, release)`` builds the spec from a plan, which
always starts with its canary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from edgefleet.cloud.rollouts.gates import (
    BoxApp,
    FiringAlert,
    GateCriteria,
    SiteGates,
    SiteHealth,
    Workload,
    evaluate_site,
)
from edgefleet.ids import SiteId

SiteState = Literal[
    "pending", "deferred", "held", "blocked", "in-progress", "soaking", "passed", "failed", "rolled-back"
]
WaveState = Literal["waiting", "awaiting-approval", "running", "passed"]
RolloutState = Literal["running", "paused", "awaiting-approval", "aborting", "aborted", "rolled-back", "done"]
NotifyKind = Literal["started", "wave-passed", "awaiting-approval", "sites-deferred", "aborted", "rolled-back", "done"]

# A site whose gates still wait this long after it started fails: a DaemonSet whose pods crash-loop never
# reaches a verdict of its own (kubectl has no progress deadline for DaemonSets), and a rollout must not wait on
# it forever. An hour leaves room for a multi-GB image and model pulled over a center's link.
SITE_DEADLINE_S: Final = 3600.0

_IN_FLIGHT: Final = frozenset({"in-progress", "soaking"})
_STOPPED: Final = frozenset({"aborting", "aborted", "rolled-back"})
# Sites a wave waits for before it passes.
_UNSETTLED: Final = frozenset({"pending", "blocked", "in-progress", "soaking"})
# States from which a site may be started (or restarted after coming back).
_STARTABLE: Final = frozenset({"pending", "deferred", "held", "blocked"})


# --- the spec -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wave:
    """A wave's sites in the order they start; the canary is the first wave."""

    name: str
    sites: tuple[SiteId, ...]
    needs_approval: bool = False


@dataclass(frozen=True, slots=True)
class FailureThreshold:
    sites: int = 3
    percent_of_wave: float = 20.0


@dataclass(frozen=True, slots=True)
class Commands:
    """The release manager's word, as desired state: each command sets a field here, so deciding again never
    does a command twice. ``promoted``: the indexes of the waves promoted (approved to start)."""

    paused: bool = False
    promoted: frozenset[int] = frozenset()
    aborted: bool = False
    rolled_back: bool = False
    # Why the rollout may start sites inside their blackout windows; None: it may not.
    blackout_override: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    release: str
    app: str
    version: str
    waves: tuple[Wave, ...]
    threshold: FailureThreshold = FailureThreshold()
    running_percent: float = 90.0
    health_tolerance_percent: float = 10.0
    soak_s: float = 600.0
    max_in_flight: int = 10
    site_deadline_s: float = SITE_DEADLINE_S
    commands: Commands = Commands()

    def __post_init__(self) -> None:
        seen: dict[SiteId, str] = {}
        for wave in self.waves:
            for site in wave.sites:
                if site in seen:
                    raise ValueError(
                        f"rollout of {self.release}: site {site!r} is in wave {seen[site]!r} and in wave "
                        f"{wave.name!r}; put each site in one wave"
                    )
                seen[site] = wave.name
        if self.max_in_flight < 1:
            raise ValueError(f"rollout of {self.release}: max_in_flight is {self.max_in_flight}; it must be >= 1")
        if self.soak_s < 0 or self.site_deadline_s < 0:
            raise ValueError(f"rollout of {self.release}: soak and site deadline must not be negative")

    @property
    def criteria(self) -> GateCriteria:
        return GateCriteria(
            app=self.app,
            version=self.version,
            release=self.release,
            running_percent=self.running_percent,
            health_tolerance_percent=self.health_tolerance_percent,
        )


# --- what the reconciler observed -----------------------------------------------------------------------------

_NO_FIGURES: Final = SiteHealth(current={}, baseline=None)


@dataclass(frozen=True, slots=True)
class SiteObservation:
    """One site now. ``reachable``: the controller hears the site (the fleet's site health is not
    "unreachable"); ``held``: the hold's reason; ``blackout``: the reason of the blackout window the site is in
    now (windows are resolved in the site's time zone by the caller); ``running_release``: the app's release the
    site runs now, None when it runs none (recorded at apply time as what a revert goes back to);
    ``unreachable``: why the site cannot be reached beyond its boxes being offline (its cluster's API fails), for
    the deferred site's reason."""

    reachable: bool = True
    unreachable: str | None = None
    held: str | None = None
    blackout: str | None = None
    running_release: str | None = None
    workloads: tuple[Workload, ...] = ()
    boxes: tuple[BoxApp, ...] = ()
    alerts: tuple[FiringAlert, ...] = ()
    health: SiteHealth = _NO_FIGURES


# A site with no observation is taken as unreachable: nothing is known about it, so it is deferred, never failed.
_UNSEEN: Final = SiteObservation(reachable=False)


# --- the status -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteStatus:
    state: SiteState = "pending"
    reason: str = ""
    # An Apply was issued (the site is "touched"), and the release it ran before (what a Revert goes back to).
    applied: bool = False
    previous_release: str | None = None
    # When its gates started judging it (the apply, or its return after a deferral).
    started_at: float | None = None
    soaking_since: float | None = None
    reverted: bool = False
    # Started inside a blackout window by the rollout's override: the window and the override's reason.
    blackout_override: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    state: RolloutState
    waves: tuple[WaveState, ...]
    sites: Mapping[SiteId, SiteStatus]
    reason: str = ""
    started: bool = False
    # Why the rollout stopped (the threshold crossed, or the command), once it did.
    stopped_because: str = ""

    def site(self, site: SiteId) -> SiteStatus:
        return self.sites.get(site, SiteStatus())


def initial_status(spec: RolloutSpec) -> RolloutStatus:
    return RolloutStatus(
        state="running",
        waves=tuple("waiting" for _ in spec.waves),
        sites={site: SiteStatus() for wave in spec.waves for site in wave.sites},
    )


# --- actions --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Apply:
    """Site ``site`` runs release ``release``."""

    site: SiteId
    release: str


@dataclass(frozen=True, slots=True)
class Revert:
    """Site ``site`` runs ``previous_release`` again (None: it runs no release of the app, as before)."""

    site: SiteId
    previous_release: str | None


@dataclass(frozen=True, slots=True)
class Notify:
    """One grouped notification: all the sites deferred in one tick make one message."""

    kind: NotifyKind
    message: str
    sites: tuple[SiteId, ...] = ()
    wave: str | None = None


Action = Apply | Revert | Notify


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    status: RolloutStatus
    # The gates judged in this call, per site in flight, for the API and the status view.
    gates: Mapping[SiteId, SiteGates] = field(default_factory=dict)


# --- deciding -------------------------------------------------------------------------------------------------


def decide(
    spec: RolloutSpec, status: RolloutStatus, observations: Mapping[SiteId, SiteObservation], *, now: float
) -> Decision:
    """The next actions and status of one rollout at ``now``; see the module docstring for the rules."""
    tick = _Tick(spec, status, observations, now)
    # Each pass only moves sites and waves forward (or to deferred, which the same observations cannot undo), so
    # this ends; the bound is a guard against a rule that would not.
    for _ in range(4 * len(tick.sites) + 4 * len(spec.waves) + 8):
        if not tick.step():
            break
    else:  # pragma: no cover - a rule that keeps changing state on the same inputs is a bug
        raise RuntimeError(f"rollout of {spec.release}: deciding did not settle")
    return tick.decision()


@dataclass
class _Notes:
    deferred: list[SiteId] = field(default_factory=list)
    waves_passed: list[str] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)
    started: bool = False
    aborted: str | None = None
    ended: RolloutState | None = None


class _Tick:
    """One call of ``decide``: a working copy of the status that ``step`` moves until nothing changes."""

    def __init__(
        self,
        spec: RolloutSpec,
        status: RolloutStatus,
        observations: Mapping[SiteId, SiteObservation],
        now: float,
    ) -> None:
        self.spec = spec
        self.obs = observations
        self.now = now
        self.state: RolloutState = status.state
        self.reason = status.reason
        self.started = status.started
        self.stopped_because = status.stopped_because
        known = list(status.waves[: len(spec.waves)])
        self.waves: list[WaveState] = known + ["waiting"] * (len(spec.waves) - len(known))
        self.sites: dict[SiteId, SiteStatus] = {site: status.site(site) for wave in spec.waves for site in wave.sites}
        self.actions: list[Apply | Revert] = []
        self.gates: dict[SiteId, SiteGates] = {}
        self.notes = _Notes()

    def observed(self, site: SiteId) -> SiteObservation:
        return self.obs.get(site, _UNSEEN)

    def set(self, site: SiteId, new: SiteStatus) -> bool:
        if self.sites[site] == new:
            return False
        self.sites[site] = new
        return True

    # One pass of every rule; True when anything changed.
    def step(self) -> bool:
        changed = False
        if not self.started:
            self.started = changed = True
            self.notes.started = True
        if self.state == "done" and not self.spec.commands.rolled_back:
            return changed  # Ended: only a rollback changes it now (an abort has nothing left to stop).
        if self.state in _STOPPED or self._stop_asked():
            return self._stop() or changed
        changed |= self._judge_sites_in_flight()
        crossing = self._threshold_crossed()
        if crossing is not None:
            self.stopped_because = crossing
            self._stop()
            return True
        changed |= self._advance_waves()
        changed |= self._start_sites()
        changed |= self._settle_rollout_state()
        return changed

    def _stop_asked(self) -> bool:
        commands = self.spec.commands
        return commands.aborted or commands.rolled_back

    def _judge_sites_in_flight(self) -> bool:
        changed = False
        for site, current in self.sites.items():
            if current.state not in _IN_FLIGHT:
                continue
            observed = self.observed(site)
            started_at = current.started_at if current.started_at is not None else self.now
            gates = evaluate_site(
                self.spec.criteria,
                workloads=observed.workloads,
                boxes=observed.boxes,
                alerts=observed.alerts,
                health=observed.health,
                started_at=started_at,
                now=self.now,
                soaking_since=current.soaking_since if current.state == "soaking" else None,
                soak_s=self.spec.soak_s,
            )
            self.gates[site] = gates
            changed |= self.set(site, self._judged(site, current, observed, gates, started_at))
        return changed

    def _judged(
        self, site: SiteId, current: SiteStatus, observed: SiteObservation, gates: SiteGates, started_at: float
    ) -> SiteStatus:
        if not observed.reachable or gates.offline:
            if current.state != "deferred":
                self.notes.deferred.append(site)
            return replace(
                current,
                state="deferred",
                reason=_offline_because("offline during its rollout", observed),
                started_at=None,
                soaking_since=None,
            )
        verdict = gates.verdict
        if verdict == "fail":
            return replace(current, state="failed", reason=gates.reason, soaking_since=None)
        since = gates.soaking_since
        soak_over = since is not None and self.now - since >= self.spec.soak_s
        if verdict == "pass" and soak_over:
            return replace(current, state="passed", reason=gates.reason, soaking_since=since)
        # The health gate waits during the soak (it judges over it), which does not stop the soak; waiting for
        # anything else, or for figures still missing once the soak is over, runs against the site's deadline.
        if since is None or soak_over:
            waited = self.now - started_at
            if waited > self.spec.site_deadline_s:
                reason = f"gates still waiting {_duration(waited)} after the site started: {gates.reason}"
                return replace(current, state="failed", reason=reason, soaking_since=None)
        if since is None:
            return replace(current, state="in-progress", reason=gates.reason, soaking_since=None)
        return replace(current, state="soaking", reason=gates.reason, soaking_since=since)

    def _threshold_crossed(self) -> str | None:
        threshold = self.spec.threshold
        failed = [site for site, s in self.sites.items() if s.state == "failed"]
        # The failed sites are named: the stop is told to ops as this line alone (the notification, the status's
        # "stopped because"), and "1 of 4 sites failed" left them to find which one, and a reverted site's own
        # reason no longer says why it failed.
        if len(failed) > threshold.sites:
            return (
                f"{len(failed)} sites failed (the rollout stops at more than {threshold.sites}): "
                f"{', '.join(sorted(failed))}"
            )
        for wave in self.spec.waves:
            in_wave = sorted(site for site in wave.sites if self.sites[site].state == "failed")
            if wave.sites and len(in_wave) * 100 > threshold.percent_of_wave * len(wave.sites):
                percent = len(in_wave) * 100 / len(wave.sites)
                return (
                    f"{len(in_wave)} of {len(wave.sites)} sites of {the_wave(wave.name)} failed ({percent:.0f}%; the "
                    f"rollout stops at more than {threshold.percent_of_wave:g}%): {', '.join(in_wave)}"
                )
        return None

    def _advance_waves(self) -> bool:
        changed = False
        for i, wave in enumerate(self.spec.waves):
            state = self.waves[i]
            if state == "passed":
                continue
            if i > 0 and self.waves[i - 1] != "passed":
                break
            if state in ("waiting", "awaiting-approval"):
                if wave.needs_approval and i not in self.spec.commands.promoted:
                    if state != "awaiting-approval":
                        self.waves[i] = "awaiting-approval"
                        self.notes.awaiting.append(wave.name)
                        changed = True
                    break
                self.waves[i] = state = "running"
                changed = True
            if state == "running" and not any(self.sites[s].state in _UNSETTLED for s in wave.sites):
                self.waves[i] = "passed"
                self.notes.waves_passed.append(wave.name)
                changed = True
                continue
            break
        return changed

    def _start_sites(self) -> bool:
        changed = False
        in_flight = sum(1 for s in self.sites.values() if s.state in _IN_FLIGHT)
        override = self.spec.commands.blackout_override
        paused = self.spec.commands.paused
        # Earlier waves first: a site that comes back catches up before the current wave's next site.
        for i, wave in enumerate(self.spec.waves):
            if self.waves[i] not in ("running", "passed"):
                break
            for site in wave.sites:
                current = self.sites[site]
                if current.state not in _STARTABLE:
                    continue
                observed = self.observed(site)
                if observed.held is not None:
                    new = replace(current, state="held", reason=f"held: {observed.held}")
                elif _offline(observed):
                    if current.state == "deferred":
                        # Still offline: keep why it was deferred (a site cut in flight was not offline at its turn).
                        continue
                    self.notes.deferred.append(site)
                    new = replace(
                        current, state="deferred", reason=_offline_because("offline when its turn came", observed)
                    )
                elif observed.blackout is not None and override is None:
                    new = replace(current, state="blocked", reason=f"in a blackout window: {observed.blackout}")
                elif paused:
                    new = replace(current, state="pending", reason="waiting: the rollout is paused")
                elif in_flight >= self.spec.max_in_flight:
                    why = f"waiting: {in_flight} sites in flight (at most {self.spec.max_in_flight})"
                    new = replace(current, state="pending", reason=why)
                else:
                    new = self._start(site, current, observed, override)
                    in_flight += 1
                changed |= self.set(site, new)
        return changed

    def _start(self, site: SiteId, current: SiteStatus, observed: SiteObservation, override: str | None) -> SiteStatus:
        overridden = (
            None if observed.blackout is None else f"inside its blackout window ({observed.blackout}): {override}"
        )
        if current.applied:
            # Back after a deferral: the release was applied before; gate it again from now.
            return replace(
                current,
                state="in-progress",
                reason="started again after being offline",
                started_at=self.now,
                soaking_since=None,
                blackout_override=overridden or current.blackout_override,
            )
        self.actions.append(Apply(site, self.spec.release))
        return replace(
            current,
            state="in-progress",
            reason="started",
            applied=True,
            previous_release=observed.running_release,
            started_at=self.now,
            soaking_since=None,
            blackout_override=overridden,
        )

    def _settle_rollout_state(self) -> bool:
        before = (self.state, self.reason)
        left = [s for s, st in self.sites.items() if st.state in ("deferred", "held", "blocked", "pending")]
        if all(w == "passed" for w in self.waves) and not any(
            st.state in _IN_FLIGHT or st.state in ("deferred", "held", "blocked", "pending")
            for st in self.sites.values()
        ):
            failed = sorted(s for s, st in self.sites.items() if st.state == "failed")
            self.state = "done"
            self.reason = f"done; {len(failed)} sites failed: {', '.join(failed)}" if failed else "done"
            self.notes.ended = "done"
        elif self.spec.commands.paused:
            self.state, self.reason = "paused", "paused by the release manager"
        elif "awaiting-approval" in self.waves:
            wave = self.spec.waves[self.waves.index("awaiting-approval")]
            self.state, self.reason = "awaiting-approval", f"{the_wave(wave.name)} waits for a promotion"
        else:
            self.state = "running"
            self.reason = _waiting_for(self.sites, left) if all(w == "passed" for w in self.waves) else ""
        return (self.state, self.reason) != before

    def _stop(self) -> bool:
        changed = False
        if self.state not in _STOPPED:
            self.state = "aborting"
            if not self.stopped_because:
                asked = "rolled back" if self.spec.commands.rolled_back else "aborted"
                self.stopped_because = f"{asked} by the release manager"
            self.notes.aborted = self.stopped_because
            changed = True
        for site, current in self.sites.items():
            if not current.applied or current.reverted:
                continue
            if not self.observed(site).reachable:
                continue  # Reverted when it is back: a site that cannot be reached cannot be changed.
            self.actions.append(Revert(site, current.previous_release))
            # A failed site keeps why it failed: after the rollback it is the one line that says so.
            reason = f"reverted; it had failed: {current.reason}" if current.state == "failed" else "reverted"
            changed |= self.set(
                site, replace(current, state="rolled-back", reason=reason, reverted=True, soaking_since=None)
            )
        waiting = sorted(s for s, st in self.sites.items() if st.applied and not st.reverted)
        target: RolloutState = "rolled-back" if self.spec.commands.rolled_back else "aborted"
        reason = self.stopped_because
        if waiting:
            target = "aborting"
            reason = f"{reason}; {_sites(len(waiting))} offline, reverted when back: {', '.join(waiting)}"
        if target != self.state:
            if self.state == "aborting":
                self.notes.ended = target
            self.state = target
            changed = True
        if reason != self.reason:
            self.reason = reason
            changed = True
        return changed

    def decision(self) -> Decision:
        status = RolloutStatus(
            state=self.state,
            waves=tuple(self.waves),
            sites=dict(self.sites),
            reason=self.reason,
            started=self.started,
            stopped_because=self.stopped_because,
        )
        return Decision((*self.actions, *self._notifications()), status, dict(self.gates))

    def _notifications(self) -> Sequence[Notify]:
        notes, release = self.notes, self.spec.release
        out: list[Notify] = []
        if notes.started:
            total = len(self.sites)
            out.append(Notify("started", f"Rollout of {release} started: {_sites(total)} in {len(self.waves)} waves"))
        deferred = tuple(sorted(set(notes.deferred)))
        if deferred:
            out.append(
                Notify("sites-deferred", f"{_sites(len(deferred))} offline, deferred: {', '.join(deferred)}", deferred)
            )
        for wave in notes.waves_passed:
            out.append(Notify("wave-passed", f"{_capital(the_wave(wave))} of {release} passed", wave=wave))
        for wave in notes.awaiting:
            out.append(
                Notify("awaiting-approval", f"{_capital(the_wave(wave))} of {release} waits for a promotion", wave=wave)
            )
        if notes.aborted is not None:
            out.append(Notify("aborted", f"Rollout of {release} stopped: {notes.aborted}"))
        if notes.ended in ("aborted", "rolled-back"):
            reverted = tuple(sorted(s for s, st in self.sites.items() if st.reverted))
            out.append(Notify("rolled-back", f"Rollout of {release}: {_sites(len(reverted))} reverted", reverted))
        if notes.ended == "done":
            out.append(Notify("done", f"Rollout of {release} done: {self.reason}"))
        return out


def the_wave(name: str) -> str:
    """A wave as a sentence names it: the planner's names are "canary" and "wave 2" already, so "wave {name}" said
    "wave wave 2" in the status and the DingTalk message; another name ("w1") is "wave w1"."""
    if name == "canary":
        return "the canary"
    return name if name.startswith("wave ") else f"wave {name}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _offline(observed: SiteObservation) -> bool:
    """Unreachable, or every box that runs the app is offline (the agents' gate could never pass)."""
    return not observed.reachable or (bool(observed.boxes) and not any(box.online for box in observed.boxes))


def _offline_because(reason: str, observed: SiteObservation) -> str:
    return f"{reason}: {observed.unreachable}" if observed.unreachable else reason


def _waiting_for(sites: Mapping[SiteId, SiteStatus], left: Sequence[SiteId]) -> str:
    by_state: dict[str, list[SiteId]] = {}
    for site in left:
        by_state.setdefault(sites[site].state, []).append(site)
    parts = [f"{len(names)} {state} ({', '.join(sorted(names))})" for state, names in sorted(by_state.items())]
    return f"every wave passed; waiting for {', '.join(parts)}" if parts else "every wave passed"


def _sites(count: int) -> str:
    return f"{count} site" if count == 1 else f"{count} sites"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}m" if minutes >= 1 else f"{seconds:.0f}s"
