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


# How far back a site's own figures on its running version are taken as its baseline, and the buckets they are
# summed in. A quarter of an hour is ~90 heartbeats per box at 10 s: a baseline resting on one or two readings is
# as noisy as the figure itself (the simulator's backlog varies 5% per reading), and the gate would compare noise
# with noise (a good canary site failed so in the demo).
BASELINE_WINDOW_S = 900.0
BUCKET_S = 60.0


class FigureWindow:
    """Each site's figures per app and version over the last ``window_s``: every heartbeat's figures of every
    running app, summed in ``bucket_s`` buckets (so memory stays a few buckets per site, app and version however
    many boxes beat). Pure: the time is a parameter; not thread-safe (the reconciler holds a lock around it)."""

    def __init__(self, window_s: float = BASELINE_WINDOW_S, bucket_s: float = BUCKET_S) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        # (site, app, version) -> [bucket index, {figure: (sum, count)}], oldest first
        self._buckets: dict[tuple[str, str, str], list[tuple[int, dict[str, tuple[float, int]]]]] = {}

    def add(self, site: str, app: AppState, now: float) -> None:
        """One heartbeat's reading of ``app`` at ``site`` (nothing for an app not running or without figures)."""
        if app.state != "running" or not app.figures:
            return
        index = int(now // self.bucket_s)
        buckets = self._buckets.setdefault((site, app.name, app.version), [])
        if not buckets or buckets[-1][0] != index:
            buckets.append((index, {}))
            oldest = index - int(self.window_s // self.bucket_s)
            while buckets[0][0] < oldest:
                buckets.pop(0)
        sums = buckets[-1][1]
        for name, value in app.figures.items():
            total, count = sums.get(name, (0.0, 0))
            sums[name] = (total + value, count + 1)

    def mean(self, site: str, app: str, version: str, now: float) -> tuple[dict[str, float], int] | None:
        """The mean of each figure over the window and how many readings it rests on (the fewest of any figure);
        None when nothing was read."""
        oldest = int(now // self.bucket_s) - int(self.window_s // self.bucket_s)
        totals: dict[str, tuple[float, int]] = {}
        for index, sums in self._buckets.get((site, app, version), ()):
            if index < oldest:
                continue
            for name, (total, count) in sums.items():
                t, c = totals.get(name, (0.0, 0))
                totals[name] = (t + total, c + count)
        if not totals:
            return None
        return {name: total / count for name, (total, count) in sorted(totals.items())}, min(
            count for _total, count in totals.values()
        )

    def versions(self, site: str, app: str) -> list[str]:
        return sorted(version for (s, a, version) in self._buckets if s == site and a == app)
