"""``edgefleet sim ...``: run the fleet simulator, see what it plays, and inject faults through its control API.

``edgefleet.cli.app`` mounts ``app`` as ``sim``. ``run`` starts ``simulator.running``; every other command is a
small HTTP call to a running simulator (``EDGEFLEET_SIM_URL``). A simulator that cannot be reached raises
``UnreachableError``, which ``edgefleet.cli.app`` prints as one line; a request the simulator refuses (an
unknown box, a missing field) ends the command with the simulator's own message and exit code 1. httpx, rich
and the simulator are imported inside the commands so that ``edgefleet`` starts fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer

from edgefleet.cli.output import OutputFormat, OutputOption
from edgefleet.errors import UnreachableError
from edgefleet.logs import configure_logging

if TYPE_CHECKING:
    from rich.table import Table

SIM_URL_ENV: Final = "EDGEFLEET_SIM_URL"
DEFAULT_SIM_URL: Final = "http://127.0.0.1:8100"
SIM_HINT: Final = f"start it with 'edgefleet sim run' or set {SIM_URL_ENV}"
# The control API answers from memory within milliseconds; ten seconds of silence means it is stuck.
TIMEOUT_S: Final = 10.0

app = typer.Typer(help="Run the fleet simulator and inject faults.", no_args_is_help=True, add_completion=False)
fault_app = typer.Typer(help="Inject, list and clear faults of a running simulator.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

UrlOption = Annotated[
    str, typer.Option("--url", envvar=SIM_URL_ENV, show_envvar=True, metavar="URL", help="The simulator's control API.")
]
BoxOption = Annotated[str, typer.Option("--box", metavar="BOX", help="The box (its id, e.g. sh-pudong-gpu-03).")]
ForOption = Annotated[
    float | None, typer.Option("--for", metavar="SECONDS", help="How long it lasts; until cleared when left out.")
]


# --- run -----------------------------------------------------------------------------------------------------


@app.command("run")
def run_command(
    sites: Annotated[
        Path, typer.Option("--sites", envvar="EDGEFLEET_SITES_DIR", show_envvar=True, help="The site inventory.")
    ] = Path("sites"),
    broker: Annotated[
        str,
        typer.Option("--broker", envvar="EDGEFLEET_BROKER_URL", show_envvar=True, metavar="URL", help="MQTT broker."),
    ] = "mqtt://127.0.0.1:1883",
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            envvar="EDGEFLEET_SIM_LISTEN",
            show_envvar=True,
            metavar="HOST:PORT",
            help="Control API address.",
        ),
    ] = "127.0.0.1:8100",
    site: Annotated[
        list[str] | None, typer.Option("--site", metavar="SITE", help="Play only this site (repeatable).")
    ] = None,
    max_boxes_per_site: Annotated[
        int | None, typer.Option("--max-boxes-per-site", metavar="N", help="Play only the first N boxes of each site.")
    ] = None,
    interval_override: Annotated[
        float | None,
        typer.Option("--interval-override", metavar="SECONDS", help="Heartbeat interval for every box (tests, demos)."),
    ] = None,
    keepalive: Annotated[int, typer.Option("--keepalive", metavar="SECONDS", help="MQTT keepalive of each box.")] = 10,
    jitter: Annotated[
        float, typer.Option("--jitter", metavar="FRACTION", help="Vary each interval by +- this (0.2 = +-20%).")
    ] = 0.0,
    loss: Annotated[
        float, typer.Option("--loss", metavar="FRACTION", help="Drop this share of heartbeats (0.01 = 1%).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated readings, jitter and loss.")] = 0,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            envvar="EDGEFLEET_SIM_KUBECONFIG",
            show_envvar=True,
            metavar="PATH",
            help="Write the simulated clusters' kubeconfig here (overwritten; removed on stop)"
            " \\[default: $TMPDIR/edgefleet-sim-<control port>.kubeconfig].",
        ),
    ] = None,
    releases: Annotated[
        Path,
        typer.Option(
            "--releases",
            envvar="EDGEFLEET_RELEASES_DIR",
            show_envvar=True,
            metavar="DIR",
            help="Release files whose images the simulated registry serves, beside the seeded apps'.",
        ),
    ] = Path("releases"),
    registry_hosts: Annotated[
        Path | None,
        typer.Option(
            "--registry-hosts",
            envvar="EDGEFLEET_SIM_REGISTRY_HOSTS",
            show_envvar=True,
            metavar="DIR",
            help="Write the simulated registry's hosts directory here (<DIR>/<host>/hosts.toml; removed on stop)"
            " \\[default: $TMPDIR/edgefleet-sim-<control port>.registries]; point the controller at it with"
            " EDGEFLEET_REGISTRY_CONFIG.",
        ),
    ] = None,
    node_grace: Annotated[
        float,
        typer.Option(
            "--node-grace",
            metavar="SECONDS",
            help="Node-monitor grace period of the simulated clusters (tests, demos).",
        ),
    ] = 50.0,
    dingtalk_token: Annotated[
        str | None,
        typer.Option(
            envvar="EDGEFLEET_SIM_DINGTALK_TOKEN",
            show_envvar=True,
            hidden=True,
            help="The access token the simulated DingTalk robot accepts (any when unset).",
        ),
    ] = None,
    dingtalk_secret: Annotated[
        str | None,
        typer.Option(
            envvar="EDGEFLEET_SIM_DINGTALK_SECRET",
            show_envvar=True,
            hidden=True,
            help="The signing secret the simulated DingTalk robot checks (none when unset).",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar="EDGEFLEET_BROKER_CA_FILE",
            show_envvar=True,
            metavar="PATH",
            help="With a mqtts:// broker: the CA to verify it with \\[default: the system's trust store].",
        ),
    ] = None,
    cert_file: Annotated[
        Path | None,
        typer.Option(
            "--cert-file",
            envvar="EDGEFLEET_SIM_CERT_FILE",
            show_envvar=True,
            metavar="PATH",
            help="The TLS client certificate every simulated box presents, for a broker that requires one.",
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", envvar="EDGEFLEET_SIM_KEY_FILE", show_envvar=True, metavar="PATH", help="Its key."),
    ] = None,
    box_logins: Annotated[
        Path | None,
        typer.Option(
            "--box-logins",
            envvar="EDGEFLEET_SIM_BOX_LOGINS",
            show_envvar=True,
            metavar="FILE",
            help="Log each box in with its own account from this file (0600; 'edgefleet broker box add-all' writes it)"
            " instead of the broker URL's login.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every box's connects too.")] = False,
) -> None:
    """Play every box of the inventory as an agent over its own MQTT connection, and every cluster as a Kubernetes
    API server (kubeconfig path logged at start), until Ctrl-C."""
    from edgefleet.cli.output import fail
    from simulator.running import SimulatorError, SimulatorOptions, run

    _configure_logging(verbose)
    options = SimulatorOptions(
        sites_dir=sites,
        broker_url=broker,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        box_logins=box_logins,
        listen=listen,
        sites=tuple(site or ()),
        max_boxes_per_site=max_boxes_per_site,
        interval_override_s=interval_override,
        keepalive_s=keepalive,
        jitter=jitter,
        loss=loss,
        seed=seed,
        kubeconfig=kubeconfig,
        node_grace_s=node_grace,
        releases_dir=releases,
        registry_hosts=registry_hosts,
        dingtalk_token=dingtalk_token,
        dingtalk_secret=dingtalk_secret,
    )
    try:
        run(options)
    except SimulatorError as exc:
        fail(exc.message, hint=exc.hint)


def _configure_logging(verbose: bool) -> None:
    # 2,000 boxes log a line per connect and per loss; the simulator's own summaries say what matters.
    configure_logging(logging.INFO, quiet={} if verbose else {"edgefleet.agent": logging.WARNING})


# --- status --------------------------------------------------------------------------------------------------


@app.command("status")
def status_command(
    url: UrlOption = DEFAULT_SIM_URL,
    site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="One site and its boxes.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """What the simulator plays: boxes connected, stopped and cut off, heartbeats, and each site."""

    from edgefleet.cli.output import is_data, print_data, show

    if site is not None:
        found = _call(url, "GET", "/status", params={"site": site})
        if is_data(output):
            print_data(found, output)
            return
        show(
            f"site {found['site']}: {found['connected']}/{found['boxes']} boxes connected, "
            f"{found['stopped']} stopped{', network cut' if found['cut'] else ''}"
        )
        table = _table("box", "role", "connected", "stopped", "cut", "session", "seq", "buffered", "skew s")
        for row in found["box_list"]:
            table.add_row(
                row["box"],
                row["role"],
                _yes(row["connected"]),
                _yes(row["stopped"]),
                _yes(row["frozen"]),
                str(row["session"]),
                str(row["seq"]),
                str(row["buffered"]),
                f"{row['skew_s']:g}",
            )
        show(table)
        return
    found = _call(url, "GET", "/status")
    if is_data(output):
        print_data(found, output)
        return
    boxes, beats, process = found["boxes"], found["heartbeats"], found["process"]
    show(
        f"{boxes['connected']}/{boxes['total']} boxes connected to {found['broker']}, {boxes['stopped']} stopped, "
        f"{boxes['cut']} cut off; {found['faults_active']} fault(s) active",
    )
    show(
        f"heartbeats: {beats['sent']} sent, {beats['lost']} lost on purpose, {beats['malformed']} malformed; "
        f"process: {_maybe(process['cpu_percent'], '% CPU')}, {_mb(process['rss_bytes'])} resident, "
        f"{_maybe(process['open_fds'], ' open files')}",
    )
    table = _table("site", "boxes", "connected", "stopped", "cut", "heartbeats")
    for row in found["sites"]:
        table.add_row(
            row["site"],
            str(row["boxes"]),
            str(row["connected"]),
            str(row["stopped"]),
            _yes(row["cut"]),
            str(row["heartbeats_sent"]),
        )
    show(table)
    if found.get("clusters"):
        show(f"clusters (KUBECONFIG={found.get('kubeconfig')}):")
        clusters = _table("context", "role", "url", "nodes", "ready")
        for row in found["clusters"]:
            clusters.add_row(row["context"], row["role"], row["url"], str(row["nodes"]), str(row["ready"]))
        show(clusters)
    if found.get("registries"):
        show(f"registries (EDGEFLEET_REGISTRY_CONFIG={found.get('registry_hosts')}):")
        registries = _table("host", "url")
        for host, served_at in found["registries"].items():
            registries.add_row(host, served_at)
        show(registries)


# --- faults --------------------------------------------------------------------------------------------------


@fault_app.command("stop")
def fault_stop(box: BoxOption, seconds: ForOption = None, url: UrlOption = DEFAULT_SIM_URL) -> None:
    """The box stops heartbeating but stays connected (a hung agent): only the heartbeat timeout sees it."""
    _inject(url, {"kind": "stop", "box": box, "seconds": seconds})


@fault_app.command("drop")
def fault_drop(box: BoxOption, url: UrlOption = DEFAULT_SIM_URL) -> None:
    """Tear the box's TCP connection down (no DISCONNECT): the will goes out at once, the box reconnects."""
    _inject(url, {"kind": "drop", "box": box})


@fault_app.command("cut")
def fault_cut(
    site: Annotated[str, typer.Option("--site", metavar="SITE", help="The site whose WAN is cut.")],
    seconds: Annotated[float, typer.Option("--for", metavar="SECONDS", help="How long the cut lasts.")],
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Cut a site's network: its boxes go silent (wills after ~1.5 x keepalive) and reconnect afterwards."""
    _inject(url, {"kind": "cut", "site": site, "seconds": seconds})


@fault_app.command("overheat")
def fault_overheat(
    box: BoxOption,
    gpu: Annotated[int, typer.Option("--gpu", metavar="INDEX", help="Which GPU of the box.")] = 0,
    temperature: Annotated[
        float, typer.Option("--temperature", metavar="CELSIUS", help="The temperature it reports.")
    ] = 95.0,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Hold one GPU of the box at a temperature (with the thermal throttle reasons NVML would show)."""
    _inject(url, {"kind": "overheat", "box": box, "gpu": gpu, "temperature_c": temperature, "seconds": seconds})


@fault_app.command("skew")
def fault_skew(
    box: BoxOption,
    by: Annotated[
        float, typer.Option("--by", metavar="SECONDS", help="Seconds the box's clock is ahead (negative: behind).")
    ],
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Shift the box's clock: its heartbeats' sent_at is off by that much."""
    _inject(url, {"kind": "skew", "box": box, "offset_s": by, "seconds": seconds})


@fault_app.command("malformed")
def fault_malformed(
    box: BoxOption,
    count: Annotated[int, typer.Option("--count", metavar="N", help="How many of its next heartbeats.")] = 1,
    variant: Annotated[
        str,
        typer.Option("--variant", help="random-bytes, wrong-shape, wrong-schema, other-box, or mixed (each in turn)."),
    ] = "mixed",
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Send the box's next heartbeats as invalid payloads on its own topic."""
    _inject(url, {"kind": "malformed", "box": box, "count": count, "variant": variant})


ClusterOption = Annotated[
    str, typer.Option("--cluster", metavar="CLUSTER", help="The cluster (its Cluster manifest's name).")
]


@fault_app.command("edgecore")
def fault_edgecore(
    box: Annotated[str | None, typer.Option("--box", metavar="BOX", help="The box whose edgecore stops.")] = None,
    site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="Every box of this site.")] = None,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Stop edgecore on a box (or a site's boxes): its node goes NotReady after the grace period, its agent stays
    online - the case edge-node-lost alerts on."""
    _inject(url, {"kind": "edgecore", "box": box, "site": site, "seconds": seconds})


@fault_app.command("api-errors")
def fault_api_errors(
    cluster: ClusterOption,
    rate: Annotated[
        float, typer.Option("--rate", metavar="SHARE", help="Share of requests that fail, more than 0, at most 1.")
    ],
    errors: Annotated[
        str | None,
        typer.Option("--errors", metavar="LIST", help="Comma-separated: 409, 429, 500, 503, timeout (default: all)."),
    ] = None,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Make a cluster's API server fail a share of requests (429 with Retry-After; a timeout holds 60 s, then 504)."""
    _inject(url, {"kind": "api-errors", "cluster": cluster, "rate": rate, "errors": errors, "seconds": seconds})


@fault_app.command("api-down")
def fault_api_down(cluster: ClusterOption, seconds: ForOption = None, url: UrlOption = DEFAULT_SIM_URL) -> None:
    """Stop a cluster's API server (connections refused); it serves again on the same port when the fault ends."""
    _inject(url, {"kind": "api-down", "cluster": cluster, "seconds": seconds})


@fault_app.command("crash-loop")
def fault_crash_loop(
    version: Annotated[str, typer.Option("--version", metavar="TAG", help="The image tag whose containers crash.")],
    app: Annotated[
        str | None, typer.Option("--app", metavar="APP", help="Only this image name (e.g. sorting-recognition).")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="Only at this site.")] = None,
    gpu_model: Annotated[
        str | None, typer.Option("--gpu-model", metavar="MODEL", help="Only on boxes with this GPU model.")
    ] = None,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Make containers of one image version crash (CrashLoopBackOff) at a site or on a GPU model."""
    _inject(
        url,
        {
            "kind": "crash-loop",
            "version": version,
            "app": app,
            "site": site,
            "gpu_model": gpu_model,
            "seconds": seconds,
        },
    )


@fault_app.command("slow")
def fault_slow(
    version: Annotated[str, typer.Option("--version", metavar="TAG", help="The app version that runs slower.")],
    app: Annotated[
        str | None, typer.Option("--app", metavar="APP", help="Only this app (e.g. sorting-recognition).")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="Only at this site.")] = None,
    gpu_model: Annotated[
        str | None, typer.Option("--gpu-model", metavar="MODEL", help="Only on boxes with this GPU model.")
    ] = None,
    by: Annotated[
        float | None,
        typer.Option("--by", metavar="PERCENT", help="How much worse its figures are (default 30)."),
    ] = None,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Make one app version's health figures worse (fps lower; latency, upload backlog, error rate higher)."""
    _inject(
        url,
        {
            "kind": "slow",
            "version": version,
            "app": app,
            "site": site,
            "gpu_model": gpu_model,
            "by": by,
            "seconds": seconds,
        },
    )


@fault_app.command("pull")
def fault_pull(
    site: Annotated[str, typer.Option("--site", metavar="SITE", help="The site whose image pulls are troubled.")],
    mode: Annotated[str, typer.Option("--mode", help="slow (each pull takes --delay) or fail (ErrImagePull).")],
    delay: Annotated[
        float | None, typer.Option("--delay", metavar="SECONDS", help="How long a slow pull takes (default 60).")
    ] = None,
    seconds: ForOption = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """Make image pulls at a site slow or failing."""
    _inject(url, {"kind": "pull", "site": site, "mode": mode, "delay_s": delay, "seconds": seconds})


@app.command("inbox")
def inbox_command(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing messages as they come.")] = False,
    url: UrlOption = DEFAULT_SIM_URL,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """What the simulator's DingTalk robot and webhooks received: the demo's alerts and rollout news."""
    import time

    from edgefleet.cli.output import is_data, print_data, show

    since = 0
    while True:
        messages = _call(url, "GET", "/receivers/messages", params={"since": since})["messages"]
        if is_data(output):
            if messages or not follow:
                print_data(messages, output)
        elif messages:
            for message in messages:
                show(_inbox_entry(message))
        elif not follow and since == 0:
            show("nothing received yet")
        if not follow:
            return
        since = messages[-1]["number"] if messages else since
        time.sleep(1.0)


def _inbox_entry(message: dict[str, Any]) -> str:
    """One received message as a person reads it: receiver, time, and the text DingTalk would show."""
    from datetime import datetime

    from rich.markup import escape

    at = datetime.fromtimestamp(message["received_at"]).strftime("%H:%M:%S")
    body = message["body"]
    if message["kind"] == "dingtalk" and isinstance(body, dict):
        content = body.get(body.get("msgtype", ""), {})
        text = content.get("text") or content.get("content") or content.get("title") or ""
        title = content.get("title")
        head = f"[bold]#{message['number']} {at} dingtalk/{escape(message['receiver'])}[/]"
        return "\n".join([head, *([escape(title)] if title and title not in text else []), escape(str(text)), ""])
    import json

    head = f"[bold]#{message['number']} {at} webhook/{escape(message['receiver'])}[/]"
    return f"{head}\n{escape(json.dumps(body, ensure_ascii=False, indent=1)[:4000])}\n"


@fault_app.command("list")
def fault_list(url: UrlOption = DEFAULT_SIM_URL, output: OutputOption = OutputFormat.TABLE) -> None:
    """The active faults."""
    from edgefleet.cli.output import is_data, print_data, show

    faults = _call(url, "GET", "/faults")["faults"]
    if is_data(output):
        print_data(faults, output)
        return
    if not faults:
        show("no active faults")
        return
    table = _table("id", "kind", "site", "box", "left", "details")
    for fault in faults:
        left = "until cleared" if fault["remaining_s"] is None else f"{fault['remaining_s']:g} s"
        table.add_row(
            fault["id"], fault["kind"], fault["site"] or "-", fault["box"] or "-", left, _details(fault) or "-"
        )
    show(table)


@fault_app.command("clear")
def fault_clear(
    fault_id: Annotated[str | None, typer.Option("--id", metavar="ID", help="One fault, by its id.")] = None,
    box: Annotated[str | None, typer.Option("--box", metavar="BOX", help="Every fault of this box.")] = None,
    site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="Every fault at this site.")] = None,
    url: UrlOption = DEFAULT_SIM_URL,
) -> None:
    """End faults now: one by id, a box's, a site's, or (no option) all of them."""
    from edgefleet.cli.output import fail, show

    if fault_id is not None and (box is not None or site is not None):
        fail("--id names one fault; leave out --box and --site with it")
    if fault_id is not None:
        cleared = _call(url, "DELETE", f"/faults/{fault_id}")["cleared"]
    else:
        cleared = _call(url, "DELETE", "/faults", params={"box": box, "site": site})["cleared"]
    ids = ", ".join(f["id"] for f in cleared)
    show(f"cleared {len(cleared)} fault(s){': ' + ids if ids else ''}")


def _inject(url: str, body: dict[str, Any]) -> None:
    from edgefleet.cli.output import show

    fault = _call(url, "POST", "/faults", json={k: v for k, v in body.items() if v is not None})
    target = fault["box"] or (f"site {fault['site']}" if fault["site"] else f"cluster {fault.get('cluster')}")
    if fault["kind"] in ("crash-loop", "slow") and not fault["site"]:
        target = f"GPU model {fault['gpu_model']}" if fault["gpu_model"] else "everywhere"
    until = "until cleared" if fault["remaining_s"] is None else f"for {fault['remaining_s']:g} s"
    if fault["kind"] == "drop":
        until = "(it reconnects by itself)"
    elif fault["kind"] == "malformed":
        until = f"for its next {fault['payloads_left']} heartbeat(s) ({fault['variant']})"
    show(f"injected {fault['id']}: {fault['kind']} {target} {until}")


# --- the control API ------------------------------------------------------------------------------------------


def _call(url: str, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
    """One request to the simulator; its errors end the command with its message, no connection raises
    UnreachableError."""
    import httpx

    from edgefleet.cli.output import fail

    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.request(method, url.rstrip("/") + path, params=query, json=json, timeout=TIMEOUT_S)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        fail(
            f"the simulator URL {url!r} is not an http:// URL", hint=f"e.g. --url {DEFAULT_SIM_URL} (or {SIM_URL_ENV})"
        )
    except httpx.TimeoutException as exc:
        raise UnreachableError(
            "simulator", url, f"no answer within {TIMEOUT_S:g} s; check the simulator's log"
        ) from exc
    except httpx.TransportError as exc:
        raise UnreachableError("simulator", url, SIM_HINT) from exc
    try:
        body = response.json()
    except ValueError:
        fail(
            f"{url} answered {response.status_code} with something that is not the simulator's API",
            hint=f"check {SIM_URL_ENV}",
        )
    if not response.is_success:
        _fail_as_answered(response.status_code, body)
    return body


def _fail_as_answered(status: int, body: Any) -> NoReturn:
    from rich.markup import escape

    from edgefleet.cli.output import fail

    message = body.get("error") if isinstance(body, dict) else None
    fail(escape(str(message or f"the simulator refused the request ({status})")))


# --- rendering -------------------------------------------------------------------------------------------------


def _table(*columns: str) -> Table:
    from edgefleet.cli.output import new_table

    return new_table(*columns)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _maybe(value: Any, unit: str) -> str:
    return "?" + unit if value is None else f"{value}{unit}"


def _mb(value: int | None) -> str:
    return "? MB" if value is None else f"{value / 1e6:.0f} MB"


def _details(fault: dict[str, Any]) -> str:
    if fault["kind"] == "overheat":
        return f"GPU {fault['gpu']} at {fault['temperature_c']:g} C"
    if fault["kind"] == "skew":
        return f"clock {fault['offset_s']:+g} s"
    if fault["kind"] == "malformed":
        return f"{fault['payloads_left']} left, {fault['variant']}"
    if fault["kind"] == "api-errors":
        return f"cluster {fault['cluster']}: {fault['rate']:.0%} fail with {', '.join(fault['errors'])}"
    if fault["kind"] == "api-down":
        return f"cluster {fault['cluster']}"
    if fault["kind"] == "crash-loop":
        where = [w for w in (fault["app"], fault["gpu_model"] and f"on {fault['gpu_model']}") if w]
        return " ".join([f"version {fault['version']}", *where])
    if fault["kind"] == "slow":
        where = [w for w in (fault["app"], fault["gpu_model"] and f"on {fault['gpu_model']}") if w]
        return " ".join([f"version {fault['version']}", *where, f"{fault['by']:g}% worse"])
    if fault["kind"] == "pull":
        return "pulls fail" if fault["mode"] == "fail" else f"pulls take {fault['delay_s']:g} s"
    return ""
