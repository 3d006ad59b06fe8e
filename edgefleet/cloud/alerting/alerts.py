"""What an alert is: its kind, severity and identity (the dedup key), the alert that should fire now
(``DesiredAlert``, made by ``evaluating``), the alert as stored with its lifecycle (``StoredAlert``: firing ->
acknowledged -> resolved, with who and when), and ``Transition``, the one record every change of a stored alert
goes through (made by ``reconciling.reconcile_alerts`` and by ``acknowledge`` here).

Pure data and pure functions; the alert store, the API and the notification planner read these types.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, SiteId

# Who resolves an alert whose condition has cleared: the controller itself, not a person.
RESOLVED_BY_CONTROLLER: Final = "edgefleet"
# The "site" of fleet-level alerts: no site of the inventory may take this name (inventory.RESERVED_SITE_IDS).
FLEET: Final = SiteId("fleet")
# The shortest start of an id that the API shows and takes: 8 hex digits tell ~10^5 alerts apart (git's 7 do
# for its objects); an id shares them with another only by chance, and then shows more.
SHORT_ID_CHARS: Final = 8


class AlertKind(StrEnum):
    BOX_LOST = "box-lost"
    BOX_FLAPPING = "box-flapping"
    SITE_UNREACHABLE = "site-unreachable"
    GPU_OVERHEAT = "gpu-overheat"
    GPU_ECC = "gpu-ecc"
    DISK_FULL = "disk-full"
    APP_DOWN = "app-down"
    CLOCK_SKEW = "clock-skew"
    # The box's agent is online while KubeEdge has lost its node (NotReady, Unknown or gone): edgecore is down.
    EDGE_NODE_LOST = "edge-node-lost"
    # Every online box of a site has lost its node: the site's link to the KubeEdge cloud, not each edgecore.
    SITE_NODES_LOST = "site-nodes-lost"
    # Fleet-level: the controller itself cannot hear the fleet (broker away, flooded, behind). Its site is FLEET.
    CONTROLLER_DEAF = "controller-deaf"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 2, warning 1, info 0 (for sorting and for "did it get worse")."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {Severity.CRITICAL: 2, Severity.WARNING: 1, Severity.INFO: 0}

AlertState = Literal["firing", "acknowledged", "resolved"]
Muting = Literal["silenced", "inhibited"]
TransitionAction = Literal["fire", "update", "resolve", "acknowledge"]
# Alert details stay JSON-ready: the store, the webhook and the API serialise them as they are.
DetailValue = str | int | float | bool | None | tuple[str, ...]


class AlertingError(EdgefleetError):
    """Base of the alerting errors.

    AlertingError
    └── AlertStateError   a lifecycle step that the alert's state does not allow (acknowledging a resolved alert)
    """


class AlertStateError(AlertingError):
    """The alert is not in a state that allows this step; the message says which state and what to do."""


@dataclass(frozen=True, slots=True)
class AlertKey:
    """One real problem: at most one alert per key is active at a time.

    ``box`` is None for site-wide alerts; ``detail`` names the part of the box (``gpu-0``, an app's name) for
    kinds that can fire several times per box, and is None otherwise.
    """

    kind: AlertKind
    site: SiteId
    box: BoxId | None = None
    detail: str | None = None

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """For stable ordering (``sorted(keys, key=lambda k: k.sort_key)``): site alerts before box alerts."""
        return (self.site, self.box or "", str(self.kind), self.detail or "")

    @property
    def fingerprint(self) -> str:
        """A short stable hash of the key, for ids and for the webhook's dedup field."""
        text = f"{self.kind}|{self.site}|{self.box or ''}|{self.detail or ''}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        where = f"{self.site}/{self.box}" if self.box else self.site
        return f"{self.kind} {where}" + (f" {self.detail}" if self.detail else "")


@dataclass(frozen=True, slots=True)
class DesiredAlert:
    """An alert that should be firing now, as evaluation sees it.

    Its text and details are functions of facts (readings, receive times), never of ``now``, so that evaluating
    twice with nothing new gives the same alert and reconciling gives no update.
    """

    key: AlertKey
    severity: Severity
    summary: str
    description: str
    labels: Mapping[str, str]
    started_at: float
    details: Mapping[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One alert as the store keeps it: one row per firing, from fire to resolve.

    ``muted`` says why it is not notified now: "silenced" (``muted_by`` holds the silence ids) or "inhibited"
    (``muted_by`` says by what: a site-unreachable alert, a flapping alert, a site-correlation hold).
    """

    id: str
    key: AlertKey
    severity: Severity
    summary: str
    description: str
    labels: Mapping[str, str]
    details: Mapping[str, DetailValue]
    started_at: float
    fired_at: float
    updated_at: float
    state: AlertState = "firing"
    muted: Muting | None = None
    muted_by: tuple[str, ...] = ()
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None

    @property
    def active(self) -> bool:
        """Firing or acknowledged: the problem is still there."""
        return self.state != "resolved"


@dataclass(frozen=True, slots=True)
class AlertTally:
    """How many active alerts share a state and a muting (``muted_by``: the silence ids, or what inhibits them)."""

    state: AlertState
    muted: Muting | None
    muted_by: tuple[str, ...]
    count: int


# Where a page of a list ends, as (time, id): alerts sort by fire time, silences by start, newest first and
# then by id; the next page starts after the key of the last item of the page before (keyset paging).
PageKey = tuple[float, str]


def page_key(alert: StoredAlert) -> PageKey:
    """The alert's place in a list: (fire time, id); neither ever changes for one firing."""
    return (alert.fired_at, alert.id)


def sorts_after(key: PageKey, after: PageKey) -> bool:
    """Whether ``key`` comes after ``after`` in a list (newest first, then by id)."""
    return key[0] < after[0] or (key[0] == after[0] and key[1] > after[1])


def list_order(key: PageKey) -> tuple[float, str]:
    """A sort key for ``sorted`` that lists newest first, then by id."""
    return (-key[0], key[1])


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a stored alert: store ``alert`` (it replaces ``previous``, a new row when ``action`` is
    "fire"), and tell people about it when ``notify`` is true."""

    action: TransitionAction
    alert: StoredAlert
    previous: StoredAlert | None
    notify: bool
    at: float


def alert_id(key: AlertKey, fired_at: float) -> str:
    """The id of one firing of ``key``: stable, so a controller that reconciles twice makes the same row; a hash
    of the key and the fire time, so that its first few characters tell it apart (people type a unique start of
    it, as with git), even from the earlier firings of the same problem and from the alerts of the same pass.
    80 bits: ids of different firings do not collide in any fleet's lifetime."""
    return hashlib.sha256(f"{key.fingerprint}-{round(fired_at * 1000):x}".encode()).hexdigest()[:20]


def acknowledge(alert: StoredAlert, who: str, now: float) -> Transition:
    """Someone has taken the alert: it stays active (and resolves by itself) but is not repeated any more.

    Raises AlertStateError for a resolved or already acknowledged alert, and ValueError for an empty ``who``.
    """
    who = who.strip()
    if not who:
        raise ValueError("acknowledging an alert needs the name of who takes it (who is empty)")
    if alert.state == "resolved":
        raise AlertStateError(
            f"alert {alert.id} ({alert.key}) was resolved at {alert.resolved_at} by {alert.resolved_by}; "
            "only a firing alert can be acknowledged"
        )
    if alert.state == "acknowledged":
        raise AlertStateError(
            f"alert {alert.id} ({alert.key}) was already acknowledged by {alert.acknowledged_by} "
            f"at {alert.acknowledged_at}"
        )
    acked = dataclasses.replace(alert, state="acknowledged", acknowledged_by=who, acknowledged_at=now, updated_at=now)
    return Transition("acknowledge", acked, alert, notify=False, at=now)
