"""``edgefleet rollout plan FILE``: what a rollout of a release would do over the fleet as it is now, before
anything runs: the canary and the waves, their sites and the hardware each covers, the sites held, offline or
already up to date, the blackouts in force or next at each site, the soak and the approvals.

The file is read here and sent as written to ``POST /api/v1/rollouts/plan``: the controller checks it with the
release loader against its own inventory (the live fleet's, which a local ``sites/`` may not match; ``edgefleet
releases validate`` checks a file against a local one) and plans it, so every problem comes back with its line
and field, and a refused release or plan ends the command with exit code 1. What the loader accepted but deserves
a look comes back as ``warning:`` lines on stderr, as with ``releases validate``.
Takes ``-o table|json|yaml`` (``wide`` adds each site's hardware); ``--show-manifests`` prints what the release
renders at each central site under its cluster's policy (docs/central-clusters.md), as YAML after the plan.
``edgefleet.cli.app`` calls ``register``.

``edgefleet rollout start FILE`` sends the file to ``POST /api/v1/rollouts`` with a fresh ``Idempotency-Key`` (or
the one given), so a retried command never starts two; ``status`` lists the rollouts, ``status ID`` shows one
(waves, sites per state, each site in flight with its gates' reasons), ``--watch`` redraws it every 2 s until it
ends (Ctrl-C stops watching, not the rollout); ``pause|resume|promote|abort|rollback ID`` give the release
manager's commands. ``start FILE --override-blackout REASON`` lets the rollout start sites inside their blackout
windows from the start; ``override-blackout ID --reason R`` does so for a rollout that runs (a blank reason is
refused before anything is sent). ``edgefleet site hold S --reason R`` and ``site release S`` hold a site out of
every rollout.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, call, get_pages, plural
from edgefleet.cli.output import OutputFormat, OutputOption

if TYPE_CHECKING:
    from rich.console import Group

STATE_STYLE = {"ready": "green", "held": "yellow", "offline": "bold red"}
SITE_STYLE: Final = {
    "passed": "green",
    "in-progress": "cyan",
    "soaking": "cyan",
    "pending": "dim",
    "deferred": "yellow",
    "held": "yellow",
    "blocked": "yellow",
    "failed": "bold red",
    "rolled-back": "magenta",
}
ENDED: Final = frozenset({"done", "aborted", "rolled-back"})
# How often --watch asks again: the reconciler ticks every 2 s.
WATCH_INTERVAL_S: Final = 2.0


def register(app: typer.Typer) -> None:
    rollout = typer.Typer(help="Staged rollouts of a release to the fleet.", add_completion=False, no_args_is_help=True)
    rollout.command("plan")(rollout_plan)
    rollout.command("start")(rollout_start)
    rollout.command("status")(rollout_status)
    for command in ("pause", "resume", "promote", "abort", "rollback"):
        rollout.command(command, help=_COMMAND_HELP[command])(_commander(command))
    rollout.command("override-blackout")(rollout_override_blackout)
    app.add_typer(
        rollout,
        name="rollout",
        help="Staged rollouts: 'plan' shows the waves of a release before it runs, 'start' runs it, 'status' follows.",
    )
    site = typer.Typer(help="Hold a site out of every rollout, or release it.", add_completion=False,
                       no_args_is_help=True)  # fmt: skip
    site.command("hold")(site_hold)
    site.command("release")(site_release)
    app.add_typer(site, name="site", help="Hold a site out of rollouts ('hold S --reason R'), or 'release' it.")


_COMMAND_HELP: Final = {
    "pause": "Pause the rollout: no site starts; sites in flight are still gated.",
    "resume": "Resume a paused rollout.",
    "promote": "Promote the wave that waits for a release manager's approval.",
    "abort": "Abort the rollout: stop, and revert every site it touched to its previous release.",
    "rollback": "Roll back every site the rollout changed to its previous release (also once it is done).",
}


def _read(file: Path) -> str:
    from rich.markup import escape

    from edgefleet.cli.output import fail

    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        # A mistyped version is the usual cause: name the files that are there, and the nearest one.
        fail(escape(f"no release file {file}"), hint=escape(_releases_near(file)))
    except IsADirectoryError:
        fail(escape(f"{file} is a directory, not a release file"), hint=escape(_releases_near(file / "x.yaml")))
    except (OSError, UnicodeDecodeError) as exc:
        fail(escape(f"cannot read the release {str(file)!r}: {exc}"), hint="give the path of a release manifest")


def _releases_near(file: Path) -> str:
    """ "did you mean releases/X.yaml? The release files in releases/: ..." for a path that is not there; a bare
    name given from the repository's root is looked for in its releases/ too."""
    import difflib

    folders = [file.parent]
    if file.parent.name != "releases" and (file.parent / "releases").is_dir():
        folders.insert(0, file.parent / "releases")
    found: dict[str, Path] = {}
    for folder in folders:
        try:
            for path in sorted(folder.iterdir()):
                if path.suffix in (".yaml", ".yml") and path.is_file():
                    found.setdefault(path.name, path)
        except OSError:
            continue
    if not found:
        return f"give the path of a release manifest (none in {file.parent}/)"
    near = difflib.get_close_matches(file.name, list(found), n=1, cutoff=0.6)
    mean = f"did you mean {found[near[0]]}? " if near else ""
    listed = folders[0]
    names = [name for name, path in found.items() if path.parent == listed]
    return f"{mean}the release files in {listed}/: {', '.join(names)}"


def _hardware(pairs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['gpu_model']} ({p['driver_version']})" for p in pairs) or "-"


def _window(window: dict[str, Any] | None) -> str:
    from rich.markup import escape

    if window is None:
        return "-"
    starts, ends = window["starts"], window["ends"]
    span = f"{starts[:16].replace('T', ' ')} to {ends[:16].replace('T', ' ')}{starts[19:]}"
    return escape(f"{window['reason']} ({window['window']}): {span}")


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def rollout_plan(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The release manifest, e.g. releases/x.yaml.")],
    api: ApiOption = DEFAULT_API,
    output: OutputOption = OutputFormat.TABLE,
    show_manifests: Annotated[
        bool,
        typer.Option(
            "--show-manifests",
            help="Also print what the release renders at each central site, under its cluster's policy (YAML).",
        ),
    ] = False,
) -> None:
    """Show the waves a rollout of the release in FILE would take over the fleet now, and why a plan is refused."""
    from rich.markup import escape

    from edgefleet.cli.output import err_console, is_data, new_table, print_data, show

    text = _read(file)
    plan = call(api, "POST", "/api/v1/rollouts/plan", body={"release": text, "manifests": show_manifests})
    err = err_console()
    for warning in plan["warnings"]:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if is_data(output):
        print_data(plan, output)
        return
    wide = output is OutputFormat.WIDE
    approval = set(plan["approval_before"])
    waves = new_table(
        "wave",
        "size",
        "sites",
        "held",
        "offline",
        "approval",
        "hardware",
        right={"sites", "held", "offline"},
        wrap={"hardware"},
    )
    for wave in plan["waves"]:
        waves.add_row(
            wave["name"],
            wave["size"],
            str(len(wave["sites"])),
            str(len(wave["held"])),
            str(len(wave["offline"])),
            "needed" if wave["number"] in approval else "-",
            escape(_hardware(wave["hardware"])),
        )
    sites = new_table(
        "site", "wave", "region", "state", *(["hardware"] if wide else []), "blackout now", "next blackout"
    )
    names = {w["number"]: w["name"] for w in plan["waves"]}
    for site in plan["sites"]:
        state = site["state"]
        sites.add_row(
            site["site"],
            names[site["wave"]],
            escape(site["region"]),
            f"[{STATE_STYLE[state]}]{state}[/]",
            *([escape(_hardware(site["hardware"]))] if wide else []),
            _window(site["blackout_now"]),
            _window(site["next_blackout"]),
        )
    lines = [
        f"Plan of {escape(plan['release'])}: {escape(plan['app'])} {escape(plan['version'])}, "
        f"{plural(len(plan['sites']), 'site')} to update in {plural(len(plan['waves']) - 1, 'wave')} after the canary",
        f"at most {plan['max_in_flight']} in flight, soak {_duration(plan['soak_s'])} per wave, "
        + (
            "approval before " + ", ".join(f"wave {n}" for n in plan["approval_before"])
            if plan["approval_before"]
            else "no approval needed"
        ),
        f"hardware of the fleet: {escape(_hardware(plan['fleet_hardware']))}",
        *(
            f"image {escape(i['container'])}: "
            + escape(i["pinned"] or f"{i['image']} ({'refused' if i['problem'] else 'not pinned'})")
            for i in plan.get("images", [])
        ),
    ]
    tail = [
        f"held ({len(plan['held'])}): {', '.join(plan['held']) or '-'}",
        f"offline ({len(plan['offline'])}), deferred until they come back: {', '.join(plan['offline']) or '-'}",
        f"up to date ({len(plan['up_to_date'])}): {', '.join(plan['up_to_date']) or '-'}",
        *(f"left out: {s['site']}: {escape(s['reason'])}" for s in plan["left_out"]),
    ]
    show(*lines, waves, sites, *tail)
    if show_manifests:
        _print_manifests(plan["manifests"])


def _print_manifests(rendered: list[dict[str, Any]]) -> None:
    """Each central site's manifests as one YAML stream, a comment naming the site before its objects; plain
    stdout, so it can be piped to kubectl diff."""
    import sys

    import yaml

    if not rendered:
        sys.stdout.write("# no central site in the plan: nothing rendered under a cluster policy\n")
    for site in rendered:
        sys.stdout.write(f"# {site['site']} (cluster {site['cluster']})\n")
        for obj in site["objects"]:
            sys.stdout.write("---\n" + yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


# --- start, status, commands ------------------------------------------------------------------------------


def rollout_start(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The release manifest, e.g. releases/x.yaml.")],
    api: ApiOption = DEFAULT_API,
    key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Send this key (a retry with it never starts a second rollout)."),
    ] = None,
    override_blackout: Annotated[
        str | None,
        typer.Option(
            "--override-blackout",
            metavar="REASON",
            help="Start sites inside their blackout windows too, for this reason (a ticket, the emergency).",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Start a rollout of the release in FILE; 'edgefleet rollout status ID --watch' follows it."""
    from edgefleet.cli.output import is_data, print_data, show

    body: dict[str, Any] = {"release": _read(file)}
    if override_blackout is not None:
        body["override_blackout"] = _override_reason(override_blackout, "--override-blackout")
    rollout = call(api, "POST", "/api/v1/rollouts", body=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})
    if is_data(output):
        print_data(rollout, output)
        return
    show(
        f"Started rollout [bold]{rollout['id']}[/] of {rollout['release']}: "
        f"{plural(sum(rollout['sites'].values()), 'site')} in {plural(len(rollout['waves']), 'wave')}",
        *_override_line(rollout),
        *(f"image {c}: {image}" for c, image in rollout.get("images", {}).items()),
        f"follow it with: edgefleet rollout status {rollout['id']} --watch",
    )


def _override_reason(reason: str, option: str) -> str:
    """The reason as given, or exit 1 saying what to give when it is blank."""
    from edgefleet.cli.output import fail

    if not reason.strip():
        fail(
            f"{option} needs a reason: the audit and the rollout's status show why its sites may start inside "
            "their blackout windows",
            hint=f"give one, e.g. {option} 'INC-4711: fix for the label printer crash'",
        )
    return reason


def _override_line(rollout: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    reason = rollout.get("blackout_override")
    return [f"blackout windows overridden: {escape(reason)}"] if reason else []


def rollout_override_blackout(
    rollout: Annotated[str, typer.Argument(metavar="ROLLOUT", help="The rollout's id.")],
    reason: Annotated[str, typer.Option(help="Why its sites may start inside their blackout windows.")],
    api: ApiOption = DEFAULT_API,
) -> None:
    """Let the rollout start its sites inside their blackout windows, for REASON (audited, shown in its status)."""
    from edgefleet.cli.output import show

    body: dict[str, Any] = {"reason": _override_reason(reason, "--reason")}
    answer = call(api, "POST", f"/api/v1/rollouts/{rollout}/override-blackout", body=body)
    show(
        f"override-blackout: rollout {answer['id']} may start sites inside their blackout windows "
        f"({answer['blackout_override']}); the controller acts on it within a tick"
    )


def rollout_status(
    rollout_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="A rollout; none: list them (with --watch: follow the active one)."),
    ] = None,
    api: ApiOption = DEFAULT_API,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every 2 s until the rollout ends.")] = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """The rollouts, or one with its waves, its sites per state and the gates of the sites in flight."""
    from edgefleet.cli.output import fail, is_data, new_table, print_data, show

    if rollout_id is None and watch:
        # Following "the" rollout: the one active now, when there is exactly one (one per app can be active).
        active = [r["id"] for r in get_pages(api, "/api/v1/rollouts")[0] if r["state"] not in ENDED]
        if len(active) != 1:
            fail(
                f"--watch follows one rollout, and {len(active) or 'none'} {'is' if len(active) < 2 else 'are'} active"
                + (f" ({', '.join(active)})" if active else ""),
                hint="give its id: edgefleet rollout status ID --watch",
            )
        rollout_id = active[0]
    if rollout_id is None:
        rollouts, _ = get_pages(api, "/api/v1/rollouts")
        if is_data(output):
            print_data(rollouts, output)
            return
        table = new_table("id", "release", "state", "sites", "started", "by", "reason", wrap={"reason"})
        for r in rollouts:
            table.add_row(
                r["id"], r["release"], r["state"], _counts(r["sites"]), r["created_at"][:19].replace("T", " "),
                r["created_by"], r["reason"],
            )  # fmt: skip
        show(table)
        return
    rollout = call(api, "GET", f"/api/v1/rollouts/{rollout_id}")
    if is_data(output):
        print_data(rollout, output)
        return
    if not watch:
        show(_view(rollout))
        return
    try:
        if sys.stdout.isatty():
            _watch_live(api, rollout)
        else:
            _watch_lines(api, rollout)
    except KeyboardInterrupt:
        show(f"stopped watching; rollout {rollout_id} goes on")


def _watch_live(api: str, rollout: dict[str, Any]) -> None:
    """On a terminal: one screen, redrawn in place."""
    from rich.live import Live

    from edgefleet.cli.output import console

    with Live(_view(rollout), console=console(), auto_refresh=False) as live:
        while rollout["state"] not in ENDED:
            _wait(WATCH_INTERVAL_S)
            rollout = call(api, "GET", f"/api/v1/rollouts/{rollout['id']}")
            live.update(_view(rollout), refresh=True)


def _watch_lines(api: str, rollout: dict[str, Any]) -> None:
    """Piped or redirected (a log, CI, 'tee'): rich's live screen prints nothing until it stops, so a rollout of an
    hour showed nothing for an hour. Instead: the whole view at once, a line each time the rollout's state or a
    wave's sites per state change (the gates' running figures change every tick and would flood the log), and the
    whole view again when it ends."""
    from edgefleet.cli.output import show

    show(_view(rollout))
    said = _progress_line(rollout)
    sys.stdout.flush()
    while rollout["state"] not in ENDED:
        _wait(WATCH_INTERVAL_S)
        rollout = call(api, "GET", f"/api/v1/rollouts/{rollout['id']}")
        line = _progress_line(rollout)
        if line != said:
            show(line)
            sys.stdout.flush()
            said = line
    show(_view(rollout))


def _progress_line(rollout: dict[str, Any]) -> str:
    """ "r-... running; canary: 4 soaking; wave 1: 9 pending; ..." """
    from rich.markup import escape

    waves = []
    for wave in rollout["waves"]:
        per_state: dict[str, int] = {}
        for site in wave["sites"]:
            per_state[site["state"]] = per_state.get(site["state"], 0) + 1
        counts = ", ".join(f"{n} {state}" for state, n in sorted(per_state.items())) or "no sites"
        waves.append(f"{wave['name']}: {counts}")
    reason = f" ({rollout['reason']})" if rollout["reason"] and rollout["reason"] != rollout["state"] else ""
    return escape(f"{rollout['id']} {rollout['state']}{reason}; " + "; ".join(waves))


def _wait(seconds: float) -> None:
    time.sleep(seconds)


def _counts(sites: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sites.items()) or "-"


def _view(rollout: dict[str, Any]) -> Group:
    """The rollout as a screen: its state, a line per wave with its sites per state, the sites in flight or
    stopped with their reasons and gates."""
    from rich.console import Group
    from rich.markup import escape

    from edgefleet.cli.output import new_table

    head = f"Rollout [bold]{rollout['id']}[/] of {escape(rollout['release'])}: [bold]{rollout['state']}[/]" + (
        f" ({escape(rollout['reason'])})" if rollout["reason"] else ""
    )
    waves = new_table("wave", "state", "approval", "sites", right={"sites"}, wrap={"sites"})
    detail = new_table("site", "wave", "state", "reason", "gates", wrap={"reason", "gates"})
    for wave in rollout["waves"]:
        per_state: dict[str, int] = {}
        for site in wave["sites"]:
            per_state[site["state"]] = per_state.get(site["state"], 0) + 1
            if site["state"] in ("pending", "passed") and not site["gates"]:
                continue
            style = SITE_STYLE.get(site["state"], "")
            gates = "; ".join(f"{g['name']} {g['verdict']}: {g['reason']}" for g in site["gates"]) or "-"
            detail.add_row(site["site"], wave["name"], f"[{style}]{site['state']}[/]", escape(site["reason"]),
                           escape(gates))  # fmt: skip
        counts = ", ".join(f"[{SITE_STYLE.get(s, '')}]{n} {s}[/]" for s, n in sorted(per_state.items()))
        waves.add_row(wave["name"], wave["state"], "needed" if wave["needs_approval"] else "-", counts)
    lines: list[Any] = [head, waves]
    if detail.row_count:
        lines.append(detail)
    if rollout["stopped_because"]:
        lines.append(f"stopped because: {escape(rollout['stopped_because'])}")
    lines.append(f"deferred (offline): {', '.join(rollout['deferred']) or '-'}")
    lines.append(f"held: {', '.join(rollout['held']) or '-'}")
    lines.append(f"blocked (in a blackout window): {', '.join(rollout['blocked']) or '-'}")
    lines.extend(_override_line(rollout))
    overridden = [s for w in rollout["waves"] for s in w["sites"] if s.get("blackout_override")]
    for site in overridden:
        lines.append(f"  {site['site']} started {escape(site['blackout_override'])}")
    return Group(*lines)


def _commander(command: str) -> Any:
    def run(
        rollout: Annotated[str, typer.Argument(metavar="ROLLOUT", help="The rollout's id.")],
        api: ApiOption = DEFAULT_API,
    ) -> None:
        from edgefleet.cli.output import show

        answer = call(api, "POST", f"/api/v1/rollouts/{rollout}/{command}", body={})
        show(f"{command}: rollout {answer['id']} is {answer['state']}; the controller acts on it within a tick")

    run.__doc__ = _COMMAND_HELP[command]
    run.__name__ = f"rollout_{command}"
    return run


def site_hold(
    site: Annotated[str, typer.Argument(metavar="SITE", help="The site to hold.")],
    reason: Annotated[str, typer.Option(help="Why (maintenance, a peak day): every rollout shows it.")],
    api: ApiOption = DEFAULT_API,
) -> None:
    """Hold SITE: every rollout skips it until it is released (a site already in flight is still gated)."""
    from edgefleet.cli.output import show

    body: dict[str, Any] = {"reason": reason}
    held = call(api, "POST", f"/api/v1/sites/{site}/hold", body=body)
    show(f"held {held['site']}: {held['reason']}")


def site_release(
    site: Annotated[str, typer.Argument(metavar="SITE", help="The site to release.")],
    api: ApiOption = DEFAULT_API,
) -> None:
    """Release SITE's hold: rollouts start it as soon as a slot is free."""
    from edgefleet.cli.output import show

    released = call(api, "DELETE", f"/api/v1/sites/{site}/hold")
    show(f"released {released['site']} (was held: {released['reason']})")
