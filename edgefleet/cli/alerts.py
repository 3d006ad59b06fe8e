"""``edgefleet alerts`` (list, ``ack``) and ``edgefleet silence`` (``add``, ``list``, ``delete``): the alerts and
silences of a running controller, through its HTTP API.

``edgefleet alerts`` shows by default what needs a person: the firing alerts that are not muted, then one line per
reason for what it leaves out ("18 more muted (inhibited by site-unreachable sh-pudong): --all"), counted by the
API so that the lines are right however many there are. Tables show an alert's short id (the shortest unique
start of it, from the API); ``ack`` and ``silence delete`` take any unique start of an id. Lists take
``-o table|wide|json|yaml``.

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

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, ago, call, get_pages, plural
from edgefleet.cli.output import OutputFormat, OutputOption

STATE_STYLE: Final = {"firing": "bold red", "acknowledged": "yellow", "resolved": "green"}
SEVERITY_STYLE: Final = {"critical": "bold red", "warning": "yellow", "info": "dim"}
SILENCE_STYLE: Final = {"active": "green", "pending": "yellow", "expired": "dim"}
# Long summaries are cut in a terminal's table; -o wide, a pipe and GET /api/v1/alerts/ID show them whole.
SUMMARY_WIDTH: Final = 70
# A table shows the newest 100 alerts unless --limit or --all says otherwise; lists are read a page of the API's
# largest (1,000) at a time.
TABLE_ROWS: Final = 100
PAGE: Final = 1000


def register(app: typer.Typer) -> None:
    """Add ``alerts`` and ``silence`` to the ``edgefleet`` app."""
    alerts = typer.Typer(help="List alerts, or acknowledge one.", add_completion=False)
    alerts.callback(invoke_without_command=True)(alerts_list)
    alerts.command("ack")(alerts_ack)
    app.add_typer(alerts, name="alerts", help="List the alerts that need a person (--all: every one); 'ack' takes one.")
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
    every: Annotated[
        bool, typer.Option("--all", "-a", help="Every alert: muted, acknowledged and resolved ones too.")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            help="At most this many, newest first (default: 100 in a table; every one with --all or -o json|yaml)."
        ),
    ] = None,
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """The alerts that need a person, newest first: firing and not muted (with --state or --all: those asked)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgefleet.cli.output import is_data, print_data, show

    # What needs a person: firing and not muted. Acknowledged alerts have someone; muted ones are silenced
    # or follow from another alert (a site's box-lost alerts from its site-unreachable one).
    needs_person = not every and state is None
    # Scripts (-o json|yaml) and --all get every alert, page after page; a table stops at the first 100.
    at_most = limit if limit is not None else None if every or is_data(output) else TABLE_ROWS
    page = min(at_most, PAGE) if at_most is not None else PAGE
    params: dict[str, str | int | None] = {"state": state, "site": site, "kind": kind, "limit": page}
    if needs_person:
        params |= {"state": "firing", "muted": "false"}
    alerts, more = get_pages(api, "/api/v1/alerts", params, at_most=at_most)
    if is_data(output):
        print_data(alerts, output)
        return
    lines = [_alerts_table(alerts, wide=output is OutputFormat.WIDE)] if alerts else []
    if more:
        lines.append(f"more alerts follow: --limit {2 * len(alerts)}, or -o json for every one")
    if needs_person:
        counts = call(api, "GET", "/api/v1/alerts/counts", params={"site": site, "kind": kind})
        lines += [f"{plural(len(alerts), 'alert')} firing" if alerts else "nothing firing needs a person"]
        lines += hidden_lines(counts)
    else:
        firing = sum(a["state"] == "firing" for a in alerts)
        lines.append(f"{plural(len(alerts), 'alert')}, {firing} firing")
    show(*lines)


def hidden_lines(counts: list[dict[str, Any]]) -> list[str]:
    """What the default list leaves out, one line per reason, biggest first: "18 more muted (inhibited by
    site-unreachable sh-pudong): --all", "2 more acknowledged: --state acknowledged"."""
    from rich.markup import escape

    lines = []
    for count in counts:
        if count["state"] == "firing" and count["muted"]:
            why = f"{count['muted']} by {', '.join(count['muted_by'])}" if count["muted_by"] else count["muted"]
            lines.append(escape(f"{count['count']} more muted ({why}): --all"))
    acknowledged = sum(c["count"] for c in counts if c["state"] == "acknowledged")
    if acknowledged:
        lines.append(f"{acknowledged} more acknowledged: --state acknowledged")
    return lines


def _alerts_table(alerts: list[dict[str, Any]], *, wide: bool) -> Any:
    from rich.markup import escape

    from edgefleet.cli.output import is_terminal, new_table

    extra = ["muted by", "fired", "acknowledged by"] if wide else []
    table = new_table("id", "kind", "site", "box", "severity", "state", "since", *extra, "summary", wrap={"summary"})
    now = datetime.now().astimezone()
    cut = is_terminal() and not wide
    for alert in alerts:
        where = alert["box"] or "-"
        if alert["detail"]:
            where += f" {alert['detail']}"
        state_text = styled(alert["state"], STATE_STYLE)
        if alert["muted"]:
            state_text += f" ({alert['muted']})"
        table.add_row(
            alert["id"] if wide else alert["short_id"],
            alert["kind"],
            alert["site"],
            escape(where),
            styled(alert["severity"], SEVERITY_STYLE),
            state_text,
            ago((now - datetime.fromisoformat(alert["started_at"])).total_seconds()),
            *(
                [
                    escape(", ".join(alert["muted_by"]) or "-"),
                    alert["fired_at"],
                    escape(alert["acknowledged_by"] or "-"),
                ]
                if wide
                else []
            ),
            escape(_cut(alert["summary"], SUMMARY_WIDTH) if cut else alert["summary"]),
        )
    return table


def alerts_ack(
    alert: Annotated[
        str,
        typer.Argument(metavar="ALERT", help="The alert id (or a unique start of it), as 'edgefleet alerts' lists it."),
    ],
    api: ApiOption = DEFAULT_API,
) -> None:
    """Acknowledge a firing alert: it stays active and resolves by itself, but is no longer repeated. It is
    recorded as taken by whoever the token names."""
    from rich.markup import escape

    from edgefleet.cli.output import show

    acked = call(api, "POST", f"/api/v1/alerts/{quote(alert, safe='')}/ack", body={})
    show(
        escape(
            f"Acknowledged {acked['id']} ({acked['kind']} {acked['box'] or acked['site']}) as {acked['acknowledged_by']}"
        )
    )


def silence_add(
    comment: Annotated[str, typer.Option("--comment", "-c", help="Why: the ticket, the maintenance.")],
    duration: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long: 90m, 2h, 1h30m, 3600.")],
    site: Annotated[str | None, typer.Option("--site", "-s", help="Mute this site's alerts.")] = None,
    box: Annotated[str | None, typer.Option("--box", "-b", help="Mute this box's alerts.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Mute alerts of this kind only.")] = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Mute the alerts of a site, a box or a kind for a while (at least one of --site, --box, --kind)."""
    from rich.markup import escape

    from edgefleet.cli.output import show

    body = {"site": site, "box": box, "kind": kind, "duration": duration, "comment": comment}
    added = call(api, "POST", "/api/v1/silences", body={k: v for k, v in body.items() if v is not None})
    show(escape(f"Added silence {added['id']} ({_matchers(added)}) until {added['ends_at']}"))


def silence_list(
    include_ended: Annotated[bool, typer.Option("--all", "-a", help="Also the silences that ended.")] = False,
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """The active and pending silences, newest first."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    silences, _ = get_pages(api, "/api/v1/silences", {"all": "true" if include_ended else None, "limit": PAGE})
    if is_data(output):
        print_data(silences, output)
        return
    wide = output is OutputFormat.WIDE
    extra = ["starts", "planned end"] if wide else []
    table = new_table("id", "matches", "state", *extra, "ends", "by", "comment", wrap={"comment"})
    for silence in silences:
        by = silence["created_by"]
        if silence["ended_by"]:
            by += f" (ended by {silence['ended_by']})"
        table.add_row(
            silence["id"],
            escape(_matchers(silence)),
            styled(silence["state"], SILENCE_STYLE),
            *([silence["starts_at"], silence["planned_ends_at"]] if wide else []),
            silence["ends_at"],
            escape(by),
            escape(silence["comment"]),
        )
    show(table, plural(len(silences), "silence"))


def silence_delete(
    silence: Annotated[
        str,
        typer.Argument(
            metavar="SILENCE", help="The silence id (or a unique start of it), as 'edgefleet silence list' shows it."
        ),
    ],
    api: ApiOption = DEFAULT_API,
) -> None:
    """End a silence now: the alerts it muted are told if they still fire."""
    from edgefleet.cli.output import show

    ended = call(api, "DELETE", f"/api/v1/silences/{quote(silence, safe='')}")
    show(f"Ended silence {ended['id']} at {ended['ends_at']}")


# --- the API --------------------------------------------------------------------------------------------


def styled(word: str, styles: dict[str, str]) -> str:
    style = styles.get(word)
    return f"[{style}]{word}[/]" if style else word


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _matchers(silence: dict[str, Any]) -> str:
    parts = [f"{name}={silence[name]}" for name in ("site", "box", "kind") if silence.get(name)]
    return ", ".join(parts) or "-"
