"""A site's gates during a rollout: has the new release rolled out there and is the site as healthy as before?
Pure: the reconciler gathers the observations (gateway watch caches, the fleet's boxes, the alert store, the
app figures of the heartbeats) and ``deciding.decide`` asks here once per site per tick, with ``now`` passed in.

Four gates, each ``pass``, ``wait`` or ``fail`` with a reason in the release manager's words:

- **kubernetes**: every workload of the site (scan-upload's Deployment, sorting-recognition's DaemonSet) runs the
  release and has rolled out by kubectl's rule (``edgefleet.cloud.k8s.rollout``). Failed when one exceeded its
  progress deadline; waiting while one is still on another release, not yet observed or still rolling; a
  workload kubectl cannot follow (``OnDelete``) passes and leaves the judgement to the agents' gate. No workload
  seen yet: wait.
- **agents**: at least ``running_percent`` of the site's *online* boxes that run the app report the new version
  running. An offline box neither passes nor fails: it is left out of the count (offline is not failed, and a box
  cut off mid-rollout must not hold the whole site back). Every box offline: wait, and ``SiteGates.offline`` says
  so, which ``decide`` turns into a deferred site. The gate also says since when the share has held
  (``running_since``: the latest start among the earliest-started boxes that make up the share), so a box that
  restarted between two ticks restarts the soak instead of slipping through it.
- **alerts**: no alert fired at the site after the site started (``started_at``). Alerts that were already firing
  before are the site's old troubles, not the release's. Alerts about reachability (a box lost, a site
  unreachable, the controller deaf...) never count: offline is not failed. Nor does another app's own alert (an
  app-down of sorting-recognition while scan-upload rolls out: two rollouts of two apps may run at one site, and
  one's bad release must not stop the other's good one). A new one fails the site, with its kind.
- **health**: each of the app's figures (``FIGURES``) is no worse than this site's own baseline on the previous
  release beyond ``health_tolerance_percent``, in the figure's direction (fps: higher is better; latency,
  backlog, error rate: lower is better). A change smaller than the figure's ``noise`` (an absolute amount) is
  never worse, so a baseline of 0 errors does not turn 0.001 into "infinitely worse". Judged only once the
  kubernetes and agents gates pass: the figures of a half-rolled-out site say nothing about the new release.
  *Unknown* inputs: a figure without a baseline (a new site, or the previous release never reported it) is not
  compared and the gate passes, saying so (waiting for a baseline that will never come would stall the rollout);
  a figure with a baseline but no current value waits (the agent has not reported it yet).

**Over the whole soak** (issue 15: the gates hold "for the whole soak"). The soak of a site runs from the moment
the new version runs there (the kubernetes and agents gates pass, and the agents' share holds: ``running_since``)
for ``soak_s``; ``evaluate_site`` says since when (``SiteGates.soaking_since``). The health gate's verdict covers
that soak (``health_over_soak``): the figures it compares are the means since the new version ran at the site
(``SiteHealth.readings`` says over how many readings), and the gate
- *passes* only once the soak is over and the means are within the tolerance (zero soak: the first means);
- *waits* during the soak ("so far within 10%..., judged at the end of the soak"), which does not stop the soak;
- *fails* when the means are worse over at least ``MIN_READINGS_TO_FAIL`` readings, at the end of the soak or
  before it: a mean of one or two readings is a few percent off either way (the first means of a canary site rest
  on one heartbeat), so judging on it fails good sites on noise, even at the end of a zero soak (the gate waits for
  more readings then, bounded by the site's deadline); a mean of five readings that is still beyond the tolerance
  is clearly bad, and waiting out a ten-minute soak to say so would only leave a bad release running longer. A figure without a baseline has nothing to judge over the soak:
  the gate passes at once, saying so.

The shell passes the figures as it wants them compared (the reconciler: running means per version); this module
does no smoothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.cloud.alerting.alerts import AlertKind
from edgefleet.cloud.k8s.rollout import RolloutStatus
from edgefleet.ids import BoxId

Verdict = Literal["pass", "wait", "fail"]

# A site fails on its health figures only when their mean over at least this many readings (distinct heartbeats of
# the site, not ticks) is worse than its baseline beyond the tolerance, before or at the end of its soak. The
# simulator's figures vary 2-5% per box and reading, so a mean of 5 readings strays about 2% at most: beyond a 10%
# tolerance it is a bad release, not noise. With one reading a heartbeat interval (10 s), that is under a minute.
# Measured: with zero soak and the first mean judged, 1 of 100 good sites failed on noise (docs/performance.md).
MIN_READINGS_TO_FAIL: Final = 5
GateName = Literal["kubernetes", "agents", "alerts", "health"]
Better = Literal["higher", "lower"]

# Alerts about reachability say a site or box is cut off, which is deferral, not failure (issue 15, "Offline is
# not failed"); the controller being deaf says nothing about the site at all.
REACHABILITY_ALERTS: Final = frozenset(
    {
        AlertKind.BOX_LOST,
        AlertKind.BOX_FLAPPING,
        AlertKind.SITE_UNREACHABLE,
        AlertKind.EDGE_NODE_LOST,
        AlertKind.SITE_NODES_LOST,
        AlertKind.CONTROLLER_DEAF,
    }
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One health figure an app reports: its name in the heartbeat, which way is better, its unit for messages,
    and ``noise``: an absolute change that is never taken as worse (a few queued uploads, a tenth of a percent)."""

    name: str
    label: str
    better: Better
    unit: str = ""
    noise: float = 0.0


# The figures of each app (issue 15, "App health figures"). Noise floors: a backlog of a few uploads and a few
# hundredths of a percent of errors come and go on a healthy site; fps and latency are never 0 when running.
FIGURES: Final[Mapping[str, tuple[Figure, ...]]] = {
    "scan-upload": (
        Figure("upload_backlog", "upload backlog", "lower", noise=5.0),
        Figure("error_rate_percent", "error rate", "lower", unit="%", noise=0.05),
    ),
    "sorting-recognition": (
        Figure("fps", "fps", "higher"),
        Figure("inference_latency_ms", "inference latency", "lower", unit=" ms"),
    ),
}


@dataclass(frozen=True, slots=True)
class Workload:
    """A site's Deployment or DaemonSet as the gateway's watch sees it: the release its labels name (None when
    unlabelled) and kubectl's verdict on its rollout."""

    name: str
    release: str | None
    rollout: RolloutStatus


@dataclass(frozen=True, slots=True)
class BoxApp:
    """A box that should run the app, as its agent last reported: online or not, the app's version and state,
    and since when (controller time) it has run that version without a restart; None when unknown."""

    box: BoxId
    online: bool
    version: str | None = None
    state: str | None = None
    running_since: float | None = None


@dataclass(frozen=True, slots=True)
class FiringAlert:
    kind: str
    started_at: float
    summary: str = ""
    # The app an app's own alert is about (app-down names it); None for the site's and boxes' alerts.
    app: str | None = None


@dataclass(frozen=True, slots=True)
class SiteHealth:
    """The site's figures now and its own baseline on the previous release (name -> value; absent = unknown).
    ``readings``: how many readings the current figures are the mean of (the fewest of any figure)."""

    current: Mapping[str, float]
    baseline: Mapping[str, float] | None
    previous_version: str | None = None
    readings: int = 1


@dataclass(frozen=True, slots=True)
class GateCriteria:
    app: str
    version: str
    release: str
    running_percent: float = 90.0
    health_tolerance_percent: float = 10.0


@dataclass(frozen=True, slots=True)
class Gate:
    name: GateName
    verdict: Verdict
    reason: str
    # False when the verdict was taken without the data to judge (a missing baseline): shown apart.
    known: bool = True


@dataclass(frozen=True, slots=True)
class SiteGates:
    kubernetes: Gate
    agents: Gate
    alerts: Gate
    health: Gate
    # Every box of the site that runs the app is offline: ``decide`` defers the site.
    offline: bool
    # Since when the agents' share has held: the soak cannot have started before. None: no such bound (the
    # gate waits, or there is no box to count).
    running_since: float | None
    # Since when the site soaks: the new version runs there (kubernetes and agents pass). None: it does not yet.
    soaking_since: float | None = None

    @property
    def gates(self) -> tuple[Gate, Gate, Gate, Gate]:
        return (self.kubernetes, self.agents, self.alerts, self.health)

    @property
    def verdict(self) -> Verdict:
        """fail if any gate fails, pass if all pass, else wait."""
        verdicts = {gate.verdict for gate in self.gates}
        if "fail" in verdicts:
            return "fail"
        return "pass" if verdicts == {"pass"} else "wait"

    @property
    def reason(self) -> str:
        """The failing gates' reasons, else the waiting ones', else all passed."""
        for verdict in ("fail", "wait"):
            reasons = [f"{gate.name}: {gate.reason}" for gate in self.gates if gate.verdict == verdict]
            if reasons:
                return "; ".join(reasons)
        return "all gates pass"


def evaluate_site(
    criteria: GateCriteria,
    *,
    workloads: Sequence[Workload],
    boxes: Sequence[BoxApp],
    alerts: Iterable[FiringAlert],
    health: SiteHealth,
    started_at: float,
    now: float,
    soaking_since: float | None = None,
    soak_s: float = 0.0,
) -> SiteGates:
    """Every gate of one site that started the release at ``started_at``, judged at ``now``. ``soaking_since``:
    since when the site has soaked so far (None: it was not soaking); the soak lasts ``soak_s``, and the health
    gate judges over it (``health_over_soak``)."""
    kubernetes = kubernetes_gate(criteria.release, workloads)
    agents, running_since, offline = agents_gate(criteria, boxes, now=now)
    alert_gate = alerts_gate(alerts, started_at=started_at, app=criteria.app)
    since: float | None = None
    if kubernetes.verdict == "pass" and agents.verdict == "pass":
        # The soak started when the site first soaked, and no earlier than the agents' share has held (a box that
        # restarted between two ticks restarts it).
        since = soaking_since if soaking_since is not None else now
        if running_since is not None:
            since = max(since, running_since)
        health_gate = health_over_soak(criteria, health, soak_over=now - since >= soak_s)
    else:
        health_gate = Gate("health", "wait", "judged once the new version runs")
    return SiteGates(kubernetes, agents, alert_gate, health_gate, offline, running_since, since)


def kubernetes_gate(release: str, workloads: Sequence[Workload]) -> Gate:
    if not workloads:
        return Gate("kubernetes", "wait", "no workload of the app seen at the site yet")
    for workload in workloads:
        if workload.rollout.state == "failed":
            return Gate("kubernetes", "fail", workload.rollout.message)
    for workload in workloads:
        if workload.release != release:
            on = f"release {workload.release}" if workload.release else "no labelled release"
            return Gate("kubernetes", "wait", f"{workload.name} is still on {on}")
        if workload.rollout.state == "waiting":
            return Gate("kubernetes", "wait", workload.rollout.message)
    untracked = [w.name for w in workloads if w.rollout.state == "untracked"]
    if untracked:
        return Gate("kubernetes", "pass", f"{', '.join(untracked)} not followed by kubectl (OnDelete); agents decide")
    if len(workloads) == 1:
        return Gate("kubernetes", "pass", workloads[0].rollout.message)
    return Gate("kubernetes", "pass", f"{len(workloads)} workloads rolled out")


def agents_gate(criteria: GateCriteria, boxes: Sequence[BoxApp], *, now: float) -> tuple[Gate, float | None, bool]:
    """The gate, since when the share has held (None unless it passes), and whether every box is offline."""
    if not boxes:
        return Gate("agents", "pass", "no box at this site runs the app"), None, False
    online = [box for box in boxes if box.online]
    if not online:
        return Gate("agents", "wait", f"all {_boxes(len(boxes))} offline"), None, True
    running = sorted(
        box.running_since if box.running_since is not None else now
        for box in online
        if box.version == criteria.version and box.state == "running"
    )
    need = _needed(len(online), criteria.running_percent)
    offline = len(boxes) - len(online)
    away = f", {offline} offline" if offline else ""
    summary = (
        f"{len(running)} of {_boxes(len(online))} run {criteria.version} (need {criteria.running_percent:g}%){away}"
    )
    if len(running) < need:
        return Gate("agents", "wait", summary), None, False
    # The share holds since the need-th earliest box started running; 0 needed (0%) holds since forever.
    since = running[need - 1] if need else None
    return Gate("agents", "pass", summary), since, False


def alerts_gate(alerts: Iterable[FiringAlert], *, started_at: float, app: str | None = None) -> Gate:
    """No new alert at the site since it started, but for reachability alerts and another app's own alerts."""
    new = sorted(
        (
            a
            for a in alerts
            if a.started_at >= started_at
            and a.kind not in REACHABILITY_ALERTS
            and (a.app is None or app is None or a.app == app)
        ),
        key=lambda a: (a.started_at, a.kind),
    )
    if not new:
        return Gate("alerts", "pass", "no new alert since the site started")
    first = new[0]
    what = f"{first.kind}: {first.summary}" if first.summary else first.kind
    more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
    return Gate("alerts", "fail", f"new alert since the site started: {what}{more}")


def figures_gate(criteria: GateCriteria, health: SiteHealth, figures: Sequence[Figure] | None = None) -> Gate:
    rules = FIGURES.get(criteria.app, ()) if figures is None else figures
    previous = f"on {health.previous_version}" if health.previous_version else "on the previous release"
    if not rules:
        return Gate("health", "pass", f"{criteria.app} reports no health figure", known=False)
    if health.baseline is None:
        return Gate("health", "pass", f"no baseline for this site {previous}: not compared", known=False)
    tolerance = criteria.health_tolerance_percent
    unknown: list[str] = []
    missing: list[str] = []
    compared: list[str] = []
    for figure in rules:
        base = health.baseline.get(figure.name)
        if base is None:
            unknown.append(figure.label)
            continue
        value = health.current.get(figure.name)
        if value is None:
            missing.append(figure.label)
            continue
        worse_by = base - value if figure.better == "higher" else value - base
        allowed = max(abs(base) * tolerance / 100, figure.noise)
        if worse_by > allowed:
            return Gate("health", "fail", _worse(figure, value, base, worse_by, previous, tolerance))
        compared.append(f"{figure.label} {value:g}{figure.unit} (site's {base:g}{figure.unit})")
    if missing:
        return Gate("health", "wait", f"waiting for the site to report {', '.join(missing)}")
    if unknown:
        known = "; ".join(compared) if compared else "nothing compared"
        return Gate("health", "pass", f"{known}; no baseline {previous} for {', '.join(unknown)}", known=False)
    return Gate("health", "pass", f"{'; '.join(compared)} {previous}, within {tolerance:g}%")


def health_over_soak(
    criteria: GateCriteria, health: SiteHealth, *, soak_over: bool, figures: Sequence[Figure] | None = None
) -> Gate:
    """The health gate over the soak (module docstring): ``figures_gate`` on the means so far, final only once the
    soak is over, and failing only on a mean of at least ``MIN_READINGS_TO_FAIL`` readings that is worse."""
    compared = figures_gate(criteria, health, figures)
    rules = FIGURES.get(criteria.app, ()) if figures is None else figures
    baseline = health.baseline or {}
    if compared.verdict == "wait" or not any(figure.name in baseline for figure in rules):
        return compared  # a figure not reported yet, or nothing to compare over the soak
    mean = f"mean of {health.readings} reading{'' if health.readings == 1 else 's'}"
    if compared.verdict == "fail":
        if health.readings < MIN_READINGS_TO_FAIL:
            # Too few readings to tell a bad release from noise, even at the end of the soak (a zero soak judges
            # the first means): wait for more; the site's deadline bounds the wait.
            return Gate(
                "health",
                "wait",
                f"so far {compared.reason}; {mean}, too few to fail on (at least {MIN_READINGS_TO_FAIL})",
            )
        if soak_over:
            return Gate("health", "fail", f"{compared.reason}; {mean} on the new version")
        return Gate("health", "fail", f"{compared.reason}; {mean}, before the soak ended")
    if soak_over:
        return Gate("health", "pass", f"{compared.reason}; {mean} on the new version", known=compared.known)
    return Gate(
        "health", "wait", f"so far {compared.reason}; {mean}, judged at the end of the soak", known=compared.known
    )


def _worse(figure: Figure, value: float, base: float, worse_by: float, previous: str, tolerance: float) -> str:
    direction = "below" if figure.better == "higher" else "above"
    unit = figure.unit
    if base == 0:
        return (
            f"{figure.label} {value:g}{unit} is {direction} this site's 0{unit} {previous} "
            f"by more than {figure.noise:g}{unit}"
        )
    percent = worse_by / abs(base) * 100
    return (
        f"{figure.label} {value:g}{unit} is {percent:.0f}% {direction} this site's {base:g}{unit} {previous} "
        f"(tolerance {tolerance:g}%)"
    )


def _needed(online: int, percent: float) -> int:
    """Boxes needed for ``percent`` of ``online``, rounded up: 90% of 3 boxes is 3, not 2."""
    # Integer arithmetic on hundredths so 90% of 10 is exactly 9, not 9.000000000000002 -> 10.
    hundredths = round(percent * 100)
    return -(-online * hundredths // 10000)


def _boxes(count: int) -> str:
    return f"{count} box" if count == 1 else f"{count} boxes"
