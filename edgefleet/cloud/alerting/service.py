"""What the API may ask of alerting: the ``AlertService`` protocol and the errors it raises. Pure.

The API's routes depend on this module only (an import-linter contract keeps them off the loop, the stores and
the outbox): the controller's ``alerting`` attribute is an ``AlertService`` (``commands.AlertCommands``), or None
where alerting does not run (the API tests' in-memory controller), and the routes answer 503 then.

Errors, as a tree::

    AlertingError (alerts.py)
    ├── AlertStateError     a lifecycle step that the alert's state does not allow (alerts.py)
    ├── AlertNotFound       no alert or silence with that id
    ├── SilenceRejected     a new silence is not valid; ``problems`` lists every reason
    ├── SilenceExists       an identical silence is active; ``record`` is that one, nothing new was stored
    └── SilenceStateError   the silence already ended
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from edgefleet.cloud.alerting.alerts import AlertingError, AlertKind, AlertState, AlertTally, PageKey, StoredAlert
from edgefleet.cloud.alerting.silences import SilenceRecord
from edgefleet.ids import BoxId, SiteId


class AlertNotFound(AlertingError):
    """No alert (or silence) with the id asked for; the message says where to find ids."""


class SilenceRejected(AlertingError):
    """A new silence is not valid; ``problems`` lists every reason, each saying what to change."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class SilenceExists(AlertingError):
    """An identical silence is active (``silences.is_identical``: the same matchers, author and reason, an end
    within ``silences.SAME_END_S``): ``record`` is that one; nothing new was stored. A retried request, a double
    click or a script run twice thus leaves one silence."""

    def __init__(self, record: SilenceRecord) -> None:
        self.record = record
        super().__init__(f"silence {record.silence.id} is identical and active; nothing new was stored")


class SilenceStateError(AlertingError):
    """The silence already ended; the message says when and by whom."""


class AlertService(Protocol):
    """Reading alerts and silences, acknowledging, silencing. Store failures raise ``EdgefleetError``s that name
    the database (``store.UnreachableError`` when it cannot be reached)."""

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
        """Alerts newest first (by when they fired, then by id), filtered by state, site, kind, whether they are
        muted and the start of their id; ``sites`` limits them to those a caller may read; ``after``: the page
        that follows the alert with that ``alerts.page_key``. Every alert the controller holds is listed,
        including those it has not managed to store yet."""
        ...

    def tally(
        self, *, site: SiteId | None = None, kind: AlertKind | None = None, sites: Collection[SiteId] | None = None
    ) -> list[AlertTally]:
        """The active alerts counted by state and muting, largest count first: what a filtered page leaves out
        (the ones not stored yet included)."""
        ...

    def short_ids(self, alert_ids: Collection[str]) -> dict[str, str]:
        """The shortest start of each id (``alerts.SHORT_ID_CHARS`` at least) that no other stored alert shares."""
        ...

    def alert(self, alert_id: str) -> StoredAlert:
        """One alert by id; raises AlertNotFound."""
        ...

    def acknowledge(self, alert_id: str, who: str) -> StoredAlert:
        """Acknowledge a firing alert. Raises AlertNotFound, AlertStateError (resolved or already acknowledged:
        the message says by whom and when) or ValueError (``who`` is empty)."""
        ...

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
        """Mute the alerts that match from now until ``ends_at`` (or for ``duration_s``). Raises SilenceRejected
        listing every problem, or SilenceExists (carrying it) when an identical silence is active."""
        ...

    def end_silence(self, silence_id: str, *, by: str | None = None) -> SilenceRecord:
        """End a silence now. Raises AlertNotFound, or SilenceStateError when it already ended."""
        ...

    def list_silences(
        self,
        *,
        include_expired: bool = False,
        id_prefix: str | None = None,
        after: PageKey | None = None,
        limit: int | None = 100,
    ) -> list[SilenceRecord]:
        """Silences newest first (by start, then id): active and pending ones, or every one with
        ``include_expired``; with ``id_prefix``, those whose id starts so; with ``after``, the page that follows
        the silence whose (start, id) that is; ``limit`` None: all of them."""
        ...

    def silence(self, silence_id: str) -> SilenceRecord:
        """One silence by id; raises AlertNotFound."""
        ...
