"""The bodies of the alert and silence routes (``routes/alerts.py``, ``routes/silences.py``), in the users' words,
and how they are built from the alert store's ``StoredAlert`` and ``SilenceRecord``.

Times are ISO 8601 in UTC, durations seconds or a text such as ``2h``. Request bodies refuse unknown fields, so a
misspelt ``comennt`` is a 422 naming it rather than a silence without a reason, and read every field through the
constrained types of ``fields.py`` (no control characters, bounded lengths, finite numbers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from edgefleet.clock import format_duration
from edgefleet.cloud.alerting.alerts import (
    SHORT_ID_CHARS,
    AlertKind,
    AlertState,
    AlertTally,
    Muting,
    Severity,
    StoredAlert,
)
from edgefleet.cloud.alerting.silences import MAX_SILENCE_S, SilenceRecord, SilenceState
from edgefleet.cloud.api.fields import Comment, Duration, Name, duration_schema
from edgefleet.cloud.api.schemas import ErrorBody, utc, utc_or_none


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


_ERROR_MEANINGS: Final = {
    401: "No valid API token (none, unknown, expired or revoked); the message says how to get one.",
    403: "The caller may not read or change this site's alerts (or fleet-wide ones).",
    429: "Too many unknown tokens from this address; Retry-After says when to try again.",
    404: "No such alert, silence or site.",
    409: "The alert or silence is not in a state that allows this (already acknowledged, resolved or ended).",
    422: "A parameter or a body field is invalid; the message names each problem.",
    500: "The controller failed to answer; its log has the details.",
    503: "Alerting does not run, or the database cannot be used now; the message says what to check.",
}


def alert_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route or router may give."""
    return {status: {"model": ErrorBody, "description": _ERROR_MEANINGS[status]} for status in statuses}


# --- alerts ---------------------------------------------------------------------------------------------


class AlertPublic(BaseModel):
    id: str = Field(description="One firing of one problem: a problem that comes back after its resolve gets a new id.")
    short_id: str = Field(
        description=f"The shortest start of id, {SHORT_ID_CHARS} characters at least, that no other alert shares "
        "now; every route that takes an alert id takes it too."
    )
    kind: AlertKind
    site: str
    box: str | None = Field(description="Null for a site-wide alert (site-unreachable).")
    detail: str | None = Field(description="The part of the box: gpu-0, an app's name; null when the kind has none.")
    severity: Severity
    state: AlertState
    summary: str
    description: str
    labels: dict[str, str]
    details: dict[str, Any] = Field(description="The readings and facts behind the alert (kind-specific).")
    started_at: datetime = Field(description="When the problem began (the last heartbeat of a lost box, ...).")
    fired_at: datetime
    updated_at: datetime
    muted: Muting | None = Field(description="Why it is not notified now: silenced or inhibited; null: it is.")
    muted_by: list[str] = Field(description="The silence ids, or what inhibits it (its site's alert, a hold).")
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None


class AcknowledgeBody(_Body):
    """An acknowledgement's body: nothing today (who takes the alert is who signed in); an empty object or none."""


def alert_public(alert: StoredAlert, *, short_id: str) -> AlertPublic:
    key = alert.key
    return AlertPublic(
        id=alert.id,
        short_id=short_id,
        kind=key.kind,
        site=key.site,
        box=key.box,
        detail=key.detail,
        severity=alert.severity,
        state=alert.state,
        summary=alert.summary,
        description=alert.description,
        labels=dict(alert.labels),
        details={k: list(v) if isinstance(v, tuple) else v for k, v in alert.details.items()},
        started_at=utc(alert.started_at),
        fired_at=utc(alert.fired_at),
        updated_at=utc(alert.updated_at),
        muted=alert.muted,
        muted_by=list(alert.muted_by),
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=utc_or_none(alert.acknowledged_at),
        resolved_by=alert.resolved_by,
        resolved_at=utc_or_none(alert.resolved_at),
    )


class AlertCountPublic(BaseModel):
    state: AlertState = Field(description="firing or acknowledged (resolved alerts are not counted).")
    muted: Muting | None = Field(description="Why they are not notified now: silenced or inhibited; null: they are.")
    muted_by: list[str] = Field(description="The silence ids, or what inhibits them (their site's alert, a hold).")
    count: int


def alert_count_public(tally: AlertTally) -> AlertCountPublic:
    return AlertCountPublic(state=tally.state, muted=tally.muted, muted_by=list(tally.muted_by), count=tally.count)


# --- silences -------------------------------------------------------------------------------------------


def _at_most_a_silence(seconds: float) -> float:
    if seconds > MAX_SILENCE_S:
        raise PydanticCustomError(
            "duration_too_long",
            "{given} is longer than a silence may last ({most}); silence for less and extend it later",
            {"given": format_duration(seconds), "most": format_duration(MAX_SILENCE_S)},
        )
    return seconds


SilenceDuration = Annotated[
    Duration, AfterValidator(_at_most_a_silence), WithJsonSchema(duration_schema(MAX_SILENCE_S))
]


class SilenceCreate(_Body):
    """A new silence: at least one matcher (site, box, kind), its end (``ends_at``, or ``duration`` from now),
    and why (who is who signed in)."""

    site: Name | None = Field(default=None, description="Mute this site's alerts.")
    box: Name | None = Field(default=None, description="Mute this box's alerts.")
    kind: AlertKind | None = Field(default=None, description="Mute alerts of this kind.")
    ends_at: datetime | None = Field(default=None, description="When it ends (ISO 8601; without a zone: UTC).")
    duration: SilenceDuration | None = Field(
        default=None,
        description="How long it lasts from now: seconds, or a text such as 90m, 2h, 1h30m "
        f"(at most {format_duration(MAX_SILENCE_S)}).",
    )
    comment: Annotated[Comment, Field(description="Why: the ticket, the maintenance.")]


class SilencePublic(BaseModel):
    id: str
    site: str | None
    box: str | None
    kind: AlertKind | None
    state: SilenceState
    starts_at: datetime
    ends_at: datetime = Field(description="When it stops (or stopped) muting.")
    planned_ends_at: datetime = Field(description="The end it was created with.")
    created_by: str
    comment: str
    ended_by: str | None = Field(description="Who ended it early; null when it was not.")


def silence_public(record: SilenceRecord, *, now: float) -> SilencePublic:
    silence = record.silence
    return SilencePublic(
        id=silence.id,
        site=silence.site,
        box=silence.box,
        kind=silence.kind,
        state=record.state(now),
        starts_at=utc(silence.starts_at),
        ends_at=utc(silence.ends_at),
        planned_ends_at=utc(record.planned_ends_at),
        created_by=silence.created_by,
        comment=silence.comment,
        ended_by=record.ended_by,
    )


def timestamp(moment: datetime) -> float:
    """Seconds since the epoch; a time without a zone is taken as UTC."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
