"""``edgefleet sites``, ``edgefleet sites validate``, ``edgefleet boxes`` and ``edgefleet box``: the fleet as
readable tables, read from the controller's HTTP API; and the inventory check, which needs no controller.

Every list takes ``-o table|wide|json|yaml`` (``edgefleet.cli.output``). ``edgefleet.cli.app`` calls ``register``.
httpx and rich are imported inside the commands so that the
``edgefleet`` command starts fast. A controller that cannot be reached raises ``UnreachableError``, which
``edgefleet.cli.app`` prints as one line; an error the API answers (an unknown site, ...) is printed as the API
worded it, with exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn
from urllib.parse import quote

import typer

from edgefleet.cli.output import OutputFormat, OutputOption
from edgefleet.errors import UnreachableError

if TYPE_CHECKING:
    from rich.table import Table

API_ENV: Final = "EDGEFLEET_API_URL"
DEFAULT_API: Final = "http://127.0.0.1:8000"
API_HINT: Final = f"start it with 'edgefleet cloud serve' or set {API_ENV}"
# The API answers from memory within milliseconds; ten seconds of silence means it or the network is stuck.
TIMEOUT_S: Final = 10.0
# Where a list answer names its next page (``edgefleet.cloud.api.paging``; not imported: it pulls in FastAPI).
NEXT_CURSOR_HEADER: Final = "X-Next-Cursor"

HEALTH_STYLE: Final = {"ok": "green", "degraded": "yellow", "unreachable": "bold red", "unknown": "dim"}
STATE_STYLE: Final = {"online": "green", "offline": "bold red", "never-seen": "dim"}
NODE_STYLE: Final = {
    "ready": "green",
    "not-ready": "bold red",
    "unknown": "red",
    "missing": "red",
    "not-watched": "dim",
}
# A whole site row in colour on a terminal when the site is not fully ok, so that it stands out of 100.
SITE_ROW_STYLE: Final = {"degraded": "yellow", "unreachable": "bold red", "unknown": "magenta"}
APP_STYLE: Final = {
    "running": "green",
    "completed": "green",
    "pending": "yellow",
    "stopped": "dim",
    "failed": "bold red",
    "unknown": "dim",
}

ApiOption = Annotated[
    str, typer.Option("--api", envvar=API_ENV, help="The controller's API.", show_envvar=True, metavar="URL")
]


def register(app: typer.Typer) -> None:
    """Add the fleet commands to the ``edgefleet`` app."""
    sites = typer.Typer(help="List the sites, or check the inventory files.", add_completion=False)
    sites.callback(invoke_without_command=True)(sites_list)
    sites.command("validate")(sites_validate)
    sites.command("apply")(sites_apply)
    app.add_typer(
        sites,
        name="sites",
        help="List the sites with boxes online and health; 'validate' checks sites/, 'apply' puts it in force.",
    )
    app.command("boxes")(boxes_list)
    app.command("box")(box_show)


# --- commands -------------------------------------------------------------------------------------------


def sites_list(
    ctx: typer.Context,
    api: ApiOption = DEFAULT_API,
    health: Annotated[
        str | None, typer.Option(help="Only sites in this health: ok, degraded, unreachable, unknown.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Only sites of this region.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Every site with its boxes online out of total and its health; a site not fully ok in colour."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.text import Text

    from edgefleet.cli.output import is_data, is_terminal, new_table, print_data, show

    sites, _ = get_pages(api, "/api/v1/sites", {"health": health, "region": region})
    if is_data(output):
        print_data(sites, output)
        return
    wide = output is OutputFormat.WIDE
    columns = [
        "site",
        "name",
        "kind",
        "region",
        *(["timezone", "cluster"] if wide else []),
        "online",
        *(["nodes ready"] if wide else []),
        "health",
    ]
    table = new_table(*columns, right={"online", "nodes ready"})
    rows = [
        [
            site["id"],
            escape(site["display_name"]),
            site["kind"],
            escape(site["region"]),
            *([escape(site["timezone"]), site["cluster"]] if wide else []),
            f"{site['boxes_online']}/{site['boxes_total']}",
            *([_nodes_ready(site)] if wide else []),
            site["health"],
        ]
        for site in sites
    ]
    if is_terminal() and not wide:
        # One line per site however narrow the terminal: the display name gives way ("…"), the other columns
        # keep their full width. Piped or wide, nothing is cut.
        for i, column in enumerate(table.columns):
            if column.header == "name":
                column.overflow, column.min_width = "ellipsis", 12
            else:
                column.min_width = max([len(str(column.header)), *(Text.from_markup(row[i]).cell_len for row in rows)])
    for site, row in zip(sites, rows, strict=True):
        table.add_row(*row, style=SITE_ROW_STYLE.get(site["health"]))
    online = sum(s["boxes_online"] for s in sites)
    total = sum(s["boxes_total"] for s in sites)
    not_ok = sum(s["health"] != "ok" for s in sites)
    show(
        table, f"{plural(len(sites), 'site')}, {online}/{total} boxes online" + (f", {not_ok} not ok" if not_ok else "")
    )


def sites_validate(
    directory: Annotated[
        Path,
        typer.Argument(metavar="DIR", envvar="EDGEFLEET_SITES_DIR", help="The inventory directory.", show_default=True),
    ] = Path("sites"),
) -> None:
    """Check every site manifest in DIR without starting anything: every problem as file:line: field: reason."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.errors import InventoryError
    from edgefleet.inventory import load_inventory

    try:
        inventory = load_inventory(directory)
    except InventoryError as exc:
        fail(
            escape(str(exc)),
            hint="fix these and run 'edgefleet sites validate' again; docs/inventory.md has the fields",
        )
    show(
        f"{plural(len(inventory.sites), 'site')}, {plural(len(inventory.boxes), 'box')}, "
        f"{plural(len(inventory.clusters), 'cluster')}: OK"
    )


def sites_apply(
    directory: Annotated[
        Path,
        typer.Argument(envvar="EDGEFLEET_SITES_DIR", help="The inventory directory.", show_default=True),
    ] = Path("sites"),
    api: ApiOption = DEFAULT_API,
) -> None:
    """Put the inventory in DIR in force in the running controller, without a restart: checked here, then the
    controller reads its sites directory again and takes it whole or refuses it whole. DIR must be the directory
    the controller reads (or a copy of it): the controller checks it holds the same version."""
    from rich.markup import escape

    from edgefleet.cli.output import console, fail
    from edgefleet.errors import InventoryError
    from edgefleet.inventory import load_inventory

    try:
        inventory = load_inventory(directory)
    except InventoryError as exc:
        fail(escape(str(exc)), hint="nothing was applied; fix these and apply again (docs/inventory.md has the fields)")
    change = call(api, "POST", "/api/v1/inventory/reload", body={"expect_version": inventory.version})
    if not change["changed"]:
        console().print(f"Inventory {change['version']} is already in force: nothing changed", highlight=False)
        return
    parts = [
        f"+{plural(len(change['sites_added']), 'site')}" if change["sites_added"] else "",
        f"-{plural(len(change['sites_removed']), 'site')}" if change["sites_removed"] else "",
        f"+{plural(len(change['boxes_added']), 'box')}" if change["boxes_added"] else "",
        f"-{plural(len(change['boxes_removed']), 'box')}" if change["boxes_removed"] else "",
        f"{plural(len(change['boxes_moved']), 'box')} moved" if change["boxes_moved"] else "",
        f"{plural(len(change['adopted']), 'unknown box')} adopted" if change["adopted"] else "",
    ]
    done = ", ".join(p for p in parts if p) or "manifests changed, no site or box"
    console().print(
        f"Applied inventory {change['version']} (was {change['previous_version']}): "
        f"{plural(change['sites'], 'site')}, {plural(change['boxes'], 'box')} ({done})",
        highlight=False,
    )


def boxes_list(
    site: Annotated[str | None, typer.Option("--site", "-s", help="The site whose boxes to list.")] = None,
    state: Annotated[str | None, typer.Option(help="Only boxes in this state: online, offline, never-seen.")] = None,
    unknown: Annotated[
        bool, typer.Option("--unknown", help="List boxes that publish but are in no site manifest instead.")
    ] = False,
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """A site's boxes: agent state, Kubernetes node state, last seen, GPU temperature and utilisation, apps."""
    from edgefleet.cli.output import fail, is_data, print_data, show

    if unknown:
        found, _ = get_pages(api, "/api/v1/unknown-boxes")
        if is_data(output):
            print_data(found, output)
            return
        _print_unknown(found)
        return
    if site is None:
        fail(
            "say which boxes to list", hint="edgefleet boxes --site SITE (or --unknown); 'edgefleet sites' lists sites"
        )
    boxes, _ = get_pages(api, f"/api/v1/sites/{quote(site, safe='')}/boxes", {"state": state})
    if is_data(output):
        print_data(boxes, output)
        return
    online = sum(b["reachability"]["state"] == "online" for b in boxes)
    show(_boxes_table(boxes, wide=output is OutputFormat.WIDE), f"{plural(len(boxes), 'box')}, {online} online")


def box_show(
    box: Annotated[str, typer.Argument(metavar="BOX", help="The box id, e.g. sh-pudong-gpu-01.")],
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """One box in detail: reachability, Kubernetes node, host, GPUs, apps."""
    from rich.markup import escape
    from rich.table import Table

    from edgefleet.cli.output import is_data, print_data, show

    found = get_json(api, f"/api/v1/boxes/{quote(box, safe='')}")
    if is_data(output):
        print_data(found, output)
        return
    reach = found["reachability"]
    gpu = found["gpu"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("box", found["id"])
    facts.add_row("site", found["site"])
    # Models, versions and reasons are free text from manifests and boxes: never read as rich markup.
    facts.add_row("role", found["role"] + (f" ({escape(found['model'])})" if found["model"] else ""))
    if gpu:
        facts.add_row("gpu spec", escape(f"{gpu['count']} x {gpu['model']}, driver {gpu['driver_version']}"))
    facts.add_row("state", f"{_styled(reach['state'], STATE_STYLE)} ({escape(reach['reason'])})")
    node = found["node"]
    taints = ", ".join(f"{t['key']}:{t['effect']}" for t in node["taints"])
    facts.add_row(
        "node",
        f"{_styled(node['state'], NODE_STYLE)} ({escape(node['reason'])}), {escape(node['name'])} in cluster "
        f"{escape(node['cluster'])}" + (f", tainted {escape(taints)}" if taints else ""),
    )
    facts.add_row(
        "last seen", f"{ago(found['last_seen_age_s'])}" + (f" ({found['last_seen']})" if found["last_seen"] else "")
    )
    if found["boot"]:
        facts.add_row("agent", escape(f"{found['agent_version']}, boot {found['boot']}, heartbeat #{found['seq']}"))
    if found["clock_skew_s"] is not None:
        facts.add_row("clock skew", f"{found['clock_skew_s']:+.1f}s")
    latest = found["latest"]
    if latest:
        facts.add_row("host", escape(_host_line(latest["host"])))
    show(facts)
    if latest:
        _print_gpus(latest["gpu"])
        _print_apps(latest["apps"])
    show(f"{plural(len(found['history']), 'health point')} since {found['history_since']}")


# --- the API --------------------------------------------------------------------------------------------


def get_json(api: str, path: str, params: dict[str, str | None] | None = None) -> Any:
    """GET ``path`` of the API (see ``call``)."""
    return call(api, "GET", path, params=dict(params or {}))


def call(
    api: str,
    method: str,
    path: str,
    *,
    params: dict[str, str | int | None] | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """One request to the API; an API error ends the command with its message, no connection raises
    UnreachableError. Every API-backed command goes through here (or through ``get_pages``)."""
    return _request(api, method, path, params=params, body=body, headers=headers)[0]


def get_pages(
    api: str, path: str, params: dict[str, str | int | None] | None = None, *, at_most: int | None = None
) -> tuple[list[Any], bool]:
    """Every item of the API list ``path``, following its ``X-Next-Cursor`` pages (``at_most``: stop once that
    many are read), and whether more are left unread."""
    items: list[Any] = []
    query = dict(params or {})
    while True:
        page, next_cursor = _request(api, "GET", path, params=query)
        items += page
        if next_cursor is None:
            return items, False
        if at_most is not None and len(items) >= at_most:
            return items[:at_most], True
        query = {**query, "cursor": next_cursor}


def _request(
    api: str,
    method: str,
    path: str,
    *,
    params: dict[str, str | int | None] | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Any, str | None]:
    """The API's answer and the cursor of its next page (None: none follows)."""
    import httpx
    from rich.markup import escape

    from edgefleet.cli.output import fail
    from edgefleet.cli.tokens import bearer_token_and_source, refused_token_message

    query = {k: v for k, v in (params or {}).items() if v is not None}
    token, source = bearer_token_and_source()
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Bearer {token}")
    try:
        response = httpx.request(
            method, api.rstrip("/") + path, params=query, json=body, headers=sent, timeout=TIMEOUT_S
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        fail(f"the API URL {api!r} is not an http:// or https:// URL", hint=f"e.g. --api {DEFAULT_API} (or {API_ENV})")
    except httpx.TimeoutException as exc:
        raise UnreachableError(
            "controller API", api, f"no answer within {TIMEOUT_S:g} s; check the controller's log"
        ) from exc
    except httpx.TransportError as exc:
        raise UnreachableError("controller API", api, API_HINT) from exc
    try:
        answer = response.json()
    except ValueError:
        fail(
            f"{api} answered {response.status_code} with something that is not the edgefleet API",
            hint=f"check --api / {API_ENV}",
        )
    if response.status_code == 401:
        message, hint = refused_token_message(source, api)
        fail(escape(message), hint=escape(hint))
    if not response.is_success:
        _fail_as_answered(response.status_code, answer)
    return answer, response.headers.get(NEXT_CURSOR_HEADER)


def _fail_as_answered(status: int, body: Any) -> NoReturn:
    """End the command with the API's own error message (it says what to do). A 503 says which part of the
    controller is not ready, so its message stands alone."""
    from rich.markup import escape

    from edgefleet.cli.output import fail

    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if status >= 500 and status != 503:
        fail(escape(f"the controller API failed ({status}): {message or 'no reason given'}"))
    fail(escape(message or f"the controller API refused the request ({status})"))


# --- rendering ------------------------------------------------------------------------------------------


def ago(seconds: float | None) -> str:
    """How long ago, in the largest whole unit: "3s ago", "5m ago", "2h ago", "4d ago"; None is "never"."""
    if seconds is None:
        return "never"
    whole = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit} ago"
    return f"{whole}s ago"


def plural(count: int, noun: str) -> str:
    """ "1 box", "3 boxes", "2 sites"."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}es" if noun.endswith(("x", "s")) else f"{count} {noun}s"


def apps_summary(apps: dict[str, Any] | None) -> str:
    """ "3 running" or "2 running, 1 failed"; the source's error when there is one; "-" when unknown."""
    from rich.markup import escape

    if apps is None:
        return "-"
    if apps["error"]:
        return f"error: {escape(apps['error'])}"
    if not apps["apps"]:
        return "none"
    counts: dict[str, int] = {}
    for app in apps["apps"]:
        counts[app["state"]] = counts.get(app["state"], 0) + 1
    return ", ".join(f"{n} {_styled(state, APP_STYLE)}" for state, n in sorted(counts.items(), key=_running_first))


def _running_first(item: tuple[str, int]) -> tuple[bool, str]:
    return item[0] != "running", item[0]


def _nodes_ready(site: dict[str, Any]) -> str:
    """Ready nodes out of the site's boxes; "-" when the controller does not watch the site's cluster."""
    ready = site["nodes_ready"]
    return "-" if ready is None else f"{ready}/{site['boxes_total']}"


def _styled(word: str, styles: dict[str, str]) -> str:
    style = styles.get(word)
    return f"[{style}]{word}[/]" if style else word


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.0f}{unit}"


def _boxes_table(boxes: list[dict[str, Any]], *, wide: bool = False) -> Table:
    from rich.markup import escape

    from edgefleet.cli.output import new_table

    extra = ["reason", "node reason", "last heartbeat", "agent"] if wide else []
    table = new_table(
        "box",
        "role",
        "state",
        "node",
        *extra,
        "last seen",
        "gpu temp",
        "gpu util",
        "apps",
        right={"gpu temp", "gpu util"},
    )
    for box in boxes:
        latest = box["latest"]
        reach = box["reachability"]
        node = box["node"]
        table.add_row(
            box["id"],
            box["role"],
            _styled(reach["state"], STATE_STYLE),
            _styled(node["state"], NODE_STYLE),
            *(
                [
                    escape(reach["reason"]),
                    escape(node["reason"]),
                    box["last_seen"] or "-",
                    escape(box["agent_version"] or "-"),
                ]
                if wide
                else []
            ),
            ago(box["last_seen_age_s"]),
            _number(box["gpu_temperature_max_c"], "°C"),
            _number(box["gpu_utilization_avg_percent"], "%"),
            apps_summary(latest["apps"] if latest else None),
        )
    return table


def _host_line(host: dict[str, Any]) -> str:
    parts = []
    if host["cpu_percent"] is not None:
        parts.append(f"cpu {host['cpu_percent']:.0f}%")
    if host["load1"] is not None:
        parts.append(f"load {host['load1']:.2f}")
    if host["memory_total_bytes"] and host["memory_available_bytes"] is not None:
        used = 1 - host["memory_available_bytes"] / host["memory_total_bytes"]
        parts.append(f"memory {used:.0%} used of {host['memory_total_bytes'] / 2**30:.1f} GiB")
    if host["disk_total_bytes"] and host["disk_free_bytes"] is not None:
        used = 1 - host["disk_free_bytes"] / host["disk_total_bytes"]
        parts.append(f"disk {host['disk_path']} {used:.0%} used")
    return ", ".join(parts) or "no readings"


def _print_gpus(report: dict[str, Any]) -> None:
    from rich.markup import escape

    from edgefleet.cli.output import new_table, show

    if not report["available"]:
        show(escape(f"GPUs: none readable ({report['reason'] or 'no reason given'})"))
        return
    show(escape(f"GPUs, driver {report['driver_version'] or 'unknown'}:"))
    table = new_table(
        "gpu", "name", "temp", "util", "memory", "power", "throttled", right={"temp", "util", "memory", "power"}
    )
    for gpu in report["gpus"]:
        memory = (
            f"{gpu['memory_used_bytes'] / 2**30:.1f}/{gpu['memory_total_bytes'] / 2**30:.1f} GiB"
            if gpu["memory_used_bytes"] is not None and gpu["memory_total_bytes"]
            else "-"
        )
        table.add_row(
            str(gpu["index"]),
            escape(gpu["name"]),
            _number(gpu["temperature_c"], "°C"),
            _number(gpu["utilization_percent"], "%"),
            memory,
            _number(gpu["power_w"], " W"),
            escape(", ".join(gpu["throttle_reasons"])) or "-",
        )
    show(table)


def _print_apps(report: dict[str, Any]) -> None:
    from rich.markup import escape

    from edgefleet.cli.output import new_table, show

    if report["error"]:
        show(f"apps: cannot be read from {escape(report['source'])}: {escape(report['error'])}")
        return
    show(f"apps, from {escape(report['source'])}:")
    table = new_table("app", "version", "state", "detail", wrap={"detail"})
    for app in report["apps"]:
        table.add_row(
            escape(app["name"]), escape(app["version"]), _styled(app["state"], APP_STYLE), escape(app["detail"] or "-")
        )
    show(table)


def _print_unknown(unknown: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    from edgefleet.cli.output import new_table, show

    table = new_table("box", "claims site", "enrolled for", "first seen", "last seen", "messages", right={"messages"})
    for box in unknown:
        table.add_row(
            escape(box["box"]),
            escape(box["claimed_site"] or "-"),
            escape(box.get("enrolled_site") or "-"),
            box["first_seen"],
            box["last_seen"],
            str(box["messages"]),
        )
    hint = (
        "; adopt one by adding it to its site's manifest in sites/ ('enrolled for' is the site its token was of) "
        "and 'edgefleet sites apply', or switch it off"
    )
    show(table, plural(len(unknown), "unknown box") + (hint if unknown else ""))
