"""The plan of a rollout: which sites go in the canary and in each wave, before anything runs. Pure: the release
(``edgefleet.releases.Release``, parsed and checked by the release loader), the inventory, the facts of each site
now and ``now`` come in; a ``Plan`` comes out, or ``PlanRefused`` listing every problem (field and reason). Called
by ``POST /api/v1/rollouts/plan`` (what ``edgefleet rollout plan`` shows) and, later, when a rollout starts:
``rollout_spec(plan, release)`` is the spec ``deciding.decide`` runs from. docs/rollouts.md says the same for
users.

What the text of a release may say (wave sizes, durations, windows, site names) is the loader's to refuse, with
its line; planning refuses only what depends on the fleet now: a canary that cannot take the app or cannot cover
the hardware, a wave left with no site, a release every site already runs.

Rules, each kept by a property test (tests/rollouts/):
- The sites targeted: every transfer center (both apps are transfer-center apps); a central site only when the
  release names it (``strategy.canary.sites`` or an override's ``sites``); for sorting-recognition, only sites
  with a GPU box. Others are ``left_out`` with the reason.
- A targeted site whose boxes all report the release's version (at least one reports the app) is ``up_to_date``
  and in no wave. Every other targeted site is in exactly one wave.
- The canary: the named sites, then, with ``coverHardware``, sites added greedily until every (GPU model, driver
  version) pair of the sites to update is in the canary: each step takes the site that adds the most pairs not
  yet covered, preferring one that can start now (reachable, not held), then by site id. A held site covers
  nothing (it may not start); a pair found only at held sites refuses the plan.
- The waves after the canary are cumulative over the rest, ordered by region then site id: ``"10%"`` reaches
  10% of them (rounded down), ``"5"`` five of them; each wave takes at least one site more than the one before.
  The loader makes the last wave ``"100%"``, so the waves reach every site; a wave with nothing left to take
  refuses the plan. When the canary takes every site to update, the plan is the canary alone.
- Held and offline sites stay in their wave and are listed apart (``held``, ``offline``): the rollout defers
  them, it never drops them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from edgefleet.cloud.rollouts import deciding
from edgefleet.cloud.rollouts.windows import Occurrence, blocked, next_window
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory, Site
from edgefleet.manifests import ManifestPath, dotted
from edgefleet.releases import Release
from edgefleet.releases import Wave as WaveSize

# The apps that run at transfer centers; a central site gets them only when the release names it.
TRANSFER_CENTER_APPS: Final = frozenset({"scan-upload", "sorting-recognition"})
# The apps that run one pod per GPU box: a site without a GPU box has nothing to run them on.
GPU_APPS: Final = frozenset({"sorting-recognition"})

Hardware = tuple[str, str]  # (GPU model, driver version)


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """What the fleet says of a site now: whether any of its boxes is reachable, and the versions of the app its
    boxes report in their latest heartbeats (empty when none reports the app)."""

    reachable: bool
    versions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Refusal:
    """One reason the plan is refused: the release field it concerns (dotted, as written) and why."""

    path: ManifestPath
    reason: str

    @property
    def field(self) -> str:
        return dotted(self.path)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.path else self.reason


class PlanRefused(EdgefleetError):
    """The release cannot be rolled out as written; ``refusals`` lists every problem."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        super().__init__("the rollout plan is refused: " + "; ".join(str(r) for r in refusals))


@dataclass(frozen=True, slots=True)
class Wave:
    """The canary (``number`` 0) or a wave after it. ``sites`` holds every site of the wave, held and offline
    ones included (they are deferred, not dropped)."""

    number: int
    size: str  # the wave as the release gives it ("10%", "5"); "canary" for the canary
    sites: tuple[SiteId, ...]
    hardware: tuple[Hardware, ...]
    needs_approval: bool

    @property
    def name(self) -> str:
        return "canary" if self.number == 0 else f"wave {self.number}"


@dataclass(frozen=True, slots=True)
class SiteWindows:
    """A site's blackouts: the one in force now, and the next to start (local time of ``timezone``)."""

    site: SiteId
    timezone: str
    now: Occurrence | None
    next: Occurrence | None


@dataclass(frozen=True, slots=True)
class Plan:
    release: str
    app: str
    version: str
    waves: tuple[Wave, ...]
    up_to_date: tuple[SiteId, ...]
    held: tuple[SiteId, ...]
    offline: tuple[SiteId, ...]
    left_out: tuple[tuple[SiteId, str], ...]
    windows: tuple[SiteWindows, ...]
    fleet_hardware: tuple[Hardware, ...]
    max_in_flight: int
    soak_s: float
    approval_before: tuple[int, ...]
    at: float

    @property
    def sites(self) -> tuple[SiteId, ...]:
        """Every site to update, wave by wave."""
        return tuple(s for wave in self.waves for s in wave.sites)


def site_hardware(inventory: Inventory, site: SiteId) -> frozenset[Hardware]:
    """The (GPU model, driver version) pairs of a site's GPU boxes."""
    return frozenset(
        (box.gpu.model, box.gpu.driver_version) for box in inventory.site_boxes(site) if box.gpu is not None
    )


def _order(site: Site) -> tuple[str, str]:
    return (site.region, site.id)


def _named_sites(release: Release) -> set[SiteId]:
    named = set(release.strategy.canary.sites)
    for override in release.overrides:
        named.update(override.sites)
    return named


def _targets(release: Release, inventory: Inventory) -> tuple[list[Site], list[tuple[SiteId, str]]]:
    """The sites the release goes to, and those left out with the reason."""
    app = release.app
    named = _named_sites(release)
    targets: list[Site] = []
    left_out: list[tuple[SiteId, str]] = []
    for site in sorted(inventory.sites.values(), key=_order):
        if site.kind == "central" and app in TRANSFER_CENTER_APPS and site.id not in named:
            left_out.append((site.id, f"a central site; {app} goes to one only when the release names it"))
        elif app in GPU_APPS and not site_hardware(inventory, site.id):
            left_out.append((site.id, f"no GPU box to run {app} on"))
        else:
            targets.append(site)
    return targets, left_out


def _reach(size: WaveSize, total: int) -> int:
    """How many of ``total`` sites the waves up to ``size`` hold at most (a percentage rounds down)."""
    if size.percent is not None:
        return min(total, int(total * size.percent / 100))
    assert size.count is not None
    return min(total, size.count)


def _is_up_to_date(facts: SiteFacts | None, version: str) -> bool:
    return facts is not None and facts.versions == frozenset({version})


def _choose_canary(
    named: list[Site],
    candidates: list[Site],
    hardware: Mapping[SiteId, frozenset[Hardware]],
    can_start: Mapping[SiteId, bool],
    held: frozenset[SiteId],
    wanted: frozenset[Hardware],
) -> tuple[list[Site], frozenset[Hardware]]:
    """The named sites plus those added greedily to cover ``wanted``, and the pairs left uncovered."""
    chosen = list(named)
    covered: set[Hardware] = set()
    for site in named:
        if site.id not in held:
            covered |= hardware[site.id]
    pool = [s for s in candidates if s not in chosen and s.id not in held]
    while wanted - covered:
        best: Site | None = None
        best_key: tuple[int, bool, str] | None = None
        for site in pool:
            gain = len((hardware[site.id] & wanted) - covered)
            if gain == 0:
                continue
            key = (-gain, not can_start[site.id], site.id)
            if best_key is None or key < best_key:
                best, best_key = site, key
        if best is None:
            break
        chosen.append(best)
        covered |= hardware[best.id]
        pool.remove(best)
    return chosen, frozenset(wanted - covered)


def _hardware_of(
    sites: list[Site] | tuple[SiteId, ...], hardware: Mapping[SiteId, frozenset[Hardware]]
) -> tuple[Hardware, ...]:
    pairs: set[Hardware] = set()
    for site in sites:
        pairs |= hardware[site if isinstance(site, str) else site.id]
    return tuple(sorted(pairs))


def plan_rollout(
    release: Release,
    inventory: Inventory,
    facts: Mapping[SiteId, SiteFacts],
    *,
    held: frozenset[SiteId] = frozenset(),
    now: float,
) -> Plan:
    """The plan of ``release`` over ``inventory`` given each site's ``facts`` now (a site without facts counts
    as offline, running nothing) and the sites ``held``; raises ``PlanRefused`` listing every problem.
    ``release`` was loaded against ``inventory`` (every site it names is there)."""
    refusals: list[Refusal] = []
    strategy = release.strategy
    targets, left_out = _targets(release, inventory)
    target_ids = {s.id for s in targets}

    named: list[Site] = []
    for i, name in enumerate(strategy.canary.sites):
        where = ("spec", "strategy", "canary", "sites", i)
        site = inventory.sites.get(name)
        if site is None:
            # The loader refuses it; a release loaded against another inventory (a reload since) lands here.
            refusals.append(Refusal(where, f"no site {name!r} in the inventory"))
        elif site.id not in target_ids:
            reason = next(r for s, r in left_out if s == site.id)
            refusals.append(Refusal(where, f"{name!r} cannot take {release.app}: {reason}"))
        elif site not in named:
            named.append(site)

    up_to_date = [s for s in targets if _is_up_to_date(facts.get(s.id), release.version)]
    to_update = [s for s in targets if s not in up_to_date]
    hardware = {s.id: site_hardware(inventory, s.id) for s in targets}
    reachable = {s.id: (facts[s.id].reachable if s.id in facts else False) for s in targets}
    can_start = {s.id: reachable[s.id] and s.id not in held for s in targets}
    fleet_hardware = frozenset(_hardware_of(to_update, hardware))

    canary_named = [s for s in named if s in to_update]
    if strategy.canary.cover_hardware:
        canary, missing = _choose_canary(canary_named, to_update, hardware, can_start, held, fleet_hardware)
        for model, driver in sorted(missing):
            at = sorted(s.id for s in to_update if (model, driver) in hardware[s.id])
            refusals.append(
                Refusal(
                    ("spec", "strategy", "canary"),
                    f"cannot cover {model} with driver {driver}: only held sites have it ({', '.join(at)}); "
                    "release the hold, or set coverHardware: false",
                )
            )
    else:
        canary = canary_named
    if to_update and not canary:
        refusals.append(
            Refusal(
                ("spec", "strategy", "canary"),
                "the canary is empty: name sites that do not run this version yet, or set coverHardware: true",
            )
        )
    if not to_update:
        refusals.append(
            Refusal(("spec", "version"), f"every site the release goes to already runs {release.app} {release.version}")
        )

    canary_ids = {s.id for s in canary}
    rest = sorted((s for s in to_update if s.id not in canary_ids), key=_order)
    waves = [
        Wave(
            0,
            "canary",
            tuple(s.id for s in sorted(canary, key=_order)),
            _hardware_of(canary, hardware),
            needs_approval=False,
        )
    ]
    reached = 0
    # A canary that takes every site to update (a small fleet, all hardware different) is the whole rollout: the
    # waves after it have nothing to plan, which is no fault of how they are written.
    for i, size in enumerate(strategy.waves if rest else ()):
        number = i + 1
        reach = max(_reach(size, len(rest)), reached + 1)
        if reached >= len(rest):
            refusals.append(
                Refusal(
                    ("spec", "strategy", "waves", i),
                    f"wave {number} ({size}) is empty: the waves before it already take all {len(rest)} "
                    "site(s) after the canary; remove it",
                )
            )
            continue
        sites = tuple(s.id for s in rest[reached:reach])
        waves.append(Wave(number, str(size), sites, _hardware_of(sites, hardware), number in strategy.approval_before))
        reached = reach
    if rest and reached < len(rest):
        # The loader ends the waves at "100%"; a Release built by hand may not.
        refusals.append(
            Refusal(
                ("spec", "strategy", "waves"),
                f'the waves reach {reached} of the {len(rest)} site(s) after the canary: end them with "100%"',
            )
        )
    if refusals:
        raise PlanRefused(refusals)

    windows: list[SiteWindows] = []
    for site in sorted(to_update, key=_order):
        covering = [b for b in strategy.blackouts if b.applies_to(site.id)]
        if covering:
            windows.append(
                SiteWindows(
                    site.id,
                    site.timezone,
                    blocked(site.timezone, covering, now),
                    next_window(site.timezone, covering, now),
                )
            )
    ordered = [s for w in waves for s in w.sites]
    return Plan(
        release=release.name,
        app=release.app,
        version=release.version,
        waves=tuple(waves),
        up_to_date=tuple(s.id for s in up_to_date),
        held=tuple(s for s in ordered if s in held),
        offline=tuple(s for s in ordered if not reachable[s]),
        left_out=tuple(left_out),
        windows=tuple(windows),
        fleet_hardware=tuple(sorted(fleet_hardware)),
        max_in_flight=strategy.max_in_flight,
        soak_s=float(strategy.soak_s),
        approval_before=tuple(sorted(set(strategy.approval_before))),
        at=now,
    )


def rollout_spec(plan: Plan, release: Release) -> deciding.RolloutSpec:
    """The spec a rollout of ``plan`` runs from (``deciding.decide``): the plan's canary as wave 0 and its waves
    after it, each needing a promotion where the release's ``approvalBefore`` says (wave n there is wave n here),
    and the release's soak, sites in flight, failure threshold and gate criteria. No command given yet."""
    if plan.release != release.name:
        raise ValueError(f"the plan is of release {plan.release!r}, not of {release.name!r}")
    strategy = release.strategy
    return deciding.RolloutSpec(
        release=release.name,
        app=release.app,
        version=release.version,
        waves=tuple(deciding.Wave(w.name, w.sites, needs_approval=w.needs_approval) for w in plan.waves),
        threshold=deciding.FailureThreshold(
            sites=strategy.failure_sites, percent_of_wave=strategy.failure_percent_of_wave
        ),
        running_percent=strategy.running_percent,
        health_tolerance_percent=strategy.health_tolerance_percent,
        soak_s=float(strategy.soak_s),
        max_in_flight=strategy.max_in_flight,
    )
