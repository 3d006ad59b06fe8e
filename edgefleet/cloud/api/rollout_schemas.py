"""The API's rollout bodies: the plan of a release (``POST /api/v1/rollouts/plan``), built from
``rollouts.planning.Plan``. Times of day are the site's local time with its UTC offset (a blackout is written in
local time); the plan's own time is UTC, as everywhere in the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edgefleet.cloud.api.fields import PRINTABLE_LINES
from edgefleet.cloud.api.schemas import _Public, utc
from edgefleet.cloud.rollouts.planning import Hardware, Plan
from edgefleet.cloud.rollouts.windows import Occurrence
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory

# A release file is a few KiB; the API's body limit (64 KiB) bounds it anyway.
MAX_RELEASE_CHARS = 60_000

ReleaseText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RELEASE_CHARS, pattern=PRINTABLE_LINES)]
"""A release manifest as YAML text: lines and tabs, no other control character."""


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: ReleaseText = Field(
        description="The release manifest as YAML text (a file of releases/), exactly as written.",
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
