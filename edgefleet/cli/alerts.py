"""``edgefleet alerts`` (list, ``ack``) and ``edgefleet silence`` (``add``, ``list``, ``delete``): the alerts and
silences of a running controller, through its HTTP API.

``edgefleet.cli.app`` calls ``register``. As in ``edgefleet.cli.fleet``: httpx and rich are imported inside the
commands, a controller that cannot be reached raises ``UnreachableError`` (printed as one line by
``edgefleet.cli.app``), and an error the API answers - an unknown alert, an alert already acknowledged, a silence
that names no site of the inventory - ends the command with the API's own message and exit code 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, ago, call, plural

STATE_STYLE: Final = {"firing": "bold red", "acknowledged": "yellow", "resolved": "green"}
SEVERITY_STYLE: Final = {"critical": "bold red", "warning": "yellow", "info": "dim"}
SILENCE_STYLE: Final = {"active": "green", "pending": "yellow", "expired": "dim"}
# Long summaries are cut in the table; GET /api/v1/alerts/ID shows them whole.
SUMMARY_WIDTH: Final = 70


def register(app: typer.Typer) -> None:
    """Add ``alerts`` and ``silence`` to the ``edgefleet`` app."""
    alerts = typer.Typer(help="List alerts, or acknowledge one.", add_completion=False)
    alerts.callback(invoke_without_command=True)(alerts_list)
    alerts.command("ack")(alerts_ack)
    app.add_typer(alerts, name="alerts", help="List alerts (newest first); 'ack' acknowledges one.")
    silence = typer.Typer(help="Add, list and end silences.", no_args_is_help=True, add_completion=False)
    silence.command("add")(silence_add)
    silence.command("list")(silence_list)
    silence.command("delete")(silence_delete)
    app.add_typer(silence, name="silence", help="Mute alerts of a site, box or kind for a while (maintenance).")


# --- commands -------------------------------------------------------------------------------------------


def alerts_list(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help="Only alerts in this state: firing, acknowledged, resolved.")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only alerts of this site.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only alerts of this kind: box-lost, site-unreachable, gpu-overheat, ...")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    api: ApiOption = DEFAULT_API,
) -> None:
    """The alerts, newest first: kind, where, severity, state, since when, summary."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.table import Table

    from edgefleet.cli.output import console

    alerts = call(api, "GET", "/api/v1/alerts", params={"state": state, "site": site, "kind": kind, "limit": limit})
    table = Table(header_style="bold")
    for column in ("id", "kind", "site", "box", "severity", "state", "since", "summary"):
        table.add_column(column, no_wrap=column != "summary")
    now = datetime.now().astimezone()
    for alert in alerts:
        where = alert["box"] or "-"
        if alert["detail"]:
            where += f" {alert['detail']}"
        state_text = styled(alert["state"], STATE_STYLE)
        if alert["muted"]:
            state_text += f" ({alert['muted']})"
        table.add_row(
            alert["id"],
            alert["kind"],
            alert["site"],
            escape(where),
            styled(alert["severity"], SEVERITY_STYLE),
            state_text,
            ago((now - datetime.fromisoformat(alert["started_at"])).total_seconds()),
            escape(_cut(alert["summary"], SUMMARY_WIDTH)),
        )
    console.print(table)
    firing = sum(a["state"] == "firing" for a in alerts)
    console.print(f"{plural(len(alerts), 'alert')}, {firing} firing", highlight=False)


def alerts_ack(
    alert: Annotated[
        str,
        typer.Argument(metavar="ALERT", help="The alert id (or a unique start of it), as 'edgefleet alerts' lists it."),
    ],
    by: Annotated[str, typer.Option("--by", help="Who takes the alert (your name).")],
    api: ApiOption = DEFAULT_API,
) -> None:
    """Acknowledge a firing alert: it stays active and resolves by itself, but is no longer repeated."""
    from rich.markup import escape

    from edgefleet.cli.output import console

    acked = call(api, "POST", f"/api/v1/alerts/{quote(alert, safe='')}/ack", body={"by": by})
    console.print(
        escape(
            f"Acknowledged {acked['id']} ({acked['kind']} {acked['box'] or acked['site']}) as {acked['acknowledged_by']}"
        ),
        highlight=False,
    )


def silence_add(
    by: Annotated[str, typer.Option("--by", help="Who silences (your name).")],
    comment: Annotated[str, typer.Option("--comment", "-c", help="Why: the ticket, the maintenance.")],
    duration: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long: 90m, 2h, 1h30m, 3600.")],
    site: Annotated[str | None, typer.Option("--site", "-s", help="Mute this site's alerts.")] = None,
    box: Annotated[str | None, typer.Option("--box", "-b", help="Mute this box's alerts.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Mute alerts of this kind only.")] = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Mute the alerts of a site, a box or a kind for a while (at least one of --site, --box, --kind)."""
    from rich.markup import escape

    from edgefleet.cli.output import console

    body = {"site": site, "box": box, "kind": kind, "duration": duration, "created_by": by, "comment": comment}
    added = call(api, "POST", "/api/v1/silences", body={k: v for k, v in body.items() if v is not None})
    console.print(escape(f"Added silence {added['id']} ({_matchers(added)}) until {added['ends_at']}"), highlight=False)


def silence_list(
    include_ended: Annotated[bool, typer.Option("--all", help="Also the silences that ended.")] = False,
    api: ApiOption = DEFAULT_API,
) -> None:
    """The active and pending silences, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from edgefleet.cli.output import console

    silences = call(api, "GET", "/api/v1/silences", params={"all": "true" if include_ended else None})
    table = Table(header_style="bold")
    for column in ("id", "matches", "state", "ends", "by", "comment"):
        table.add_column(column, no_wrap=column != "comment")
    for silence in silences:
        by = silence["created_by"]
        if silence["ended_by"]:
            by += f" (ended by {silence['ended_by']})"
        table.add_row(
            silence["id"],
            escape(_matchers(silence)),
            styled(silence["state"], SILENCE_STYLE),
            silence["ends_at"],
            escape(by),
            escape(silence["comment"]),
        )
    console.print(table)
    console.print(plural(len(silences), "silence"), highlight=False)


def silence_delete(
    silence: Annotated[
        str,
        typer.Argument(
            metavar="SILENCE", help="The silence id (or a unique start of it), as 'edgefleet silence list' shows it."
        ),
    ],
    by: Annotated[str | None, typer.Option("--by", help="Who ends it (your name).")] = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """End a silence now: the alerts it muted are told if they still fire."""
    from edgefleet.cli.output import console

    ended = call(api, "DELETE", f"/api/v1/silences/{quote(silence, safe='')}", params={"by": by})
    console.print(f"Ended silence {ended['id']} at {ended['ends_at']}", highlight=False)


# --- the API --------------------------------------------------------------------------------------------


def styled(word: str, styles: dict[str, str]) -> str:
    style = styles.get(word)
    return f"[{style}]{word}[/]" if style else word


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _matchers(silence: dict[str, Any]) -> str:
    parts = [f"{name}={silence[name]}" for name in ("site", "box", "kind") if silence.get(name)]
    return ", ".join(parts) or "-"
