"""What people do with alerts, served to the API: ``AlertCommands`` is the controller's ``AlertService``.

Reads go to the alert store (``store.AlertStore``), with the loop's own copy of an alert taking precedence over
the stored one (it may not be saved yet): lists and counts merge the loop's unsaved alerts over the store's rows,
so an alert the store refused (a full disk) is listed and counted as it is served by id. Changes (acknowledging, adding and ending silences) hold the loop's pass
lock and go through the loop (``looping.AlertLoop.record`` and ``silences_changed``), so a pass never overwrites
them with what it read before. Validation happens here, against the inventory in force, and whatever the caller
checked before: no silence without a finite, bounded end reaches the store, and an identical active silence is not
stored twice (``SilenceExists`` answers it instead).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections import Counter
from collections.abc import Collection

from edgefleet.clock import format_duration, format_utc
from edgefleet.cloud.alerting.alerts import (
    AlertKind,
    AlertState,
    AlertTally,
    Muting,
    PageKey,
    StoredAlert,
    acknowledge,
    list_order,
    page_key,
    sorts_after,
)
from edgefleet.cloud.alerting.looping import AlertLoop
from edgefleet.cloud.alerting.service import AlertNotFound, SilenceExists, SilenceRejected, SilenceStateError
from edgefleet.cloud.alerting.silences import (
    MAX_SILENCE_S,
    Silence,
    SilenceRecord,
    is_identical,
    validate_silence,
)
from edgefleet.ids import BoxId, SiteId

log = logging.getLogger(__name__)


class AlertCommands:
    """The ``AlertService`` over a running ``AlertLoop``."""

    def __init__(self, loop: AlertLoop) -> None:
        self._loop = loop
        self._alerts = loop.alerts
        self._clock = loop.clock

    def _find(self, alert_id: str) -> StoredAlert:
        found = self._loop.find(alert_id) or self._alerts.get(alert_id)
        if found is None:
            raise AlertNotFound(f"no alert {alert_id!r}; GET /api/v1/alerts (or 'edgefleet alerts') lists the ids")
        return found

    def alert(self, alert_id: str) -> StoredAlert:
        return self._find(alert_id)

    def list_alerts(
        self,
        *,
        state: AlertState | None = None,
        site: SiteId | None = None,
        kind: AlertKind | None = None,
        sites: Collection[SiteId] | None = None,
        muted: bool | None = None,
        id_prefix: str | None = None,
        after: PageKey | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        held = [a for a in self._loop.unsaved().values() if after is None or sorts_after(page_key(a), after)]
        # The stored copies of held alerts give way to the held ones: ask the store for as many more. An alert's
        # page key never changes, so its stored copy sorts where the held one does.
        stored = self._alerts.find(
            state=state,
            site=site,
            kind=kind,
            sites=sites,
            muted=muted,
            id_prefix=id_prefix,
            after=after,
            limit=limit + len(held),
        )
        held_ids = {a.id for a in held}
        merged = [a for a in stored if a.id not in held_ids]
        merged += [
            a
            for a in held
            if _matches(a, state=state, site=site, kind=kind, sites=sites, muted=muted, id_prefix=id_prefix)
        ]
        merged.sort(key=lambda a: list_order(page_key(a)))
        return merged[:limit]

    def tally(
        self, *, site: SiteId | None = None, kind: AlertKind | None = None, sites: Collection[SiteId] | None = None
    ) -> list[AlertTally]:
        tallies = self._alerts.tally(site=site, kind=kind, sites=sites)
        held = self._loop.unsaved()
        if not held:
            return tallies
        stored = self._alerts.get_many(held)
        return _merge_tally(
            tallies,
            replaced=[a for a in stored.values() if _matches(a, site=site, kind=kind, sites=sites)],
            held=[a for a in held.values() if _matches(a, site=site, kind=kind, sites=sites)],
        )

    def short_ids(self, alert_ids: Collection[str]) -> dict[str, str]:
        return self._alerts.short_ids(alert_ids)

    def acknowledge(self, alert_id: str, who: str) -> StoredAlert:
        with self._loop.lock:
            alert = self._find(alert_id)
            transition = acknowledge(alert, who, self._clock.now())
            self._loop.record([transition], now=transition.at)
        log.info(
            "Acknowledged alert",
            extra={"alert": alert_id, "kind": str(alert.key.kind), "site": alert.key.site, "by": who.strip()},
        )
        return transition.alert

    def add_silence(
        self,
        *,
        created_by: str,
        comment: str,
        site: SiteId | None = None,
        box: BoxId | None = None,
        kind: AlertKind | None = None,
        ends_at: float | None = None,
        duration_s: float | None = None,
    ) -> SilenceRecord:
        now = self._clock.now()
        problems: list[str] = []
        if (ends_at is None) == (duration_s is None):
            problems.append("give either ends_at or duration (how long the silence lasts, e.g. 2h), not both")
        elif duration_s is not None and not (0 < duration_s <= MAX_SILENCE_S):  # NaN is refused too
            problems.append(
                f"duration must be more than 0 seconds and at most {format_duration(MAX_SILENCE_S)}, "
                f"got {format_duration(duration_s)}"
            )
        elif ends_at is not None and not math.isfinite(ends_at):
            problems.append("ends_at must be a time, not NaN or infinity")
        # Without a usable end, a stand-in one lets the other checks (matchers, who, why, the inventory) report.
        stand_in = now + 1.0
        end = stand_in if problems else (ends_at if ends_at is not None else now + (duration_s or 0.0))
        silence = Silence(
            id=f"silence-{uuid.uuid4().hex[:12]}",
            starts_at=now,
            ends_at=end,
            created_by=created_by.strip(),
            comment=comment.strip(),
            site=site,
            box=box,
            kind=kind,
        )
        problems += validate_silence(silence, self._loop.state.inventory, now=None if problems else now)
        if problems:
            raise SilenceRejected(problems)
        with self._loop.lock:
            # Under the lock, so that two identical requests at once store one silence.
            for record in self._alerts.silences(ending_after=now, limit=None):
                if record.state(now) == "active" and is_identical(silence, record):
                    raise SilenceExists(record)
            self._alerts.add_silence(silence)
            self._loop.silences_changed(added=silence)
        log.info(
            "Added silence",
            extra={
                "silence": silence.id,
                "site": site,
                "box": box,
                "kind": str(kind) if kind else None,
                "until": end,
                "by": silence.created_by,
            },
        )
        return SilenceRecord(silence, planned_ends_at=end)

    def end_silence(self, silence_id: str, *, by: str | None = None) -> SilenceRecord:
        with self._loop.lock:
            now = self._clock.now()
            record = self._alerts.get_silence(silence_id)
            if record is None:
                raise AlertNotFound(
                    f"no silence {silence_id!r}; GET /api/v1/silences (or 'edgefleet silence list') lists the ids"
                )
            if record.state(now) == "expired":
                who = f" by {record.ended_by}" if record.ended_by else ""
                raise SilenceStateError(
                    f"silence {silence_id} already ended at {format_utc(record.silence.ends_at)}{who}"
                )
            self._alerts.end_silence(silence_id, at=now, by=by)
            self._loop.silences_changed(ended=silence_id)
        log.info("Ended silence", extra={"silence": silence_id, "by": by})
        return SilenceRecord(dataclasses.replace(record.silence, ends_at=now), record.planned_ends_at, by)

    def list_silences(
        self,
        *,
        include_expired: bool = False,
        id_prefix: str | None = None,
        after: PageKey | None = None,
        limit: int | None = 100,
    ) -> list[SilenceRecord]:
        # Silences are stored before they take effect (``add_silence``), so the store has every one.
        ending_after = None if include_expired else self._clock.now()
        return self._alerts.silences(ending_after=ending_after, id_prefix=id_prefix, after=after, limit=limit)

    def silence(self, silence_id: str) -> SilenceRecord:
        record = self._alerts.get_silence(silence_id)
        if record is None:
            raise AlertNotFound(f"no silence {silence_id!r}; GET /api/v1/silences lists the ids")
        return record


def _matches(
    alert: StoredAlert,
    *,
    state: AlertState | None = None,
    site: SiteId | None = None,
    kind: AlertKind | None = None,
    sites: Collection[SiteId] | None = None,
    muted: bool | None = None,
    id_prefix: str | None = None,
) -> bool:
    """The store's filters (``AlertStore.find``), applied to an alert held in memory."""
    return (
        (state is None or alert.state == state)
        and (site is None or alert.key.site == site)
        and (kind is None or alert.key.kind == kind)
        and (sites is None or alert.key.site in sites)
        and (muted is None or (alert.muted is not None) == muted)
        and (id_prefix is None or alert.id.startswith(id_prefix))
    )


_TallyKey = tuple[AlertState, Muting | None, tuple[str, ...]]


def _merge_tally(
    tallies: list[AlertTally], *, replaced: Collection[StoredAlert], held: Collection[StoredAlert]
) -> list[AlertTally]:
    """The store's counts with the stored copies of ``replaced`` taken out and the ``held`` ones (their newer
    copies, not stored yet) counted instead; only active alerts count, as in ``AlertStore.tally``."""
    counts: Counter[_TallyKey] = Counter({(t.state, t.muted, t.muted_by): t.count for t in tallies})
    for alert in replaced:
        if alert.active:
            counts[alert.state, alert.muted, alert.muted_by] -= 1
    for alert in held:
        if alert.active:
            counts[alert.state, alert.muted, alert.muted_by] += 1
    out = [AlertTally(state=s, muted=m, muted_by=by, count=n) for (s, m, by), n in counts.items() if n > 0]
    return sorted(out, key=lambda t: (-t.count, t.state, t.muted or "", t.muted_by))
