"""The API's rollout bodies: the plan of a release (``POST /api/v1/rollouts/plan``), built from
``rollouts.planning.Plan``; a rollout, its waves and sites with their gates, and site holds, built from the rollout
store's records (``rollouts.service``). Times of day are the site's local time with its UTC offset (a blackout is written in
local time); the plan's own time is UTC, as everywhere in the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from edgefleet.cloud.api.fields import PRINTABLE_LINES, Comment
from edgefleet.cloud.api.schemas import _Public, utc, utc_or_none
from edgefleet.cloud.rollouts.planning import Hardware, Plan
from edgefleet.cloud.rollouts.service import Hold, StoredRollout
from edgefleet.cloud.rollouts.windows import Occurrence
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory
from edgefleet.manifests import parse_documents

# A release file is a few KiB; the API's body limit (64 KiB) bounds it anyway.
MAX_RELEASE_CHARS = 60_000

ReleaseText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RELEASE_CHARS, pattern=PRINTABLE_LINES)]
"""A release manifest as YAML text: lines and tabs, no other control character."""


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: ReleaseText = Field(
        description="The release manifest as YAML text (a file of releases/), exactly as written.",
    )
    manifests: bool = Field(
        default=False,
        description="Also give the manifests the release renders at each central site of the plan, under its "
        "cluster's policy (edgefleet rollout plan --show-manifests).",
    )


class HardwarePublic(_Public):
    gpu_model: str
    driver_version: str


class WindowPublic(_Public):
    kind: Literal["daily", "dates"]
    window: str = Field(description='As written in the release: "20:00-02:00" or "2026-11-10..2026-11-12".')
    reason: str
    starts: datetime = Field(description="This occurrence's start, in the site's local time (with its offset).")
    ends: datetime = Field(description="This occurrence's end (excluded), in the site's local time.")


class WavePublic(_Public):
    number: int = Field(description="0 is the canary; 1 the first wave after it.")
    name: str
    size: str = Field(description='As written ("10%", "5"), or "canary".')
    sites: list[str] = Field(description="Every site of the wave, held and offline ones included (they are deferred).")
    hardware: list[HardwarePublic] = Field(description="The GPU models and driver versions the wave's sites have.")
    needs_approval: bool = Field(description="Whether a release manager must promote the rollout before it starts.")
    held: list[str]
    offline: list[str]


class SitePlanPublic(_Public):
    site: str
    wave: int
    region: str
    timezone: str
    state: Literal["ready", "held", "offline"] = Field(
        description="ready: can start when its wave comes; held: skipped until its staff release it; offline: "
        "unreachable now, deferred until it comes back (offline is not failed)."
    )
    hardware: list[HardwarePublic]
    blackout_now: WindowPublic | None = Field(description="The blackout in force at the site now, if any.")
    next_blackout: WindowPublic | None = Field(description="The next blackout to start at the site, if any.")


class LeftOutPublic(_Public):
    site: str
    reason: str


class ImagePinPublic(_Public):
    container: str
    image: str = Field(description="The image as the release gives it.")
    pinned: str | None = Field(
        description="The image with the digest its registry resolves it to now: what the rollout would apply "
        "(null: not pinned, see warning or problem)."
    )
    warning: str | None = Field(description="Why the image would go out as given (no registry configured).")
    problem: str | None = Field(description="Why a start would be refused (no such image, registry not answering).")


class SiteManifestsPublic(_Public):
    site: str
    cluster: str
    objects: list[dict[str, Any]] = Field(
        description="What a rollout would apply at the site, in order (images as the release gives them; a start "
        "pins them by digest)."
    )


class PlanPublic(_Public):
    release: str
    app: str
    version: str
    planned_at: datetime
    waves: list[WavePublic]
    sites: list[SitePlanPublic] = Field(description="Every site to update, wave by wave.")
    up_to_date: list[str] = Field(description="Sites whose boxes all report this version already: in no wave.")
    held: list[str]
    offline: list[str]
    left_out: list[LeftOutPublic] = Field(description="Sites the release does not go to, with the reason.")
    fleet_hardware: list[HardwarePublic] = Field(
        description="Every GPU model and driver version of the sites to update."
    )
    max_in_flight: int
    soak_s: float
    approval_before: list[int]
    warnings: list[str] = Field(
        description='What the release loader accepted but deserves a look, as "line N, field F: reason" (an image '
        "given by tag only)."
    )
    images: list[ImagePinPublic] = Field(
        default_factory=list, description="Each image and the digest a start would pin it to, through its registry."
    )
    manifests: list[SiteManifestsPublic] = Field(
        default_factory=list, description="Asked for (manifests: true): each central site's rendered manifests."
    )


def _hardware(pairs: tuple[Hardware, ...] | list[Hardware]) -> list[HardwarePublic]:
    return [HardwarePublic(gpu_model=m, driver_version=d) for m, d in pairs]


def _window(occurrence: Occurrence | None) -> WindowPublic | None:
    if occurrence is None:
        return None
    blackout = occurrence.blackout
    return WindowPublic(
        kind=blackout.kind,
        window=blackout.window,
        reason=blackout.reason,
        starts=occurrence.starts,
        ends=occurrence.ends,
    )


def plan_public(plan: Plan, inventory: Inventory, warnings: list[str]) -> PlanPublic:
    held, offline = set(plan.held), set(plan.offline)
    windows = {w.site: w for w in plan.windows}
    sites: list[SitePlanPublic] = []
    for wave in plan.waves:
        for site_id in wave.sites:
            site = inventory.sites[SiteId(site_id)]
            window = windows.get(site_id)
            hardware = sorted({(b.gpu.model, b.gpu.driver_version) for b in inventory.site_boxes(site.id) if b.gpu})
            sites.append(
                SitePlanPublic(
                    site=site_id,
                    wave=wave.number,
                    region=site.region,
                    timezone=site.timezone,
                    state="held" if site_id in held else "offline" if site_id in offline else "ready",
                    hardware=_hardware(hardware),
                    blackout_now=_window(window.now if window else None),
                    next_blackout=_window(window.next if window else None),
                )
            )
    return PlanPublic(
        release=plan.release,
        app=plan.app,
        version=plan.version,
        planned_at=utc(plan.at),
        waves=[
            WavePublic(
                number=w.number,
                name=w.name,
                size=w.size,
                sites=list(w.sites),
                hardware=_hardware(w.hardware),
                needs_approval=w.needs_approval,
                held=[s for s in w.sites if s in held],
                offline=[s for s in w.sites if s in offline],
            )
            for w in plan.waves
        ],
        sites=sites,
        up_to_date=list(plan.up_to_date),
        held=list(plan.held),
        offline=list(plan.offline),
        left_out=[LeftOutPublic(site=s, reason=r) for s, r in plan.left_out],
        fleet_hardware=_hardware(plan.fleet_hardware),
        max_in_flight=plan.max_in_flight,
        soak_s=plan.soak_s,
        approval_before=list(plan.approval_before),
        warnings=warnings,
    )


# --- rollouts (POST /api/v1/rollouts, GET /api/v1/rollouts[/{id}], the commands, site holds) ------------------


def _not_blank(reason: str | None) -> str | None:
    if reason is not None and not reason.strip():
        raise ValueError(
            "give the reason the blackout windows are overridden (a ticket, the emergency), not only blanks"
        )
    return reason


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: ReleaseText = Field(description="The release manifest as YAML text (a file of releases/), as written.")
    override_blackout: Comment | None = Field(
        default=None,
        description="Why sites may start inside their blackout windows (a ticket, the emergency); audited and "
        "shown. Absent: no site starts in its window.",
    )

    _reason = field_validator("override_blackout")(_not_blank)


class CommandRequest(BaseModel):
    """A command's body: nothing today (who gives it is who signed in); an empty object or none."""

    model_config = ConfigDict(extra="forbid")


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Comment = Field(
        description="Why the rollout may start sites inside their blackout windows (a ticket, the emergency); "
        "audited and shown on the rollout and on each site started so."
    )

    _reason = field_validator("reason")(_not_blank)


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Comment = Field(description="Why the site is held (maintenance, a peak day), shown in every rollout.")


class HoldPublic(_Public):
    site: str
    reason: str
    by: str
    since: datetime


class GatePublic(_Public):
    name: str = Field(description="kubernetes, agents, alerts or health.")
    verdict: Literal["pass", "wait", "fail"]
    reason: str
    known: bool = Field(description="False when the verdict was taken without the data to judge it.")


class SiteRolloutPublic(_Public):
    site: str
    state: str = Field(
        description="pending, in-progress, soaking, passed, failed, deferred, held, blocked, rolled-back."
    )
    reason: str
    previous_release: str | None = Field(description="What the site ran before the rollout (what a revert restores).")
    started_at: datetime | None
    soaking_since: datetime | None
    gates: list[GatePublic] = Field(description="The gates as the last tick judged them (sites in flight).")
    blackout_override: str | None = Field(
        default=None, description="Started inside its blackout window by the override: the window and the reason."
    )


class WaveRolloutPublic(_Public):
    number: int = Field(description="0 is the canary.")
    name: str
    state: str = Field(description="waiting, awaiting-approval, running or passed.")
    needs_approval: bool
    sites: list[SiteRolloutPublic]


class RolloutSummaryPublic(_Public):
    id: str
    app: str
    release: str
    version: str
    state: str = Field(description="running, paused, awaiting-approval, aborting, aborted, rolled-back or done.")
    reason: str
    active: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    sites: dict[str, int] = Field(description="How many sites are in each state.")


class RolloutPublic(RolloutSummaryPublic):
    stopped_because: str
    paused: bool
    promoted: list[int]
    aborted: bool
    rolled_back: bool
    blackout_override: str | None = Field(
        description="Why the rollout may start sites inside their blackout windows; None: it may not."
    )
    waves: list[WaveRolloutPublic]
    deferred: list[str] = Field(description="Sites offline when their turn came (or cut off), caught up when back.")
    held: list[str] = Field(description="Sites held by their staff, started once released.")
    blocked: list[str] = Field(description="Sites in a blackout window now, started when it ends (or overridden).")
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Container -> image as every site gets it: pinned by digest when the rollout started.",
    )


def hold_public(hold: Hold) -> HoldPublic:
    return HoldPublic(site=hold.site, reason=hold.reason, by=hold.by, since=utc(hold.since))


def _counts(rollout: StoredRollout) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in rollout.status.sites.values():
        counts[status.state] = counts.get(status.state, 0) + 1
    return dict(sorted(counts.items()))


def rollout_summary(rollout: StoredRollout) -> RolloutSummaryPublic:
    return RolloutSummaryPublic(**_summary(rollout))


def _summary(rollout: StoredRollout) -> dict[str, object]:
    return {
        "id": rollout.id,
        "app": rollout.app,
        "release": rollout.release_name,
        "version": rollout.spec.version,
        "state": rollout.status.state,
        "reason": rollout.status.reason,
        "active": rollout.active,
        "created_at": utc(rollout.created_at),
        "created_by": rollout.created_by,
        "updated_at": utc(rollout.updated_at),
        "sites": _counts(rollout),
    }


def rollout_public(rollout: StoredRollout) -> RolloutPublic:
    status, spec, commands = rollout.status, rollout.spec, rollout.spec.commands
    waves = []
    for number, wave in enumerate(spec.waves):
        sites = []
        for site in wave.sites:
            current = status.site(site)
            gates = rollout.gates.get(site)
            sites.append(
                SiteRolloutPublic(
                    site=site,
                    state=current.state,
                    reason=current.reason,
                    previous_release=current.previous_release,
                    started_at=utc_or_none(current.started_at),
                    soaking_since=utc_or_none(current.soaking_since),
                    gates=[
                        GatePublic(name=g.name, verdict=g.verdict, reason=g.reason, known=g.known)
                        for g in (gates.gates if gates is not None else ())
                    ],
                    blackout_override=current.blackout_override,
                )
            )
        state = status.waves[number] if number < len(status.waves) else "waiting"
        waves.append(
            WaveRolloutPublic(
                number=number, name=wave.name, state=state, needs_approval=wave.needs_approval, sites=sites
            )
        )
    every = [s for wave in spec.waves for s in wave.sites]
    return RolloutPublic(
        **_summary(rollout),
        stopped_because=status.stopped_because,
        paused=commands.paused,
        promoted=sorted(commands.promoted),
        aborted=commands.aborted,
        rolled_back=commands.rolled_back,
        blackout_override=commands.blackout_override,
        waves=waves,
        deferred=[s for s in every if status.site(s).state == "deferred"],
        held=[s for s in every if status.site(s).state == "held"],
        blocked=[s for s in every if status.site(s).state == "blocked"],
        images=_images(rollout.release_yaml),
    )


def _images(release_yaml: str) -> dict[str, str]:
    """The images of the manifest the rollout stored (the loader checked it when the rollout started)."""
    documents = parse_documents(release_yaml, "release", [])
    spec = (documents[0].data or {}).get("spec") if documents and isinstance(documents[0].data, dict) else None
    images = spec.get("images") if isinstance(spec, dict) else None
    return {str(k): str(v) for k, v in images.items()} if isinstance(images, dict) else {}
