"""Observations of sites for the rollout's pure tests: a site where the release is fine, not yet there, failing,
or offline."""

from __future__ import annotations

from edgefleet.cloud.k8s.rollout import RolloutStatus as WorkloadRollout
from edgefleet.cloud.rollouts.deciding import Commands, FailureThreshold, RolloutSpec, SiteObservation, Wave
from edgefleet.cloud.rollouts.gates import BoxApp, SiteHealth, Workload
from edgefleet.ids import BoxId, SiteId

RELEASE = "sorting-recognition-3.6.0"
PREVIOUS = "sorting-recognition-3.5.0"
VERSION = "3.6.0"
BASELINE = {"fps": 24.0, "inference_latency_ms": 40.0}


def spec(
    *waves: list[str],
    soak_s: float = 0.0,
    max_in_flight: int = 10,
    threshold: FailureThreshold | None = None,
    approval: tuple[int, ...] = (),
    deadline_s: float = 3600.0,
    commands: Commands | None = None,
) -> RolloutSpec:
    return RolloutSpec(
        release=RELEASE,
        app="sorting-recognition",
        version=VERSION,
        waves=tuple(
            Wave(f"w{i}", tuple(SiteId(s) for s in sites), needs_approval=i in approval)
            for i, sites in enumerate(waves)
        ),
        threshold=threshold or FailureThreshold(sites=100, percent_of_wave=100),
        soak_s=soak_s,
        max_in_flight=max_in_flight,
        site_deadline_s=deadline_s,
        commands=commands or Commands(),
    )


def boxes(
    site: str, count: int = 3, *, version: str = VERSION, since: float = 0.0, online: bool = True
) -> tuple[BoxApp, ...]:
    return tuple(
        BoxApp(BoxId(f"{site}-gpu{i}"), online=online, version=version, state="running", running_since=since)
        for i in range(count)
    )


def rolled_out(site: str, *, release: str = RELEASE, state: str = "complete") -> tuple[Workload, ...]:
    return (Workload(f"sorting-recognition-{site}", release, WorkloadRollout(state, f"{state} message")),)  # type: ignore[arg-type]


def good(site: str, *, since: float = 0.0, running: str | None = PREVIOUS) -> SiteObservation:
    """The release runs fine at the site (as far as the observations go)."""
    return SiteObservation(
        running_release=running,
        workloads=rolled_out(site),
        boxes=boxes(site, since=since),
        health=SiteHealth(current=dict(BASELINE), baseline=dict(BASELINE), previous_version="3.5.0"),
    )


def rolling(site: str) -> SiteObservation:
    """The apply has not shown yet: the workload is still on the previous release."""
    return SiteObservation(
        running_release=PREVIOUS,
        workloads=rolled_out(site, release=PREVIOUS),
        boxes=boxes(site, version="3.5.0"),
        health=SiteHealth(current=dict(BASELINE), baseline=dict(BASELINE), previous_version="3.5.0"),
    )


def bad(site: str) -> SiteObservation:
    """The release failed at the site: its workload exceeded its progress deadline."""
    return SiteObservation(running_release=PREVIOUS, workloads=rolled_out(site, state="failed"), boxes=boxes(site))


def offline(site: str) -> SiteObservation:
    return SiteObservation(reachable=False, running_release=PREVIOUS, boxes=boxes(site, online=False))
