"""``edgefleet agent run|sample``: the box agent's command line (argparse, plain-text logs).

``edgefleet/cli/__init__.py`` dispatches ``edgefleet agent ...`` here before typer is imported: the agent runs on
every box and must stay small, so this front end uses only the standard library. ``run`` is the daemon (systemd or a
DaemonSet starts it); ``sample`` prints one heartbeat as JSON without connecting, for site staff checking a box.

Every option can come from the environment (for containers and unit files); the command line wins. A bad value
ends the command with one line ``error: ...`` on stderr that names the option and what it expects, and status 2.

The broker login comes from the broker URL (``mqtt://USER:PASSWORD@HOST:PORT``, percent-encoded) or from
``--username`` with ``--password-file`` or ``--password`` (``EDGEFLEET_MQTT_*``) - one way only, as the
controller's (``edgefleet.cloud.settings``): a username or password given twice, or a password without a
username, is refused with a line naming both places. The password is registered with ``credentials.hide_in_logs``
and the broker is only ever shown masked (``BrokerAddress.__str__``).

TLS: a ``mqtts://`` broker URL, with ``--ca-file`` (the CA that signed the broker's certificate; default: the
system's trust store) and, where the broker requires client certificates, ``--cert-file`` and ``--key-file``
(``edgefleet pki issue box NAME``). The files are loaded at start, so a wrong one ends the command with a line
naming it instead of failing every reconnect.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final, NoReturn
from urllib.parse import urlsplit

import msgspec

from edgefleet import __version__, messages
from edgefleet.agent.apps import (
    DEFAULT_METASERVER_URL,
    FileAppSource,
    MetaServerAppSource,
    NoAppSource,
    metaserver_answers,
)
from edgefleet.agent.enrolling import DEFAULT_DIR as DEFAULT_ENROLL_DIR
from edgefleet.agent.enrolling import EnrollError, enroll, with_env_file
from edgefleet.agent.gpu import NoGpuProbe, NvmlProbe
from edgefleet.agent.link import DEFAULT_KEEPALIVE_S, BoxLink, BrokerAddress, TlsFiles
from edgefleet.agent.probes import ProcHostProbe
from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.running import Agent, make_heartbeat
from edgefleet.agent.sources import AppSource, GpuProbe
from edgefleet.clock import SystemClock
from edgefleet.credentials import SecretFileError, hide_in_logs, read_secret_file
from edgefleet.ids import id_problem
from edgefleet.logs import configure_logging

log = logging.getLogger(__name__)

EXIT_USAGE: Final = 2
DEFAULT_BROKER_URL: Final = "mqtt://127.0.0.1:1883"
DEFAULT_INTERVAL_S: Final = 10.0
# The controller refuses heartbeats that claim a longer interval (messages.Heartbeat.interval_s).
MAX_INTERVAL_S: Final = 3600.0
# MQTT's keepalive field is 16 bits.
MAX_KEEPALIVE_S: Final = 65535
# ``sample`` waits this long between two /proc/stat readings so that it can print a CPU figure at all.
SAMPLE_CPU_WINDOW_S: Final = 0.25
# The box id ``sample`` prints when none is configured (site staff checking a box not yet enrolled).
UNCONFIGURED_ID: Final = "unconfigured"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
CONFIG_ENV: Final = "EDGEFLEET_AGENT_CONFIG"

# Option -> environment variable it falls back to.
ENV: Final = {
    "box": "EDGEFLEET_BOX",
    "site": "EDGEFLEET_SITE",
    "broker": "EDGEFLEET_BROKER_URL",
    "interval": "EDGEFLEET_INTERVAL",
    "apps_file": "EDGEFLEET_APPS_FILE",
    "metaserver": "EDGEFLEET_METASERVER_URL",
    "username": "EDGEFLEET_MQTT_USERNAME",
    "password": "EDGEFLEET_MQTT_PASSWORD",
    "password_file": "EDGEFLEET_MQTT_PASSWORD_FILE",
    "ca_file": "EDGEFLEET_MQTT_CA_FILE",
    "cert_file": "EDGEFLEET_MQTT_CERT_FILE",
    "key_file": "EDGEFLEET_MQTT_KEY_FILE",
    "proc_root": "EDGEFLEET_PROC_ROOT",
    "disk_path": "EDGEFLEET_DISK_PATH",
}


class UsageError(Exception):
    """A bad option or environment value; the message names it and says what is expected."""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The agent's options once checked."""

    box: str
    site: str
    # With the login to give, from the URL or the login options (its repr and str leave the password out).
    broker: BrokerAddress
    interval_s: float
    apps_file: Path | None
    metaserver_url: str | None
    gpu: bool
    keepalive_s: int
    log_level: str
    # The host's /proc and the filesystem whose use is reported: in a container, the host's mounted inside it.
    proc_root: Path = Path("/proc")
    disk_path: str = "/"

    @property
    def username(self) -> str | None:
        return self.broker.username

    @property
    def password(self) -> str | None:
        return self.broker.password


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--box", help="this box's id, as in the site inventory [env EDGEFLEET_BOX]")
    common.add_argument("--site", help="the site the box belongs to [env EDGEFLEET_SITE]")
    common.add_argument(
        "--interval",
        metavar="SECONDS",
        help=f"seconds between heartbeats [env EDGEFLEET_INTERVAL, default {DEFAULT_INTERVAL_S:g}]",
    )
    common.add_argument(
        "--apps-file", metavar="PATH", help="JSON or line file listing the box's apps [env EDGEFLEET_APPS_FILE]"
    )
    common.add_argument(
        "--metaserver",
        metavar="URL",
        help="KubeEdge MetaServer to read the box's pods from [env EDGEFLEET_METASERVER_URL; default: "
        f"{DEFAULT_METASERVER_URL} when it answers at start, else no apps]",
    )
    common.add_argument(
        "--proc-root",
        metavar="PATH",
        help="the host's /proc (in a container: where it is mounted) [env EDGEFLEET_PROC_ROOT, default /proc]",
    )
    common.add_argument(
        "--disk-path",
        metavar="PATH",
        help="a path on the filesystem whose use is reported [env EDGEFLEET_DISK_PATH, default /]",
    )
    common.add_argument("--no-gpu", action="store_true", help="do not load NVML (a box without GPUs)")
    common.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="default: info (run), warning (sample)")

    parser = _Parser(prog="edgefleet agent", description="The edgefleet box agent: reports this box's health.")
    parser.add_argument("--version", action="version", version=f"edgefleet agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,sample,enroll}", parser_class=_Parser)
    commands.required = True
    run = commands.add_parser(
        "run",
        parents=[common],
        help="send heartbeats to the broker until stopped (SIGTERM)",
        prog="edgefleet agent run",
    )
    run.add_argument(
        "--broker",
        metavar="URL",
        help=f"mqtt://[USER:PASSWORD@]HOST:PORT, the login percent-encoded [env EDGEFLEET_BROKER_URL, "
        f"default {DEFAULT_BROKER_URL}]",
    )
    run.add_argument(
        "--keepalive",
        metavar="SECONDS",
        help=f"MQTT keepalive; the will fires after ~1.5x it [default {DEFAULT_KEEPALIVE_S}]",
    )
    run.add_argument("--username", help="MQTT login, when it is not in the URL [env EDGEFLEET_MQTT_USERNAME]")
    run.add_argument(
        "--password-file",
        metavar="PATH",
        help="file holding the MQTT password [env EDGEFLEET_MQTT_PASSWORD_FILE]",
    )
    run.add_argument(
        "--password",
        help="MQTT password [env EDGEFLEET_MQTT_PASSWORD; prefer --password-file: a command line is public]",
    )
    run.add_argument(
        "--ca-file",
        metavar="PATH",
        help="CA certificates to verify an mqtts:// broker with [env EDGEFLEET_MQTT_CA_FILE; default: the system's]",
    )
    run.add_argument(
        "--cert-file",
        metavar="PATH",
        help="this box's TLS certificate, for a broker that requires one [env EDGEFLEET_MQTT_CERT_FILE]",
    )
    run.add_argument("--key-file", metavar="PATH", help="the key of --cert-file [env EDGEFLEET_MQTT_KEY_FILE]")
    run.add_argument(
        "--config",
        metavar="PATH",
        help="the agent.env 'edgefleet agent enroll' wrote; the environment and options win over it "
        "[env EDGEFLEET_AGENT_CONFIG]",
    )
    enroll = commands.add_parser(
        "enroll",
        help="trade the site's enrollment token for this box's broker login, written to --dir",
        prog="edgefleet agent enroll",
    )
    enroll.add_argument("--token", required=True, help="the single-use enrollment token of the box's site")
    enroll.add_argument("--controller", required=True, metavar="URL", help="the controller's API: http(s)://HOST:PORT")
    enroll.add_argument("--box", required=True, help="this box's id, as in the site inventory")
    enroll.add_argument(
        "--dir",
        metavar="PATH",
        default=str(DEFAULT_ENROLL_DIR),
        help=f"where to write the credentials and agent.env [default {DEFAULT_ENROLL_DIR}]",
    )
    enroll.add_argument(
        "--broker", metavar="URL", help="the broker URL the box reaches (default: what the controller says)"
    )
    enroll.add_argument("--controller-ca-file", metavar="PATH", help="CA to verify an https:// controller with")
    commands.add_parser(
        "sample",
        parents=[common],
        help="print one heartbeat as JSON and exit (no broker)",
        prog="edgefleet agent sample",
    )
    return parser


def _value(args: argparse.Namespace, env: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """The option's value from the command line, else the environment, and how to name it in an error."""
    flag = "--" + name.replace("_", "-")
    given = getattr(args, name, None)
    if given is not None:
        return given, flag
    variable = ENV.get(name)
    if variable and env.get(variable):
        return env[variable], f"{variable} (environment)"
    return None, flag


def _check_id(args: argparse.Namespace, env: Mapping[str, str], name: str, *, required: bool) -> str:
    value, where = _value(args, env, name)
    if value is None:
        if required:
            raise UsageError(f"--{name} is required: give this {name}'s id (or set {ENV[name]})")
        return UNCONFIGURED_ID
    problem = id_problem(value)
    if problem:
        raise UsageError(f"{where}: {problem}")
    return value


def _check_http_url(value: str, where: str) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"{where}: {value!r} has an invalid port; expected http://HOST:PORT") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{where}: {value!r} is not a URL; expected http://HOST:PORT")
    return value


def resolve_settings(args: argparse.Namespace, env: Mapping[str, str]) -> AgentSettings:
    """Check every option (command line first, environment second); raises UsageError naming the bad one."""
    running = args.command == "run"
    box = _check_id(args, env, "box", required=running)
    site = _check_id(args, env, "site", required=running)

    # ``sample`` never connects: the broker and login settings of the box's environment are not its concern.
    broker_url, where = _value(args, env, "broker") if running else (None, "")
    try:
        broker = BrokerAddress.parse(broker_url or DEFAULT_BROKER_URL)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if running:
        broker = _with_login(args, env, broker, where)
        broker = _with_tls(args, env, broker, where)
        hide_in_logs(broker.password)

    raw_interval, where = _value(args, env, "interval")
    interval_s = DEFAULT_INTERVAL_S
    if raw_interval is not None:
        try:
            interval_s = float(raw_interval)
        except ValueError:
            interval_s = math.nan
        if not (math.isfinite(interval_s) and 0 < interval_s <= MAX_INTERVAL_S):
            raise UsageError(f"{where}: {raw_interval!r} is not a number of seconds > 0 and <= {MAX_INTERVAL_S:g}")

    keepalive_s = DEFAULT_KEEPALIVE_S
    raw_keepalive = getattr(args, "keepalive", None)
    if raw_keepalive is not None:
        try:
            keepalive_s = int(raw_keepalive)
        except ValueError:
            keepalive_s = 0
        if not 1 <= keepalive_s <= MAX_KEEPALIVE_S:
            raise UsageError(
                f"--keepalive: {raw_keepalive!r} is not a whole number of seconds from 1 to {MAX_KEEPALIVE_S}"
            )

    apps_file, apps_where = _value(args, env, "apps_file")
    metaserver, where = _value(args, env, "metaserver")
    if apps_file is not None and metaserver is not None:
        raise UsageError(f"{apps_where} and {where} both name the apps source; give one")
    if metaserver is not None:
        _check_http_url(metaserver, where)
    proc_root, proc_where = _value(args, env, "proc_root")
    if proc_root is not None and not Path(proc_root, "stat").is_file():
        raise UsageError(f"{proc_where}: {proc_root!r} holds no 'stat' file; name the host's /proc (or its mount)")
    disk_path, disk_where = _value(args, env, "disk_path")
    if disk_path is not None and not Path(disk_path).exists():
        raise UsageError(f"{disk_where}: {disk_path!r} does not exist; name a path on the disk to report")

    return AgentSettings(
        box=box,
        site=site,
        broker=broker,
        interval_s=interval_s,
        apps_file=Path(apps_file) if apps_file is not None else None,
        metaserver_url=metaserver,
        gpu=not args.no_gpu,
        keepalive_s=keepalive_s,
        log_level=args.log_level or ("info" if running else "warning"),
        proc_root=Path(proc_root or "/proc"),
        disk_path=disk_path or "/",
    )


def _with_login(
    args: argparse.Namespace, env: Mapping[str, str], broker: BrokerAddress, broker_where: str
) -> BrokerAddress:
    """``broker`` with the login to give: the URL's, or the one the login options give - never both."""
    username, username_where = _value(args, env, "username")
    password, password_where = _password(args, env)
    url = f"{broker_where}={str(broker)!r}"
    if username == "":
        raise UsageError(f"{username_where} is empty; give the box's broker username or leave the option out")
    if broker.username is not None and username is not None:
        raise UsageError(f"{url} carries a username and {username_where} gives another; give the username one way")
    if broker.password is not None and password is not None:
        raise UsageError(f"{url} carries a password and {password_where} gives another; give the password one way")
    if password is not None and broker.username is None and username is None:
        raise UsageError(
            f"{password_where} gives a password but there is no username; add --username (or "
            f"{ENV['username']}), or put it in the broker URL (mqtt://USER@HOST:PORT)"
        )
    if username is None and password is None:
        return broker
    return broker.with_login(username or broker.username, password if password is not None else broker.password)


def _with_tls(
    args: argparse.Namespace, env: Mapping[str, str], broker: BrokerAddress, broker_where: str
) -> BrokerAddress:
    """``broker`` with the TLS files given, each loaded once here so that a bad one is named now."""
    ca_file, ca_where = _value(args, env, "ca_file")
    cert_file, cert_where = _value(args, env, "cert_file")
    key_file, key_where = _value(args, env, "key_file")
    given = [where for value, where in ((ca_file, ca_where), (cert_file, cert_where), (key_file, key_where)) if value]
    if broker.tls is None:
        if given:
            raise UsageError(
                f"{given[0]} is for TLS, but {broker_where}={str(broker)!r} is plain MQTT; use mqtts://HOST:PORT"
            )
        return broker
    if (cert_file is None) != (key_file is None):
        missing = key_where if key_file is None else cert_where
        raise UsageError(f"{missing} is missing: a client certificate needs its key (give --cert-file and --key-file)")
    for value, where in ((ca_file, ca_where), (cert_file, cert_where), (key_file, key_where)):
        if value is not None and not Path(value).expanduser().is_file():
            raise UsageError(f"{where}: {value!r} is not a readable file")
    tls = TlsFiles(
        ca_file=str(Path(ca_file).expanduser()) if ca_file else None,
        cert_file=str(Path(cert_file).expanduser()) if cert_file else None,
        key_file=str(Path(key_file).expanduser()) if key_file else None,
    )
    # Each file alone first, so that the error names the one that is wrong.
    for files, where in ((TlsFiles(ca_file=tls.ca_file), ca_where), (tls, cert_where)):
        try:
            files.context()
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"{where}: the TLS files cannot be used ({exc}); give PEM files as 'edgefleet pki' writes them"
            ) from None
    return broker.with_tls(tls)


def _password(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The password given apart from the URL, and where it came from. An option on the command line wins over
    the environment, as for every option; two ways on the same level are refused, never silently chosen."""
    # (where, value, whether the value names a file)
    given = [
        (where, value, from_file)
        for where, value, from_file in (
            ("--password", args.password, False),
            ("--password-file", args.password_file, True),
        )
        if value is not None
    ]
    if not given:
        given = [
            (f"{ENV[name]} (environment)", env[ENV[name]], name == "password_file")
            for name in ("password", "password_file")
            if env.get(ENV[name])
        ]
    if len(given) == 2:
        (first, _, _), (second, _, _) = given
        raise UsageError(f"{first} and {second} both give the password; give it one way (the file keeps it private)")
    if not given:
        return None, ""
    ((where, value, from_file),) = given
    if not from_file:
        return value, where
    try:
        return read_secret_file(Path(value).expanduser()), where
    except SecretFileError as exc:
        raise UsageError(f"{where}: {exc}") from None


def choose_app_source(settings: AgentSettings) -> AppSource:
    if settings.apps_file is not None:
        return FileAppSource(settings.apps_file)
    if settings.metaserver_url is not None:
        return MetaServerAppSource(settings.metaserver_url)
    # Neither given: a KubeEdge node has edgecore's MetaServer on its default address; a plain box has nothing.
    if metaserver_answers(DEFAULT_METASERVER_URL):
        return MetaServerAppSource(DEFAULT_METASERVER_URL)
    return NoAppSource()


def choose_gpu_probe(settings: AgentSettings) -> GpuProbe:
    return NvmlProbe() if settings.gpu else NoGpuProbe()


# --- logging: plain lines, extra fields appended -------------------------------------------------------------

# --- commands ------------------------------------------------------------------------------------------------


def _run(settings: AgentSettings) -> int:
    reporter = BoxReporter(settings.box, settings.site, interval_s=settings.interval_s, clock=SystemClock())
    link = BoxLink(
        reporter,
        settings.broker,
        keepalive_s=settings.keepalive_s,
    )
    apps = choose_app_source(settings)
    agent = Agent(link, ProcHostProbe(settings.proc_root, settings.disk_path), choose_gpu_probe(settings), apps)

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "Started box agent",
        extra={
            "box": settings.box,
            "site": settings.site,
            "boot": reporter.boot,
            "broker": str(settings.broker),
            "interval_s": settings.interval_s,
            "apps": getattr(apps, "source", type(apps).__name__),
            "gpu": "nvml" if settings.gpu else "off",
            "version": __version__,
        },
    )
    return agent.run()


def _sample(settings: AgentSettings) -> int:
    host = ProcHostProbe(settings.proc_root, settings.disk_path)
    time.sleep(SAMPLE_CPU_WINDOW_S)
    reporter = BoxReporter(settings.box, settings.site, interval_s=settings.interval_s, clock=SystemClock())
    heartbeat = make_heartbeat(reporter, host, choose_gpu_probe(settings), choose_app_source(settings))
    sys.stdout.write(msgspec.json.format(messages.encode(heartbeat), indent=2).decode() + "\n")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    problem = id_problem(args.box)
    if problem:
        raise UsageError(f"--box: {problem}")
    try:
        enrolled = enroll(
            args.controller,
            args.token,
            args.box,
            directory=Path(args.dir),
            broker_url=args.broker,
            controller_ca_file=Path(args.controller_ca_file) if args.controller_ca_file else None,
        )
    except EnrollError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(
        f"Enrolled box {enrolled.box} of site {enrolled.site}; its credentials are in {enrolled.directory}.\n"
        f"Start the agent with: edgefleet agent run --config {enrolled.env_file}\n"
    )
    if not enrolled.in_inventory:
        sys.stdout.write(
            f"Box {enrolled.box} is in no site manifest yet: it will show as unknown until "
            f"site {enrolled.site}'s manifest lists it.\n"
        )
    return 0


def main(argv: Sequence[str]) -> int:
    """Run ``edgefleet agent`` with ``argv`` (the words after ``agent``); returns the exit status."""
    try:
        args = build_parser().parse_args(list(argv))
        if args.command == "enroll":
            return _enroll(args)
        environ: Mapping[str, str] = os.environ
        config = getattr(args, "config", None) or environ.get(CONFIG_ENV)
        if args.command == "run" and config:
            try:
                environ = with_env_file(environ, Path(config))
            except EnrollError as exc:
                raise UsageError(f"--config: {exc}") from None
        settings = resolve_settings(args, environ)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and end here
        return exc.code if isinstance(exc.code, int) else 0
    configure_logging(settings.log_level)
    if args.command == "run":
        return _run(settings)
    return _sample(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
