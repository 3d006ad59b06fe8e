"""The typer application behind ``edgefleet`` (all subcommands but ``agent``)."""

from __future__ import annotations

import typer

from edgefleet import __version__
from edgefleet.errors import EdgefleetError, UnreachableError

app = typer.Typer(
    name="edgefleet",
    help="Fleet manager for KubeEdge edge sites and their GPU boxes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def _register() -> None:
    # Each module adds its commands to ``app``; they import their heavy dependencies lazily.
    from edgefleet.cli import (
        alerts,
        audit,
        broker,
        cloud,
        clusters,
        enrollment,
        fleet,
        releases,
        rollouts,
        sim,
        tokens,
        users,
    )

    if app.registered_groups:  # once per process: tests call ``run`` many times
        return

    app.add_typer(cloud.app, name="cloud", help="Run the cloud controller.")
    app.add_typer(sim.app, name="sim", help="Run the fleet simulator and inject faults.")
    app.add_typer(broker.pki_app, name="pki", help="The broker's TLS certificate authority and certificates.")
    app.add_typer(broker.broker_app, name="broker", help="The secured broker: configuration and box accounts.")
    fleet.register(app)
    clusters.register(app)
    alerts.register(app)
    releases.register(app)
    rollouts.register(app)
    tokens.register(app)
    users.register(app)
    enrollment.register(app)
    audit.register(app)
    app.command(
        "agent",
        help="Run the box agent (see 'edgefleet agent --help').",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_agent_placeholder)


def _agent_placeholder() -> None:  # pragma: no cover - main() dispatches 'agent' before typer runs
    raise typer.Exit(2)


def run(args: list[str]) -> int:
    from edgefleet.cli.output import fail

    _register()
    try:
        # With standalone_mode off, click returns the code of a ``typer.Exit`` raised in a command instead of
        # raising it; dropping it made every failed command exit 0.
        code = app(args, standalone_mode=False, prog_name="edgefleet")
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except UnreachableError as exc:
        try:
            fail(f"cannot reach the {exc.what} at {exc.where}", hint=exc.hint)
        except typer.Exit as inner:
            return int(inner.exit_code or 1)
    except EdgefleetError as exc:
        try:
            fail(str(exc))
        except typer.Exit as inner:
            return int(inner.exit_code or 1)
    except KeyboardInterrupt:
        return 130
    except typer.Abort:
        return 1
    except typer.TyperException as exc:
        # typer vendors its own click: its usage errors (exit 2) and file errors derive from TyperException,
        # not from the click package's ClickException, which let them escape as tracebacks.
        from edgefleet.cli.output import report_click_error

        return report_click_error(exc)
    return code if isinstance(code, int) else 0
