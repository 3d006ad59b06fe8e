"""The detection rules: thresholds with defaults, overridable per site and per box model, and a pure ``validate``.

The heartbeat timeout is not here: it is the inventory's (``missed_beats x interval_s`` of each site, read by
``fleet.evaluate_reachability``). Everything else that decides when an alert fires is, with the reason for each
default beside it (docs/alerting.md explains them together). ``evaluating.evaluate`` reads the thresholds of each
box through ``AlertRules.for_box``; the I/O step's loader builds an ``AlertRules`` from a file and reports
``validate``'s problems with the file's lines.

Precedence: defaults, then the box model's overrides, then the site's: a site's override is a deliberate local
decision (a hot hall, a small disk) and wins over what is usual for the hardware.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory

# A box remembers this many of its latest online/offline transitions: the flapping count can be at most this.
TRANSITION_MEMORY: Final = 16


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every tunable of detection for one box (or one site, for the site-wide fields)."""

    # --- lost contact (per site only) ---
    # 2 transitions are one outage or one reboot; 4 mean the box went away and came back twice within the
    # window: a bad link or a crash loop, not one event. With 3, a planned reboot followed by a real loss would
    # be called flapping and the loss would be hidden.
    flapping_transitions: int = 4
    # Several timeout-and-reconnect cycles (30 s timeout + up to 60 s reconnect backoff) fit in it, so a link
    # that drops every few minutes is caught; 10 calm minutes end the flapping alert.
    flapping_window_s: float = 600.0
    # "Most boxes of the site": a WAN or power cut silences all of them; 80% leaves room for a box on its own
    # uplink or UPS without mistaking a few lost boxes for a site problem.
    site_threshold: float = 0.8
    # Boxes of a cut site go silent within one heartbeat interval of each other (their beats are out of phase),
    # plus jitter; 60 s holds that with a wide margin. It is widened to two intervals on slow-beating sites.
    site_window_s: float = 60.0
    # One silent box is a box problem; it takes two to tell a site problem.
    site_min_boxes: int = 2
    # A box is "late" (counts as silent for site correlation, before its own timeout) after this many
    # intervals without a heartbeat: more than one interval plus the agent's jitter (up to 20%).
    late_after_beats: float = 1.25
    # When this share of a site (and at least three boxes) has gone quiet together, a site cut may be under
    # way: a new box-lost alert of the site is held back (stored, not notified) for ``site_hold_beats``
    # intervals, long enough for the Last Wills of a cut to arrive (the broker sends them within one interval
    # of each other) and the site alert to take over. A box that drops alone is not held.
    site_suspect_share: float = 0.15
    site_hold_beats: float = 1.5
    # After a cut, boxes reconnect with backoff of up to 60 s (agent/link.py) plus one heartbeat: the site alert
    # resolves only when every box is back or this grace has passed, so its resolve notice lists only boxes
    # that really did not come back.
    site_recovery_grace_s: float = 90.0
    # --- the box's node (per site only) ---
    # A box whose agent is online while KubeEdge has lost its node for this long raises edge-node-lost. An
    # edgecore restart or a short cloudcore hiccup passes within a minute (the node-monitor grace alone is 50 s);
    # two minutes of disagreement is edgecore down or its tunnel broken.
    edge_node_lost_after_s: float = 120.0

    # --- health (per site or per box model) ---
    # Data-centre GPUs (T4, A2, A10, L4) slow down at about 85-90 C; sustained heat above 85 C means cooling
    # failed, a short peak under load does not.
    gpu_temperature_c: float = 85.0
    gpu_temperature_for_s: float = 120.0
    # Any uncorrected ECC error means data was lost on the GPU: the box needs a look (critical).
    ecc_uncorrected_max: int = 0
    # Corrected errors are harmless alone and a few a day are normal on a datacenter GPU; a burst between two
    # heartbeats means the memory is degrading (warning). A rise of 1 would keep a warning open on most boxes of
    # a large fleet. The alert stays an hour after the last burst so that a run of bursts is one alert.
    ecc_corrected_rise: int = 20
    ecc_corrected_hold_s: float = 3600.0
    # Below 10% free, logs and images fill the rest within hours on a busy sorting line.
    disk_free_percent: float = 10.0
    # An app that restarts or pulls an image is "pending" for a few seconds to a minute; past that it is down.
    app_down_for_s: float = 60.0
    # Label scans and sorting records carry the box's time; beyond 30 s they no longer match the line's events
    # (and NTP has failed: a synchronised clock is within milliseconds).
    clock_skew_s: float = 30.0

    def heartbeat_dependent(self, interval_s: float) -> tuple[float, float, float]:
        """The site window, the hold and the "late" age for a site beating every ``interval_s`` seconds."""
        window = max(self.site_window_s, SITE_WINDOW_MIN_BEATS * interval_s)
        return window, self.site_hold_beats * interval_s, self.late_after_beats * interval_s


# A site cut's last beats spread over one interval; two keep the jitter in when the interval is long.
SITE_WINDOW_MIN_BEATS: Final = 2.0


@dataclass(frozen=True, slots=True)
class Overrides:
    """Thresholds to change for one site or one box model; None keeps the value from the level below."""

    flapping_transitions: int | None = None
    flapping_window_s: float | None = None
    site_threshold: float | None = None
    site_window_s: float | None = None
    site_min_boxes: int | None = None
    late_after_beats: float | None = None
    site_suspect_share: float | None = None
    site_hold_beats: float | None = None
    site_recovery_grace_s: float | None = None
    edge_node_lost_after_s: float | None = None
    gpu_temperature_c: float | None = None
    gpu_temperature_for_s: float | None = None
    ecc_uncorrected_max: int | None = None
    ecc_corrected_rise: int | None = None
    ecc_corrected_hold_s: float | None = None
    disk_free_percent: float | None = None
    app_down_for_s: float | None = None
    clock_skew_s: float | None = None

    def given(self) -> dict[str, float | int]:
        """The fields this override sets."""
        out: dict[str, float | int] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out


# Fields about a site's boxes together: a box model cannot change them.
SITE_ONLY_FIELDS: Final = frozenset(
    {
        "flapping_transitions",
        "flapping_window_s",
        "site_threshold",
        "site_window_s",
        "site_min_boxes",
        "late_after_beats",
        "site_suspect_share",
        "site_hold_beats",
        "site_recovery_grace_s",
        "edge_node_lost_after_s",
    }
)


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Defaults and overrides; ``sites`` keys are site ids, ``models`` keys are box models as in the inventory."""

    defaults: Thresholds = field(default_factory=Thresholds)
    sites: Mapping[SiteId, Overrides] = field(default_factory=dict)
    models: Mapping[str, Overrides] = field(default_factory=dict)

    def for_site(self, site: SiteId) -> Thresholds:
        """The thresholds of a site (its site-wide fields are the ones that matter)."""
        return self.for_box(site, None)

    def for_box(self, site: SiteId, model: str | None) -> Thresholds:
        """Defaults, then the box model's overrides, then the site's."""
        out = self.defaults
        changes: dict[str, float | int] = {}
        if model is not None and model in self.models:
            changes.update(self.models[model].given())
        if site in self.sites:
            changes.update(self.sites[site].given())
        if changes:
            out = dataclasses.replace(out, **changes)  # type: ignore[arg-type]
        return out


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with the rules: where (a dotted path such as ``sites.bj-daxing.gpu_temperature_c``) and
    what to do about it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _share(value: float) -> bool:
    return 0 < value <= 1


_FIELD_CHECKS: Final[dict[str, tuple[Callable[[float], bool], str]]] = {
    "flapping_transitions": (
        lambda v: 2 <= v <= TRANSITION_MEMORY,
        f"must be a whole number from 2 to {TRANSITION_MEMORY} (2 transitions are one outage and its recovery)",
    ),
    "flapping_window_s": (_positive, "must be a number of seconds above 0 (600 by default)"),
    "site_threshold": (_share, "must be a share above 0 and at most 1 (0.8 means 80% of the site's boxes)"),
    "site_window_s": (_positive, "must be a number of seconds above 0 (60 by default)"),
    "site_min_boxes": (lambda v: v >= 1, "must be a whole number of boxes, at least 1 (2 by default)"),
    "late_after_beats": (
        lambda v: v > 1,
        "must be above 1 heartbeat interval, or every box would look late between two beats (1.25 by default)",
    ),
    "site_suspect_share": (_share, "must be a share above 0 and at most 1 (0.15 by default)"),
    "site_hold_beats": (_non_negative, "must be 0 (no hold) or a positive number of intervals (1.5 by default)"),
    "site_recovery_grace_s": (_non_negative, "must be a number of seconds, 0 or more (90 by default)"),
    "edge_node_lost_after_s": (_non_negative, "must be a number of seconds, 0 or more (120 by default)"),
    "gpu_temperature_c": (lambda v: 0 < v < 150, "must be a temperature in C between 0 and 150 (85 by default)"),
    "gpu_temperature_for_s": (_non_negative, "must be a number of seconds, 0 or more (120 by default)"),
    "ecc_uncorrected_max": (_non_negative, "must be a whole number of errors, 0 or more (0 by default)"),
    "ecc_corrected_rise": (lambda v: v >= 1, "must be a whole number of errors, at least 1 (20 by default)"),
    "ecc_corrected_hold_s": (_positive, "must be a number of seconds above 0 (3600 by default)"),
    "disk_free_percent": (lambda v: 0 < v < 100, "must be a percentage between 0 and 100 (10 by default)"),
    "app_down_for_s": (_non_negative, "must be a number of seconds, 0 or more (60 by default)"),
    "clock_skew_s": (_positive, "must be a number of seconds above 0 (30 by default)"),
}
_WHOLE_NUMBERS: Final = frozenset(
    {"flapping_transitions", "site_min_boxes", "ecc_uncorrected_max", "ecc_corrected_rise"}
)


def _check_values(values: Mapping[str, object], path: str, problems: list[RuleProblem]) -> None:
    for name, value in values.items():
        where = f"{path}.{name}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(RuleProblem(where, f"must be a number, got {type(value).__name__} {value!r}"))
            continue
        if not math.isfinite(value):
            problems.append(RuleProblem(where, f"must be a finite number, got {value!r}"))
            continue
        if name in _WHOLE_NUMBERS and not isinstance(value, int):
            problems.append(RuleProblem(where, f"must be a whole number, got {value!r}"))
            continue
        check, reason = _FIELD_CHECKS[name]
        if not check(value):
            problems.append(RuleProblem(where, f"{reason}; got {value!r}"))


def _check_combined(thresholds: Thresholds, path: str, problems: list[RuleProblem]) -> None:
    if thresholds.site_suspect_share > thresholds.site_threshold:
        problems.append(
            RuleProblem(
                f"{path}.site_suspect_share",
                f"{thresholds.site_suspect_share} is above site_threshold {thresholds.site_threshold}: the hold "
                "must start before the site alert can fire; lower it or raise site_threshold",
            )
        )


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def validate(rules: AlertRules, inventory: Inventory | None = None) -> list[RuleProblem]:
    """Every problem of ``rules`` (empty when they are good). With ``inventory``, overrides must name sites and
    box models that exist."""
    problems: list[RuleProblem] = []
    _check_values(
        {f.name: getattr(rules.defaults, f.name) for f in dataclasses.fields(rules.defaults)}, "defaults", problems
    )
    if not problems:
        _check_combined(rules.defaults, "defaults", problems)
    known_sites = sorted(inventory.sites) if inventory is not None else []
    known_models = sorted({b.model for b in inventory.boxes.values() if b.model}) if inventory is not None else []
    for site, overrides in rules.sites.items():
        path = f"sites.{site}"
        if inventory is not None and site not in inventory.sites:
            problems.append(RuleProblem(path, f"site {site!r} is not in the inventory{_suggest(site, known_sites)}"))
        before = len(problems)
        _check_values(overrides.given(), path, problems)
        if len(problems) == before:
            _check_combined(rules.for_site(site), path, problems)
    for model, overrides in rules.models.items():
        path = f"models.{model}"
        if inventory is not None and model not in known_models:
            problems.append(
                RuleProblem(path, f"no box of the inventory has model {model!r}{_suggest(model, known_models)}")
            )
        given = overrides.given()
        for name in sorted(SITE_ONLY_FIELDS & given.keys()):
            problems.append(
                RuleProblem(f"{path}.{name}", "applies to a site's boxes together; set it under sites.<site> instead")
            )
        _check_values({k: v for k, v in given.items() if k not in SITE_ONLY_FIELDS}, path, problems)
    return problems
