"""The health figures the simulated apps report (``AppState.figures``; docs/protocol.md, "App health figures").

Each site has its own healthy baseline per app, drawn from the seed: sites differ (a big center has a longer
upload backlog than a small one), and the rollout's health gate compares a site with itself. Every heartbeat adds
a little noise around it. A ``slow`` fault (``simulator.faults``) makes one version's figures worse by a
percentage: a release that takes ``by`` percent longer per frame or per upload, so latency, backlog and error rate
grow by that share and fps falls to ``100 / (100 + by)`` of itself. A crash-looping or pending app reports no
figures. Pure but for the random streams, which are seeded: the same seed gives the same figures.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.messages import AppState
from simulator.sources import stream


@dataclass(frozen=True, slots=True)
class FigureShape:
    """A figure's healthy range across sites (a site's baseline is drawn in it), which way is better, and the
    per-heartbeat noise as a share of the baseline."""

    name: str
    low: float
    high: float
    better: Literal["higher", "lower"]
    noise: float = 0.03
    digits: int = 2


# Healthy figures of a working sorting line: a backlog of tens to a couple of hundred parcels' scans, an error rate
# under 1%, 22-30 frames per second per camera at 30-50 ms per inference.
SHAPES: Final[Mapping[str, tuple[FigureShape, ...]]] = {
    "scan-upload": (
        FigureShape("upload_backlog", 20.0, 200.0, "lower", noise=0.05, digits=0),
        FigureShape("error_rate_percent", 0.1, 1.0, "lower", noise=0.05, digits=3),
    ),
    "sorting-recognition": (
        FigureShape("fps", 22.0, 30.0, "higher", noise=0.02),
        FigureShape("inference_latency_ms", 30.0, 50.0, "lower", noise=0.03),
    ),
}


def site_baseline(seed: int, site: str, app: str) -> dict[str, float]:
    """The healthy figures of ``app`` at ``site`` (the same every run of one seed); empty for an app without any."""
    rng = stream(seed, site, "figures", app)
    return {shape.name: rng.uniform(shape.low, shape.high) for shape in SHAPES.get(app, ())}


def worse(app: str, figures: Mapping[str, float], by: float) -> dict[str, float]:
    """The figures of a release ``by`` percent slower: lower-is-better ones times (1 + by/100), fps divided by it."""
    factor = 1.0 + by / 100.0
    better = {shape.name: shape.better for shape in SHAPES.get(app, ())}
    return {name: value / factor if better.get(name) == "higher" else value * factor for name, value in figures.items()}


def noisy(app: str, figures: Mapping[str, float], rng: random.Random) -> dict[str, float]:
    """One heartbeat's figures around ``figures``, rounded as an app would report them; never below 0."""
    shapes = {shape.name: shape for shape in SHAPES.get(app, ())}
    out = {}
    for name, value in figures.items():
        shape = shapes[name]
        out[name] = round(max(0.0, value * (1.0 + rng.gauss(0.0, shape.noise))), shape.digits)
    return out


Slowdown = Callable[[str, str], float]


class SimulatedFigures:
    """The figures of one box's apps, heartbeat by heartbeat: the site's baseline, the version's slowdown
    (``slowdown(app, version)``, percent: the box's active slow faults) and the box's own noise."""

    def __init__(self, *, seed: int, site: str, box: str, slowdown: Slowdown) -> None:
        self._seed = seed
        self._site = site
        self._slowdown = slowdown
        self._rng = stream(seed, box, "figures")
        self._baselines: dict[str, dict[str, float]] = {}

    def __call__(self, app: AppState) -> dict[str, float] | None:
        if app.state != "running" or app.name not in SHAPES:
            return None
        baseline = self._baselines.get(app.name)
        if baseline is None:
            baseline = self._baselines[app.name] = site_baseline(self._seed, self._site, app.name)
        by = self._slowdown(app.name, app.version)
        return noisy(app.name, worse(app.name, baseline, by) if by > 0 else baseline, self._rng)
