"""``edgefleet audit``: who changed what, when, from where, as the controller's audit log keeps it
(``GET /api/v1/audit``), newest first.

Filters narrow the log on the controller: ``--since 1h`` (or ``2d``, or an ISO time), ``--until``, ``--site``,
``--action``, ``--principal``, ``--target rollout:r-...``. A table shows the newest 100 unless ``--limit`` says
otherwise; ``-o json|yaml`` gives every entry asked for (page after page), ``-o wide`` adds before, after and source.
Site staff see their own sites' entries only: the API keeps the rest from them.

``edgefleet.cli.app`` calls ``register``. As in ``edgefleet.cli.fleet``: httpx and rich are imported inside the
command, and an error the API answers ends it with the API's own message and exit code 1.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, get_pages
from edgefleet.cli.output import OutputFormat, OutputOption

# A table shows the newest 100 entries unless --limit says otherwise; lists are read 1,000 at a time (the API's
# largest page).
TABLE_ROWS: Final = 100
PAGE: Final = 1000
# How far back --since reaches: 90m, 1h30m, 2d, 1w.
_AGO: Final = re.compile(r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def moment(text: str, *, option: str, now: datetime) -> str:
    """``text`` as an ISO time for the API: a time ago (``90m``, ``1h30m``, ``2d``, ``1w``) or an ISO time itself.
    Raises typer.BadParameter saying what is wrong."""
    given = text.strip()
    match = _AGO.match(given)
    if given and match is not None and any(match.groupdict().values()):
        parts = {k: int(v or 0) for k, v in match.groupdict().items()}
        ago = timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
        return (now - ago).astimezone(UTC).isoformat()
    try:
        return datetime.fromisoformat(given).isoformat()
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a time ago (90m, 1h30m, 2d, 1w) nor an ISO time (2026-12-01T08:00)",
            param_hint=option,
        ) from None


def audit(
    since: Annotated[
        str | None, typer.Option(help="Entries since this long ago (90m, 2d, 1w) or this ISO time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Entries before this long ago or this ISO time.")] = None,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Only this site's entries.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action: start-rollout, hold-site, acknowledge-alert, ...")
    ] = None,
    principal: Annotated[str | None, typer.Option(help="Only what this principal (token name, user) did.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Only the entries about this object: KIND:ID (rollout:r-...) or a KIND.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="At most this many, newest first (default: 100 in a table; every one with -o json|yaml)."),
    ] = None,
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """The audit log, newest first: who did what to what, when, from where, and the state before and after."""
    from edgefleet.cli.output import is_data, print_data, show

    now = datetime.now().astimezone()
    at_most = limit if limit is not None else None if is_data(output) else TABLE_ROWS
    params: dict[str, str | int | None] = {
        "since": None if since is None else moment(since, option="--since", now=now),
        "until": None if until is None else moment(until, option="--until", now=now),
        "site": site,
        "action": action,
        "principal": principal,
        "target": target,
        "limit": min(at_most, PAGE) if at_most is not None else PAGE,
    }
    entries, more = get_pages(api, "/api/v1/audit", params, at_most=at_most)
    if is_data(output):
        print_data(entries, output)
        return
    lines: list[Any] = [_table(entries, wide=output is OutputFormat.WIDE)] if entries else []
    if more:
        lines.append(f"older entries follow: --limit {2 * len(entries)}, --since, or -o json for every one")
    count = len(entries)
    lines.append(f"{count} {'entry' if count == 1 else 'entries'}" if entries else "no entry matches")
    show(*lines)


def _table(entries: list[dict[str, Any]], *, wide: bool) -> Any:
    from rich.markup import escape

    from edgefleet.cli.output import new_table

    extra = ["before", "after", "source"] if wide else []
    table = new_table("at", "principal", "action", "target", "site", "summary", *extra, wrap={"summary", *extra})
    for entry in entries:
        at = datetime.fromisoformat(entry["at"]).astimezone()
        who = entry["principal"] + (f" ({entry['role']})" if entry["role"] else "")
        target = entry["target"]
        table.add_row(
            at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(who),
            entry["action"],
            escape(f"{target['kind']} {target['id']}" if target else "-"),
            escape(entry["site"] or "-"),
            escape(entry["summary"]),
            *([escape(_state(entry["before"])), escape(_state(entry["after"])), escape(entry["source"] or "-")]
              if wide else []),
        )  # fmt: skip
    return table


def _state(value: Any) -> str:
    """A before or after as -o wide shows it: a string as itself, anything else as compact JSON."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
