"""A site's health figures for one app, per version, as the rollout's health gate compares them (``gates``): the
mean of each figure over the site's boxes that run that version and report it. Pure; ``facts.site_figures`` reads
the boxes' latest heartbeats from the live fleet and asks here.

Only running apps count: a crash-looping or pending app reports no figures (the agent and the simulator leave them
out), and a stale figure of a stopped app says nothing about the version. A box that reports only some figures
counts for those only, so one box that cannot be scraped does not pull a mean towards nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edgefleet.messages import AppState

# version -> figure name -> mean over the boxes that reported it
VersionFigures = dict[str, dict[str, float]]


def mean_figures(apps: Iterable[AppState]) -> VersionFigures:
    """The mean of each figure per version over ``apps`` (one app's latest state per box); versions without any
    figure are left out."""
    values: dict[str, dict[str, list[float]]] = {}
    for app in apps:
        if app.state != "running" or not app.figures:
            continue
        per_figure = values.setdefault(app.version, {})
        for name, value in app.figures.items():
            per_figure.setdefault(name, []).append(value)
    return {
        version: {name: math.fsum(found) / len(found) for name, found in sorted(per_figure.items())}
        for version, per_figure in sorted(values.items())
    }
