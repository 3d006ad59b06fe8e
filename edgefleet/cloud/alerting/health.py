"""Health rules: GPU over temperature (sustained), GPU ECC errors, disk almost full, an app down (sustained) and
clock skew, read from each box's latest heartbeat with a short memory per condition (``tracking.Condition``).

Two steps, both pure: ``follow_health`` takes a new heartbeat into a box's ``HealthTrack`` (once per heartbeat,
however often evaluation runs), ``health_alerts`` says which alerts the remembered conditions make desired now.
Durations are measured between heartbeats' receive times: a box that stops beating freezes its conditions (its
box-lost alert speaks for it) instead of "sustaining" them on no evidence. Called by ``evaluating.evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, DesiredAlert, DetailValue, Severity, StoredAlert
from edgefleet.cloud.alerting.rules import Thresholds
from edgefleet.cloud.alerting.tracking import Condition, ConditionKey, HealthTrack
from edgefleet.cloud.fleet import BoxLive
from edgefleet.ids import BoxId, SiteId
from edgefleet.messages import APP_UP_STATES

# A GPU hovering at the limit would fire and resolve every few minutes: it must cool this far below to resolve.
GPU_TEMPERATURE_HYSTERESIS_C: Final = 3.0
# Likewise a disk at the limit, freed by log rotation and filled again.
DISK_FREE_HYSTERESIS_PERCENT: Final = 2.0
# A heartbeat that waited in the agent's buffer or in the broker looks skewed once; a wrong clock stays wrong.
CLOCK_SKEW_CONFIRM_BEATS: Final = 2

# Rule names (the first part of a condition's key).
GPU_HOT: Final = "gpu-overheat"
ECC_UNCORRECTED: Final = "ecc-uncorrected"
ECC_RISE: Final = "ecc-corrected-rise"
DISK_LOW: Final = "disk-full"
APP_DOWN: Final = "app-down"
CLOCK_SKEWED: Final = "clock-skew"
_GPU_RULES: Final = frozenset({GPU_HOT, ECC_UNCORRECTED, ECC_RISE})

Labeller = Callable[[AlertKey, Severity], dict[str, str]]


def gpu_detail(index: int) -> str:
    return f"gpu-{index}"


def _bad(
    conditions: dict[ConditionKey, Condition], key: ConditionKey, at: float, value: float | None, note: str
) -> Condition:
    """The condition at ``key`` seen once more at ``at`` (or new)."""
    before = conditions.get(key)
    if before is None:
        return Condition(since=at, seen_at=at, value=value, note=note)
    return replace(before, seen_at=at, value=value, count=before.count + 1, note=note)


def follow_health(track: HealthTrack, box: BoxLive, limits: Thresholds) -> HealthTrack:
    """``track`` with the box's latest heartbeat taken in; the same object when there is no newer heartbeat."""
    heartbeat = box.heartbeat
    at = box.last_seen
    if heartbeat is None or at is None or at == track.heartbeat_at:
        return track
    conditions = dict(track.conditions)
    same_boot = heartbeat.boot == track.boot
    ecc_corrected = dict(track.ecc_corrected) if same_boot else {}

    if heartbeat.gpu.available:
        present: set[str] = set()
        for gpu in heartbeat.gpu.gpus:
            detail = gpu_detail(gpu.index)
            present.add(detail)
            _follow_gpu_temperature(conditions, detail, gpu.temperature_c, gpu.name, at, limits)
            if gpu.ecc_uncorrected_errors is not None:
                key: ConditionKey = (ECC_UNCORRECTED, detail)
                if gpu.ecc_uncorrected_errors > limits.ecc_uncorrected_max:
                    conditions[key] = replace(
                        _bad(conditions, key, at, gpu.ecc_uncorrected_errors, gpu.name), firing=True
                    )
                else:
                    conditions.pop(key, None)
            if gpu.ecc_corrected_errors is not None:
                previous = ecc_corrected.get(detail)
                if previous is not None and gpu.ecc_corrected_errors - previous >= limits.ecc_corrected_rise:
                    note = f"{previous} -> {gpu.ecc_corrected_errors}"
                    rise = _bad(conditions, (ECC_RISE, detail), at, gpu.ecc_corrected_errors, note)
                    conditions[(ECC_RISE, detail)] = replace(rise, firing=True)
                # A lower count is a counter reset (driver reload): it becomes the new baseline.
                ecc_corrected[detail] = gpu.ecc_corrected_errors
            rise_key = (ECC_RISE, detail)
            if rise_key in conditions and at - conditions[rise_key].seen_at >= limits.ecc_corrected_hold_s:
                del conditions[rise_key]
        # A GPU no longer reported (removed, or its index moved) has no conditions any more.
        for key in [k for k in conditions if k[0] in _GPU_RULES and k[1] not in present]:
            del conditions[key]
        for detail in [d for d in ecc_corrected if d not in present]:
            del ecc_corrected[detail]
    # No GPU report (driver or NVML down): GPU conditions stay as last seen; the cause is not a GPU reading.

    host = heartbeat.host
    if host.disk_total_bytes and host.disk_free_bytes is not None:
        free = min(100.0, host.disk_free_bytes * 100.0 / host.disk_total_bytes)
        key = (DISK_LOW, None)
        before = conditions.get(key)
        if free < limits.disk_free_percent:
            conditions[key] = replace(_bad(conditions, key, at, free, host.disk_path), firing=True)
        elif before is not None and free < limits.disk_free_percent + DISK_FREE_HYSTERESIS_PERCENT:
            conditions[key] = replace(before, seen_at=at, value=free)
        else:
            conditions.pop(key, None)

    # An app list that could not be read says nothing about the apps: their conditions stay as they were.
    if heartbeat.apps.error is None:
        reported: set[str] = set()
        for app in heartbeat.apps.apps:
            reported.add(app.name)
            key = (APP_DOWN, app.name)
            if app.state in APP_UP_STATES:
                conditions.pop(key, None)
                continue
            note = app.state + (f": {app.detail}" if app.detail else "")
            down = _bad(conditions, key, at, None, note)
            conditions[key] = replace(down, firing=down.firing or at - down.since >= limits.app_down_for_s)
        for key in [k for k in conditions if k[0] == APP_DOWN and k[1] not in reported]:
            del conditions[key]

    if box.clock_skew_s is not None:
        key = (CLOCK_SKEWED, None)
        if abs(box.clock_skew_s) > limits.clock_skew_s:
            skewed = _bad(conditions, key, at, box.clock_skew_s, "")
            conditions[key] = replace(skewed, firing=skewed.count >= CLOCK_SKEW_CONFIRM_BEATS)
        else:
            conditions.pop(key, None)

    return HealthTrack(heartbeat_at=at, boot=heartbeat.boot, conditions=conditions, ecc_corrected=ecc_corrected)


def _follow_gpu_temperature(
    conditions: dict[ConditionKey, Condition],
    detail: str,
    temperature: float | None,
    name: str,
    at: float,
    limits: Thresholds,
) -> None:
    if temperature is None:
        return
    key = (GPU_HOT, detail)
    before = conditions.get(key)
    if temperature > limits.gpu_temperature_c:
        hot = _bad(conditions, key, at, temperature, name)
        conditions[key] = replace(hot, firing=hot.firing or at - hot.since >= limits.gpu_temperature_for_s)
    elif before is not None and before.firing and temperature > limits.gpu_temperature_c - GPU_TEMPERATURE_HYSTERESIS_C:
        conditions[key] = replace(before, seen_at=at, value=temperature)
    else:
        # Cooled down, or dipped below the limit before it was sustained: the clock starts again next time.
        conditions.pop(key, None)


def health_alerts(
    track: HealthTrack, site: SiteId, box: BoxId, limits: Thresholds, labels: Labeller, *, now: float
) -> list[DesiredAlert]:
    """The health alerts ``track``'s conditions make desired at ``now``."""
    out: list[DesiredAlert] = []
    ecc: dict[str, tuple[Condition | None, Condition | None]] = {}
    for (rule, detail), condition in sorted(track.conditions.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if rule == GPU_HOT and condition.firing:
            key = AlertKey(AlertKind.GPU_OVERHEAT, site, box, detail)
            value = condition.value or 0.0
            out.append(
                DesiredAlert(
                    key=key,
                    severity=Severity.WARNING,
                    summary=f"{detail} ({condition.note}) of {box} at {value:.0f} °C, over {limits.gpu_temperature_c:g} °C "
                    f"for {limits.gpu_temperature_for_s:g} s or more",
                    description="Cooling of the box or its room has failed; the GPU slows down and may shut off.",
                    labels=labels(key, Severity.WARNING),
                    started_at=condition.since,
                    details={"temperature_c": round(value), "limit_c": limits.gpu_temperature_c, "gpu": condition.note},
                )
            )
        elif rule in (ECC_UNCORRECTED, ECC_RISE) and detail is not None:
            uncorrected, rise = ecc.get(detail, (None, None))
            if rule == ECC_UNCORRECTED:
                ecc[detail] = (condition, rise)
            elif now - condition.seen_at < limits.ecc_corrected_hold_s:
                ecc[detail] = (uncorrected, condition)
        elif rule == DISK_LOW and condition.firing:
            key = AlertKey(AlertKind.DISK_FULL, site, box, None)
            free = condition.value or 0.0
            out.append(
                DesiredAlert(
                    key=key,
                    severity=Severity.WARNING,
                    summary=f"Disk {condition.note} of {box} {free:.0f}% free, below {limits.disk_free_percent:g}%",
                    description="Logs and images fill the rest within hours; clean up or grow the disk.",
                    labels=labels(key, Severity.WARNING),
                    started_at=condition.since,
                    details={
                        "free_percent": round(free, 1),
                        "limit_percent": limits.disk_free_percent,
                        "path": condition.note,
                    },
                )
            )
        elif rule == APP_DOWN and condition.firing and detail is not None:
            key = AlertKey(AlertKind.APP_DOWN, site, box, detail)
            out.append(
                DesiredAlert(
                    key=key,
                    severity=Severity.CRITICAL,
                    summary=f"App {detail} on {box} not running ({condition.note}) for {limits.app_down_for_s:g} s or more",
                    description="The box reports the app as not running; its sorting line may be without it.",
                    labels=labels(key, Severity.CRITICAL),
                    started_at=condition.since,
                    details={"app": detail, "state": condition.note},
                )
            )
        elif rule == CLOCK_SKEWED and condition.firing:
            key = AlertKey(AlertKind.CLOCK_SKEW, site, box, None)
            skew = condition.value or 0.0
            out.append(
                DesiredAlert(
                    key=key,
                    severity=Severity.WARNING,
                    summary=f"Clock of {box} off by {skew:+.0f} s, beyond ±{limits.clock_skew_s:g} s",
                    description="The box's time sync (NTP/chrony) has failed; its records no longer match the line's.",
                    labels=labels(key, Severity.WARNING),
                    started_at=condition.since,
                    details={"skew_s": round(skew), "limit_s": limits.clock_skew_s},
                )
            )
    for detail, (uncorrected, rise) in sorted(ecc.items()):
        out.append(_ecc_alert(site, box, detail, uncorrected, rise, labels))
    return out


def _ecc_alert(
    site: SiteId, box: BoxId, detail: str, uncorrected: Condition | None, rise: Condition | None, labels: Labeller
) -> DesiredAlert:
    key = AlertKey(AlertKind.GPU_ECC, site, box, detail)
    parts = []
    details: dict[str, DetailValue] = {}
    if uncorrected is not None:
        parts.append(f"{uncorrected.value:.0f} uncorrected")
        details["uncorrected"] = int(uncorrected.value or 0)
    if rise is not None:
        parts.append(f"corrected errors rising ({rise.note})")
        details["corrected"] = int(rise.value or 0)
        details["last_rise_at"] = rise.seen_at
    severity = Severity.CRITICAL if uncorrected is not None else Severity.WARNING
    started = min(c.since for c in (uncorrected, rise) if c is not None)
    return DesiredAlert(
        key=key,
        severity=severity,
        summary=f"{detail} of {box}: ECC " + ", ".join(parts),
        description=(
            "Uncorrected errors mean data on the GPU was lost: drain the box and have the GPU checked."
            if uncorrected is not None
            else "Corrected errors keep rising: the GPU memory is degrading; plan a replacement."
        ),
        labels=labels(key, severity),
        started_at=started,
        details=details,
    )


def resume_conditions(alert: StoredAlert) -> dict[ConditionKey, Condition]:
    """The conditions behind an active health alert, for a controller that restarts: its alerts stay firing
    instead of resolving and firing again once "sustained" is measured anew."""
    key, details, since = alert.key, alert.details, alert.started_at

    def number(name: str) -> float | None:
        value = details.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    if key.kind == AlertKind.GPU_OVERHEAT:
        return {(GPU_HOT, key.detail): Condition(since, since, firing=True, value=number("temperature_c"))}
    if key.kind == AlertKind.APP_DOWN:
        return {(APP_DOWN, key.detail): Condition(since, since, firing=True, note=str(details.get("state", "")))}
    if key.kind == AlertKind.DISK_FULL:
        note = str(details.get("path", "/"))
        return {(DISK_LOW, None): Condition(since, since, firing=True, value=number("free_percent"), note=note)}
    if key.kind == AlertKind.CLOCK_SKEW:
        skew = Condition(since, since, firing=True, value=number("skew_s"), count=CLOCK_SKEW_CONFIRM_BEATS)
        return {(CLOCK_SKEWED, None): skew}
    if key.kind == AlertKind.GPU_ECC:
        out: dict[ConditionKey, Condition] = {}
        if "uncorrected" in details:
            out[(ECC_UNCORRECTED, key.detail)] = Condition(since, since, firing=True, value=number("uncorrected"))
        last_rise = number("last_rise_at")
        if last_rise is not None:
            out[(ECC_RISE, key.detail)] = Condition(since, last_rise, firing=True, value=number("corrected"))
        return out
    return {}
