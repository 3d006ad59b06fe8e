"""``edgefleet clusters``: every Kubernetes cluster of the inventory, healthy or not, as the controller's probe
last found it (reachable, latency, server version, last error), and each central cluster's policy, read from
``GET /api/v1/clusters``; ``edgefleet clusters audit C`` lists what in cluster C breaks its policy
(``GET /api/v1/clusters/C/audit``); ``edgefleet clusters gpus C`` shows C's GPUs per node and per namespace beside
what its agents report of them (``GET /api/v1/clusters/C/gpus``). ``edgefleet restart --cluster C`` restarts C's Deployments in batches through
``POST /api/v1/clusters/C/restart``, after a confirmation that names how many it touches, and follows it.

Takes ``-o table|wide|json|yaml`` like the other lists (``edgefleet.cli.output``); ``edgefleet.cli.app`` calls
``register``. Reaching the API goes through ``edgefleet.cli.fleet`` (one error handling for every command).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, call, get_json, get_pages, plural
from edgefleet.cli.output import OutputFormat, OutputOption

STATE_STYLE: Final = {"ok": "green", "unreachable": "bold red", "unknown": "dim"}
ROW_STYLE: Final = {"unreachable": "bold red", "unknown": "magenta"}
# ``clusters audit``'s exit status when the cluster breaks its policy: not an error (1), not a usage error (2).
FINDINGS_EXIT: Final = 3


RULE_STYLE: Final = {"off-ratio": "yellow", "no-anti-affinity": "yellow", "exclusive-host": "bold red"}


def register(app: typer.Typer) -> None:
    clusters = typer.Typer(help="List the clusters, or audit one against its policy.", add_completion=False)
    clusters.callback(invoke_without_command=True)(clusters_list)
    clusters.command("audit")(clusters_audit)
    clusters.command("gpus")(clusters_gpus)
    app.command("restart")(restart)
    app.add_typer(
        clusters,
        name="clusters",
        help="List the clusters with their health and policy; 'audit C' lists what in C breaks its policy; "
        "'gpus C' shows C's GPUs.",
    )


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


def clusters_list(ctx: typer.Context, api: ApiOption = DEFAULT_API, output: OutputOption = OutputFormat.TABLE) -> None:
    """Every cluster with its sites, whether the controller reaches its API server, latency, version and the
    last error; a cluster that is not ok in colour; then each cluster's policy."""
    if ctx.invoked_subcommand is not None:
        return
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
    policies = [
        f"\n[bold]{escape(c['name'])}[/] policy ({escape(c.get('timezone') or 'UTC')}):\n"
        + "\n".join(f"  {escape(line)}" for line in c["policy"])
        for c in clusters
        if c.get("policy")
    ]
    show(table, summary + (f", {unreachable} unreachable" if unreachable else ""), *policies)


def clusters_audit(
    cluster: Annotated[str, typer.Argument(help="The cluster to audit (as 'edgefleet clusters' names it).")],
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Every workload and pod in the cluster that breaks its policy: requests off the overcommit ratio, an app
    that does not avoid its anti-affinity group, a pod on an exclusive host while it is kept for others. Reads
    the cluster now; changes nothing. Exits 3 when something breaks the policy (for scripts)."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    audit = get_json(api, f"/api/v1/clusters/{cluster}/audit")
    findings = audit["findings"]
    if is_data(output):
        print_data(audit, output)
    elif not audit["has_policy"]:
        show(f"cluster {escape(cluster)} has no policy: nothing to break (spec.policy, docs/central-clusters.md)")
    else:
        table = new_table("namespace", "kind", "name", "rule", "why", wrap={"why"})
        for f in findings:
            table.add_row(
                escape(f["namespace"]),
                f["kind"],
                escape(f["name"]),
                f"[{RULE_STYLE.get(f['rule'], '')}]{f['rule']}[/]",
                escape(f["message"]),
            )
        summary = (
            f"{plural(len(findings), 'finding')} in {plural(audit['workloads'], 'workload')} and "
            f"{plural(audit['pods'], 'pod')} of {escape(cluster)}, at {audit['local_time']} cluster time"
        )
        show(*([table] if findings else []), summary)
    if findings:
        raise typer.Exit(FINDINGS_EXIT)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _gib(value: float) -> str:
    return f"{value / 2**30:.0f}"


def _agent_figures(node: dict[str, Any]) -> tuple[str, str, str]:
    """Utilisation (mean of the node's GPUs), temperature (hottest) and memory used/total of its agent's GPUs."""
    gpus = node["gpus"]
    if not gpus:
        why = node.get("agent_reason") or ("no box" if node.get("box") is None else "no heartbeat")
        return f"[dim]{why}[/]", "-", "-"
    utilization = _mean([g["utilization_percent"] for g in gpus if g.get("utilization_percent") is not None])
    temperatures = [g["temperature_c"] for g in gpus if g.get("temperature_c") is not None]
    used = [g["memory_used_bytes"] for g in gpus if g.get("memory_used_bytes") is not None]
    total = [g["memory_total_bytes"] for g in gpus if g.get("memory_total_bytes") is not None]
    return (
        "-" if utilization is None else f"{utilization:.0f}%",
        f"{max(temperatures):.0f} C" if temperatures else "-",
        f"{_gib(sum(used))}/{_gib(sum(total))} GiB" if used and total else "-",
    )


def clusters_gpus(
    cluster: Annotated[str, typer.Argument(help="The cluster (as 'edgefleet clusters' names it).")],
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """The cluster's GPUs: per node, allocatable and requested (from Kubernetes) beside the mean utilisation,
    hottest temperature and memory its agent last reported; then what each namespace requests."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    view = get_json(api, f"/api/v1/clusters/{cluster}/gpus")
    if is_data(output):
        print_data(view, output)
        return
    nodes = new_table(
        "node",
        "box",
        "allocatable",
        "requested",
        "gpus heard",
        "util",
        "temp",
        "memory",
        "heard at",
        right={"allocatable", "requested", "gpus heard", "util", "temp", "memory"},
    )
    for node in view["nodes"]:
        utilization, temperature, memory = _agent_figures(node)
        nodes.add_row(
            escape(node["node"]),
            escape(node.get("box") or "-"),
            str(node["allocatable"]),
            str(node["requested"]),
            str(len(node["gpus"])),
            utilization,
            temperature,
            memory,
            node.get("seen_at") or "never",
            style="yellow" if node["requested"] > node["allocatable"] else None,
        )
    namespaces = new_table("namespace", "requested", "pending", "pods", right={"requested", "pending", "pods"})
    for ns in view["namespaces"]:
        namespaces.add_row(escape(ns["namespace"]), str(ns["requested"]), str(ns["pending"]), str(ns["pods"]))
    summary = (
        f"{view['requested']} of {view['allocatable']} GPUs requested on {plural(len(view['nodes']), 'GPU node')} "
        f"of {escape(cluster)}, at {view['checked_at']}"
    )
    problems = [f"[yellow]{escape(p)}[/]" for p in view["problems"]]
    show(*([nodes] if view["nodes"] else []), *([namespaces] if view["namespaces"] else []), summary, *problems)


# How often ``restart`` asks how the restart goes: its steps take seconds to minutes each.
RESTART_POLL_S: Final = 1.0
STEP_WORDS: Final = {"restarting": "restarted", "rolled-out": "rolled out", "failed": "FAILED"}


def restart(
    cluster: Annotated[str, typer.Option("--cluster", help="The cluster whose Deployments to restart.")],
    namespace: Annotated[str | None, typer.Option(help="Only this namespace's Deployments.")] = None,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Only the Deployments this label selector matches.")
    ] = None,
    max_in_flight: Annotated[int, typer.Option(min=1, max=50, help="Deployments restarted at once.")] = 1,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")] = False,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Restart Deployments as 'kubectl rollout restart' does, in batches of at most --max-in-flight, each batch
    waited for until it has rolled out; stops at the first that does not roll out within its progress deadline (exit 1).
    Asks first, naming how many Deployments it touches."""
    import time

    from rich.markup import escape

    from edgefleet.cli.output import err_console, show

    path = f"/api/v1/clusters/{cluster}/restart"
    body: dict[str, Any] = {"namespace": namespace, "selector": selector, "max_in_flight": max_in_flight}
    planned = call(api, "POST", path, body={**body, "dry_run": True})
    count = len(planned["deployments"])
    where = (
        f"cluster {cluster}"
        + (f", namespace {namespace}" if namespace else "")
        + (f", selector {selector}" if selector else "")
    )
    if not count:
        show(f"no Deployment in {escape(where)}: nothing to restart")
        return
    if not yes and not typer.confirm(
        f"Restart {plural(count, 'Deployment')} in {where}, {max_in_flight} at a time?", default=False, err=True
    ):
        err_console().print("not restarted")
        raise typer.Exit(1)
    job = call(api, "POST", path, body={**body, "expect": count})
    show(f"restart {job['id']}: {plural(count, 'Deployment')} in {escape(where)}, {max_in_flight} at a time")
    shown = 0
    while True:
        for step in job["steps"][shown:]:
            show(f"  {escape(step['deployment'])}: {STEP_WORDS[step['state']]} - {escape(step['message'])}")
        shown = len(job["steps"])
        if job["state"] != "running":
            break
        time.sleep(RESTART_POLL_S)
        job = get_json(api, f"/api/v1/clusters/{cluster}/restarts/{job['id']}")
    rolled = sum(1 for s in job["steps"] if s["state"] == "rolled-out")
    if job["state"] == "done":
        show(f"done: {plural(rolled, 'Deployment')} restarted and rolled out")
        return
    err = err_console()
    err.print(
        f"[bold red]error:[/] the restart stopped at {escape(job['failed'] or '?')}: {escape(job['reason'] or '')}"
    )
    err.print(
        f"{rolled} rolled out; {plural(len(job['not_started']), 'Deployment')} not restarted: "
        + (escape(", ".join(job["not_started"])) or "-")
    )
    raise typer.Exit(1)
