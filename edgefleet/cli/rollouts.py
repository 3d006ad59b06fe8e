"""``edgefleet rollout plan FILE``: what a rollout of a release would do over the fleet as it is now, before
anything runs: the canary and the waves, their sites and the hardware each covers, the sites held, offline or
already up to date, the blackouts in force or next at each site, the soak and the approvals.

The file is read here and sent as written to ``POST /api/v1/rollouts/plan``: the controller checks it with the
release loader against its own inventory (the live fleet's, which a local ``sites/`` may not match; ``edgefleet
releases validate`` checks a file against a local one) and plans it, so every problem comes back with its line
and field, and a refused release or plan ends the command with exit code 1. What the loader accepted but deserves
a look comes back as ``warning:`` lines on stderr, as with ``releases validate``.
Takes ``-o table|json|yaml`` (``wide`` adds each site's hardware). ``edgefleet.cli.app`` calls ``register``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.fleet import DEFAULT_API, ApiOption, call, plural
from edgefleet.cli.output import OutputFormat, OutputOption

STATE_STYLE = {"ready": "green", "held": "yellow", "offline": "bold red"}


def register(app: typer.Typer) -> None:
    rollout = typer.Typer(help="Staged rollouts of a release to the fleet.", add_completion=False, no_args_is_help=True)
    rollout.command("plan")(rollout_plan)
    app.add_typer(rollout, name="rollout", help="Staged rollouts: 'plan' shows the waves of a release before it runs.")


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
) -> None:
    """Show the waves a rollout of the release in FILE would take over the fleet now, and why a plan is refused."""
    from rich.markup import escape

    from edgefleet.cli.output import err_console, fail, is_data, new_table, print_data, show

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(escape(f"cannot read the release {str(file)!r}: {exc}"), hint="give the path of a release manifest")
    plan = call(api, "POST", "/api/v1/rollouts/plan", body={"release": text})
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
    ]
    tail = [
        f"held ({len(plan['held'])}): {', '.join(plan['held']) or '-'}",
        f"offline ({len(plan['offline'])}), deferred until they come back: {', '.join(plan['offline']) or '-'}",
        f"up to date ({len(plan['up_to_date'])}): {', '.join(plan['up_to_date']) or '-'}",
        *(f"left out: {s['site']}: {escape(s['reason'])}" for s in plan["left_out"]),
    ]
    show(*lines, waves, sites, *tail)
