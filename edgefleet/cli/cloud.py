"""``edgefleet cloud serve``: the controller (inventory, ingest, persister, alert loop) with its HTTP API under
uvicorn; ``edgefleet cloud migrate``: the database's schema upgraded to this release's, which ``serve`` also does
at start (``edgefleet.cloud.migrating``).

Everything that can fail for a reason a person must fix is done before the API listens, and reported in one
line (or, for the inventory and the notification file, one line per problem) with exit code 1: bad settings, a
listen port already taken, a bad inventory or notification file, a database that cannot be reached, that another
controller holds (``edgefleet.cloud.leading``) or whose schema a newer release upgraded (``edgefleet.cloud.migrating``).
``edgefleet cloud status``: who leads the controllers' database (role, leader, address, since, epoch) and the
health of the controller asked, from its /healthz.
``edgefleet.cli.app`` adds this app as ``cloud``.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

# The same --api and EDGEFLEET_API_URL as every other command that asks the API: this one alone read
# EDGEFLEET_API, so with the demo on another port it asked port 8000.
from edgefleet.cli.fleet import API_ENV, API_HINT, DEFAULT_API, ApiOption
from edgefleet.logs import configure_logging

if TYPE_CHECKING:
    from edgefleet.cloud.controller import Controller
    from edgefleet.cloud.settings import Settings

app = typer.Typer(help="Run the cloud controller.", no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Run the cloud controller."""


@app.command()
def status(api: ApiOption = DEFAULT_API) -> None:
    """Who leads the controllers' database (since when, which epoch, where) and this controller's health."""
    import httpx

    from edgefleet.cli.output import fail, show
    from edgefleet.errors import UnreachableError

    try:
        response = httpx.get(api.rstrip("/") + "/healthz", timeout=10.0)
        health = response.json()
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        fail(f"the API URL {api!r} is not an http:// or https:// URL", hint=f"e.g. --api {DEFAULT_API} (or {API_ENV})")
    except httpx.TransportError as exc:
        raise UnreachableError("controller API", api, API_HINT) from exc
    except ValueError:
        fail(f"{api} answered {response.status_code} with something that is not the edgefleet API")
    show(*status_lines(api, health))


def status_lines(api: str, health: dict[str, object]) -> list[str]:
    """``edgefleet cloud status``'s lines from a /healthz answer (pure: tests give it answers)."""
    from rich.markup import escape

    leadership = health.get("leadership")
    lines = []
    if isinstance(leadership, dict):
        lines.append(f"{escape(api)}: {leadership['role']} (epoch {leadership['epoch']})")
        if leadership.get("leader"):
            where = f" at {leadership['leader_address']}" if leadership.get("leader_address") else ""
            lines.append(f"leader: {escape(str(leadership['leader']))}{escape(where)}")
        else:
            lines.append("leader: nobody leads now (a takeover is under way)")
        if leadership.get("lease_expires_in_s") is not None:
            lines.append(f"lease: runs {leadership['lease_expires_in_s']} s more unless renewed")
    lines.append(
        f"health: {health.get('status')}, broker connected: {health.get('broker_connected')}, "
        f"database ok: {health.get('database_ok')}, hearing: {health.get('hearing')}, "
        f"boxes online: {health.get('boxes_online')}/{health.get('boxes_total')}"
    )
    problems = health.get("problems")
    if isinstance(problems, list):
        lines += [f"problem: {escape(str(p))}" for p in problems]
    return lines


# The attributes every LogRecord has; anything else on a record came from ``extra={...}`` and is shown.


@app.command()
def serve(
    listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT for the API \\[env EDGEFLEET_LISTEN, default 127.0.0.1:8000].", show_default=False
        ),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            help="mqtt://[USER[:PASSWORD]@]HOST:PORT of the broker \\[env EDGEFLEET_BROKER_URL].", show_default=False
        ),
    ] = None,
    broker_username: Annotated[
        str | None,
        typer.Option(help="The broker login's username \\[env EDGEFLEET_BROKER_USERNAME].", show_default=False),
    ] = None,
    # No --broker-password: a password on the command line is shown to every user by ps.
    broker_password_file: Annotated[
        Path | None,
        typer.Option(
            help="A file holding the broker password alone \\[env EDGEFLEET_BROKER_PASSWORD_FILE, or the password "
            "itself in EDGEFLEET_BROKER_PASSWORD]; wins over both variables.",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or postgresql://... \\[env EDGEFLEET_DATABASE_URL].", show_default=False),
    ] = None,
    sites: Annotated[
        Path | None,
        typer.Option(help="The inventory directory \\[env EDGEFLEET_SITES_DIR, default sites].", show_default=False),
    ] = None,
    notifications: Annotated[
        Path | None,
        typer.Option(
            help="The notification file: where alerts go \\[env EDGEFLEET_NOTIFICATIONS; none: alerts are not sent].",
            show_default=False,
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="The kubeconfig file with a context for each cluster of the inventory \\[env EDGEFLEET_KUBECONFIG, "
            "default ~/.kube/config; in a pod: the in-cluster configuration].",
            show_default=False,
        ),
    ] = None,
    registry_config: Annotated[
        Path | None,
        typer.Option(
            "--registry-config",
            help="The registry hosts directory (<dir>/<host>/hosts.toml) a rollout pins its images through "
            "\\[env EDGEFLEET_REGISTRY_CONFIG; none: images go out as the release gives them].",
            show_default=False,
        ),
    ] = None,
    broker_ca_file: Annotated[
        Path | None,
        typer.Option(
            help="With a mqtts:// broker: the CA to verify it with \\[env EDGEFLEET_BROKER_CA_FILE; default: the "
            "system's].",
            show_default=False,
        ),
    ] = None,
    broker_cert_file: Annotated[
        Path | None,
        typer.Option(
            help="The controller's TLS client certificate \\[env EDGEFLEET_BROKER_CERT_FILE].", show_default=False
        ),
    ] = None,
    broker_key_file: Annotated[
        Path | None,
        typer.Option(help="Its key \\[env EDGEFLEET_BROKER_KEY_FILE].", show_default=False),
    ] = None,
    leader_lease: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL replicas: how long the leader's lease runs from its last renewal, 2s to 60s; shorter "
            "takes over from a dead leader sooner, longer rides out database blips and load "
            "\\[env EDGEFLEET_LEADER_LEASE, default 6s; docs/operations.md].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the controller and serve its API until Ctrl-C or SIGTERM."""
    import os

    from rich.markup import escape

    from edgefleet.cli.output import fail
    from edgefleet.cloud.alerting.config import NotificationConfigError
    from edgefleet.cloud.leading import DatabaseHeldError
    from edgefleet.cloud.settings import Settings
    from edgefleet.errors import InventoryError

    try:
        settings = Settings.from_env(
            os.environ,
            listen=listen,
            broker_url=broker,
            broker_username=broker_username,
            broker_password_file=broker_password_file,
            database_url=database,
            sites_dir=sites,
            notifications_file=notifications,
            kubeconfig=kubeconfig,
            registry_config=registry_config,
            broker_ca_file=broker_ca_file,
            broker_cert_file=broker_cert_file,
            broker_key_file=broker_key_file,
            leader_lease_s=leader_lease,
        )
    except ValueError as exc:
        fail(escape(str(exc)), hint="see 'edgefleet cloud serve --help' for the settings and their variables")
    _configure_logging()
    sock = _bind(settings)
    try:
        from edgefleet.cloud.controller import Controller

        try:
            # Takes the database's lock, loads the whole inventory and opens the database: all refuse here, before
            # anything listens or connects to the broker.
            controller = Controller(settings)
        except InventoryError as exc:
            fail(escape(str(exc)), hint=f"fix the files in {settings.sites_dir}; 'edgefleet sites validate' rechecks")
        except NotificationConfigError as exc:
            fail(escape(str(exc)), hint="fix the notification file; docs/alerting.md describes its fields")
        except DatabaseHeldError as exc:
            fail(
                escape(str(exc)),
                hint="one controller per database: stop that controller first, or point this one at another database with --database",
            )
        try:
            controller.start()
            _run_api(settings, controller, sock)
        finally:
            controller.stop()
    finally:
        sock.close()


@app.command()
def migrate(
    database: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or postgresql://... \\[env EDGEFLEET_DATABASE_URL].", show_default=False),
    ] = None,
) -> None:
    """Upgrade the database's schema to this release's ('serve' does it too, at start)."""
    import os

    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.cloud.migrating import upgrade_schema
    from edgefleet.cloud.settings import ENV_DATABASE_URL, Settings
    from edgefleet.cloud.store import Store

    try:
        # Only the database's setting: a migration job needs no broker, inventory or listen address.
        only_database = {k: v for k, v in os.environ.items() if k == ENV_DATABASE_URL}
        settings = Settings.from_env(only_database, database_url=database)
    except ValueError as exc:
        fail(escape(str(exc)), hint="see 'edgefleet cloud migrate --help'")
    store = Store(settings.database_url)
    try:
        migrated = upgrade_schema(store)
    finally:
        store.close()
    if migrated.changed:
        show(f"Upgraded the schema of {escape(store.url_shown)} from {migrated.before or 'none'} to {migrated.after}.")
    else:
        show(f"The schema of {escape(store.url_shown)} is at {migrated.after} already.")


def _bind(settings: Settings) -> socket.socket:
    """The API's socket, bound now so that a taken port is reported before the controller starts."""
    from edgefleet.cli.output import fail

    where = settings.listen
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.listen_host, settings.listen_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"cannot listen on {where}: {exc.strerror}", hint="give an address of this machine with --listen")
    # ``proto`` comes from getaddrinfo (IPPROTO_TCP): asyncio sets TCP_NODELAY on accepted connections only
    # then; without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restart may bind while connections of the previous run linger in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"cannot listen on {where}: the port is already in use",
                hint=f"stop what listens there (ss -ltnp 'sport = :{settings.listen_port}') "
                "or choose another with --listen HOST:PORT",
            )
        fail(f"cannot listen on {where}: {exc.strerror}", hint="choose another address with --listen HOST:PORT")
    return sock


def _run_api(settings: Settings, controller: Controller, sock: socket.socket) -> None:
    import uvicorn

    from edgefleet.cloud.api import create_app, end_streams

    app = create_app(settings, controller=controller)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            end_streams(app)  # else an open console page would hold the shutdown (and the last save) forever
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        log_config=None,  # our handler (``_configure_logging``) formats uvicorn's records too
        lifespan="on",
    )
    # uvicorn re-raises SIGTERM once it has shut down; with the default handler that would end the process
    # before ``controller.stop()`` saves the last state. A handler of our own keeps the process alive for it.
    previous = signal.signal(signal.SIGTERM, _note_terminated)
    previous_hup = signal.signal(signal.SIGHUP, lambda signum, frame: _reload_in_background(controller))
    try:
        Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, previous_hup)


def _reload_in_background(controller: Controller) -> None:
    """SIGHUP: take the sites directory again, off the signal handler (it reads files and takes locks)."""
    threading.Thread(target=_reload, args=(controller,), name="edgefleet-inventory-reload", daemon=True).start()


def _reload(controller: Controller) -> None:
    from edgefleet.cloud.access.audit_log import Actor, inventory_reloaded
    from edgefleet.errors import InventoryError

    log = logging.getLogger(__name__)
    log.info("Received SIGHUP, reloading the inventory", extra={"sites_dir": str(controller.settings.sites_dir)})
    try:
        change = controller.reload_inventory()  # logs what it applied
        if not controller.leadership.leader:
            # A standby's reload is its own: the leader's reloads are what is audited, and what standbys follow
            # (``edgefleet.cloud.following``); its record would wait in memory for a lead it may never take.
            log.info("Reloaded the inventory on a standby; not audited", extra={"version": change.version})
            return
        # Audited as the API's reload is; whoever sent the signal is not known, only that it came to this process.
        actor = Actor("SIGHUP", None, f"signal to pid {os.getpid()} on {socket.gethostname()}")
        inventory = controller.state.inventory
        controller.audit_log.keep(
            inventory_reloaded(
                controller.clock.now(), actor, change, sites=len(inventory.sites), boxes=len(inventory.boxes)
            )
        )
    except InventoryError as exc:
        log.error(
            "Refused the inventory whole; the one in force stays",
            extra={"version": controller.inventory_version, "problems": [str(p) for p in exc.problems]},
        )
    except Exception as exc:  # a thread of our own: say it, never die silently
        log.error("Failed to reload the inventory", extra={"error": str(exc)}, exc_info=True)


def _note_terminated(signum: int, frame: FrameType | None) -> None:
    logging.getLogger(__name__).info("Received SIGTERM, stopping controller")


def _configure_logging() -> None:
    # APScheduler logs every run of the persister's flush (every 2 s) at INFO; alembic its plugins and each step of
    # a migration (the controller logs the upgrade in one line). Their warnings still show.
    configure_logging(logging.INFO, quiet={"apscheduler": logging.WARNING, "alembic": logging.WARNING})
