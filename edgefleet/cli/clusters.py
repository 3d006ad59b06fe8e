"""``edgefleet clusters``: every Kubernetes cluster of the inventory, healthy or not, as the controller's probe
last found it (reachable, latency, server version, last error), read from ``GET /api/v1/clusters``.

Takes ``-o table|wide|json|yaml`` like the other lists (``edgefleet.cli.output``); ``edgefleet.cli.app`` calls
``register``. Reaching the API goes through ``edgefleet.cli.fleet`` (one error handling for every command).
"""

from __future__ import annotations

from typing import Any, Final

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, get_pages, plural
from edgefleet.cli.output import OutputFormat, OutputOption

STATE_STYLE: Final = {"ok": "green", "unreachable": "bold red", "unknown": "dim"}
ROW_STYLE: Final = {"unreachable": "bold red", "unknown": "magenta"}


def register(app: typer.Typer) -> None:
    app.command("clusters")(clusters_list)


def cluster_state(cluster: dict[str, Any]) -> str:
    """ok (the last probe reached it), unreachable (it did not), unknown (not probed yet)."""
    reachable = cluster.get("reachable")
    return "unknown" if reachable is None else "ok" if reachable else "unreachable"


def _last_error(cluster: dict[str, Any], state: str) -> str:
    """The last error; dimmed, with its time, once the cluster is reachable again (kept so ops see what happened)."""
    from rich.markup import escape

    error = cluster.get("last_error")
    if not error:
        return "-"
    if state == "ok":
        return f"[dim]recovered; at {cluster.get('last_error_at') or '?'}: {escape(error)}[/]"
    return escape(error)


def clusters_list(api: ApiOption = DEFAULT_API, output: OutputOption = OutputFormat.TABLE) -> None:
    """Every cluster with its sites, whether the controller reaches its API server, latency, version and the
    last error; a cluster that is not ok in colour."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, show

    clusters, _ = get_pages(api, "/api/v1/clusters")
    if is_data(output):
        from edgefleet.cli.output import print_data

        print_data(clusters, output)
        return
    wide = output is OutputFormat.WIDE
    columns = [
        "cluster",
        "role",
        "region",
        "sites",
        "state",
        "latency",
        "version",
        *(["context", "checked at"] if wide else []),
        "last error",
    ]
    table = new_table(*columns, right={"sites", "latency"}, wrap={"last error"})
    for cluster in clusters:
        state = cluster_state(cluster)
        latency = cluster.get("latency_ms")
        table.add_row(
            cluster["name"],
            cluster["role"],
            escape(cluster["region"]),
            str(len(cluster["sites"])),
            f"[{STATE_STYLE[state]}]{state}[/]",
            "-" if latency is None else f"{latency:.0f} ms",
            escape(cluster.get("version") or "-"),
            *([escape(cluster["context"]), cluster.get("checked_at") or "never"] if wide else []),
            _last_error(cluster, state),
            style=ROW_STYLE.get(state),
        )
    reached = sum(cluster_state(c) == "ok" for c in clusters)
    unreachable = sum(cluster_state(c) == "unreachable" for c in clusters)
    summary = f"{plural(len(clusters), 'cluster')}, {reached} reachable"
    show(table, summary + (f", {unreachable} unreachable" if unreachable else ""))
