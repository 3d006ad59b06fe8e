"""The controller's settings: read once from the environment (``EDGEFLEET_*``), checked, then frozen.

``Settings.from_env(os.environ, **overrides)`` is called by ``edgefleet cloud serve`` (overrides are its command
line options) and by tests; the controller and the API's lifespan receive the result and never read the
environment themselves. Every bad value is refused with a ``ValueError`` that names the variable, the value and
what is expected, so the CLI can print it as one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_BROKER_URL: Final = "mqtt://127.0.0.1:1883"
# Relative to the working directory, like ./sites: a controller started from a checkout keeps its data there.
DEFAULT_DATABASE_URL: Final = "sqlite:///var/edgefleet.db"
DEFAULT_LISTEN: Final = "127.0.0.1:8000"
DEFAULT_SITES_DIR: Final = "sites"
# Two seconds of heartbeats (~400 at fleet scale) per transaction: few commits, and a crash loses little.
DEFAULT_FLUSH_INTERVAL_S: Final = 2.0
# A day of health history in the database for charts: the last hour as received, older as 5-minute buckets
# (edgefleet.cloud.persisting); about 75 MB for 2,000 boxes on SQLite (docs/operations.md, "Disk").
DEFAULT_HISTORY_RETENTION_S: Final = 24 * 3600.0
# Full-resolution samples kept per box: twice an hour at 10 s heartbeats, so that a box that beats far faster
# than its site says cannot grow the database past its bound.
DEFAULT_HISTORY_MAX_POINTS: Final = 720

ENV_BROKER_URL: Final = "EDGEFLEET_BROKER_URL"
ENV_DATABASE_URL: Final = "EDGEFLEET_DATABASE_URL"
ENV_LISTEN: Final = "EDGEFLEET_LISTEN"
ENV_SITES_DIR: Final = "EDGEFLEET_SITES_DIR"
ENV_FLUSH_INTERVAL: Final = "EDGEFLEET_FLUSH_INTERVAL"
ENV_HISTORY_RETENTION: Final = "EDGEFLEET_HISTORY_RETENTION"
ENV_HISTORY_MAX_POINTS: Final = "EDGEFLEET_HISTORY_MAX_POINTS"
ENV_NOTIFICATIONS: Final = "EDGEFLEET_NOTIFICATIONS"

_DATABASE_SCHEMES: Final = frozenset({"sqlite", "postgresql", "postgres", "postgresql+psycopg"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Settings:
    broker_url: str = DEFAULT_BROKER_URL
    # Left out of repr: a PostgreSQL URL may carry a password. ``database_url_shown`` hides it.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    sites_dir: Path = Path(DEFAULT_SITES_DIR)
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    history_retention_s: float = DEFAULT_HISTORY_RETENTION_S
    history_max_points: int = DEFAULT_HISTORY_MAX_POINTS
    # The notification file (docs/alerting.md); None: alerts are evaluated, stored and listed, but not sent.
    notifications_file: Path | None = None

    def __post_init__(self) -> None:
        # Direct construction (tests, embedding) gets the same checks as the environment, named by field.
        parse_broker_url(self.broker_url, name="broker_url")
        _check_database_url(self.database_url, name="database_url")
        if not 0 < self.listen_port < 65536:
            raise ValueError(f"listen_port={self.listen_port}: expected a TCP port, 1 to 65535")
        _check_positive(self.flush_interval_s, name="flush_interval_s")
        _check_positive(self.history_retention_s, name="history_retention_s")
        if self.history_max_points < 1:
            raise ValueError(f"history_max_points={self.history_max_points}: expected a whole number >= 1")

    @property
    def broker_host(self) -> str:
        return parse_broker_url(self.broker_url, name="broker_url")[0]

    @property
    def broker_port(self) -> int:
        return parse_broker_url(self.broker_url, name="broker_url")[1]

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def database_url_shown(self) -> str:
        """The database URL with any password masked, for logs and messages."""
        return hide_password(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Settings from ``EDGEFLEET_*`` variables; ``overrides`` (field names, or ``listen``) win over them.

        An override of None is ignored, so a CLI can pass every option it has. Overrides may be strings (read
        like the variable) or values of the field's type. For a SQLite file, its directory is created.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - _OVERRIDABLE
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(_OVERRIDABLE))}"
            )

        def raw(key: str, env: str, default: str) -> tuple[object, str]:
            if key in given:
                return given[key], key
            return environ.get(env, default), env

        broker_url, name = raw("broker_url", ENV_BROKER_URL, DEFAULT_BROKER_URL)
        broker = _text(broker_url, name)
        parse_broker_url(broker, name=name)

        database_value, name = raw("database_url", ENV_DATABASE_URL, DEFAULT_DATABASE_URL)
        database_url = _text(database_value, name)
        _check_database_url(database_url, name=name)
        _create_sqlite_directory(database_url, name=name)

        listen_value, name = raw("listen", ENV_LISTEN, DEFAULT_LISTEN)
        listen_host, listen_port = parse_listen(_text(listen_value, name), name=name)

        sites_value, name = raw("sites_dir", ENV_SITES_DIR, DEFAULT_SITES_DIR)
        sites_dir = sites_value if isinstance(sites_value, Path) else Path(_text(sites_value, name))

        flush_value, name = raw("flush_interval_s", ENV_FLUSH_INTERVAL, str(DEFAULT_FLUSH_INTERVAL_S))
        flush_interval_s = _duration(flush_value, name)

        retention_value, name = raw("history_retention_s", ENV_HISTORY_RETENTION, str(DEFAULT_HISTORY_RETENTION_S))
        history_retention_s = _duration(retention_value, name)

        points_value, name = raw("history_max_points", ENV_HISTORY_MAX_POINTS, str(DEFAULT_HISTORY_MAX_POINTS))
        history_max_points = _whole(points_value, name)

        notifications_value, name = raw("notifications_file", ENV_NOTIFICATIONS, "")
        notifications_file = _optional_path(notifications_value, name)

        return cls(
            broker_url=broker,
            database_url=database_url,
            listen_host=listen_host,
            listen_port=listen_port,
            sites_dir=sites_dir,
            flush_interval_s=flush_interval_s,
            history_retention_s=history_retention_s,
            history_max_points=history_max_points,
            notifications_file=notifications_file,
        )


_OVERRIDABLE: Final = frozenset(
    {
        "broker_url",
        "database_url",
        "listen",
        "sites_dir",
        "flush_interval_s",
        "history_retention_s",
        "history_max_points",
        "notifications_file",
    }
)


def parse_broker_url(url: str, *, name: str = ENV_BROKER_URL) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` (port 1883 when left out) -> (host, port); ValueError naming ``name`` otherwise."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in {"mqtt", "tcp"}:
        raise ValueError(f"{name}={url!r}: expected mqtt://HOST:PORT (TLS is not supported yet)")
    if not parts.hostname:
        raise ValueError(f"{name}={url!r} names no host; expected mqtt://HOST:PORT, e.g. {DEFAULT_BROKER_URL}")
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"{name}={url!r} has an invalid port; expected 1 to 65535") from None
    if port == 0:
        raise ValueError(f"{name}={url!r} has an invalid port; expected 1 to 65535")
    return parts.hostname, port


def parse_listen(value: str, *, name: str = ENV_LISTEN) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ValueError naming ``name`` otherwise."""
    expected = f"expected HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:8000"
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(f"{name}={value!r}: {expected}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{name}={value!r}: write an IPv6 address in brackets; {expected}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{name}={value!r}: the port must be a number from 1 to 65535; {expected}")
    return host, int(port_text)


def hide_password(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``; unparsable URLs are masked by pattern."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _check_database_url(url: str, *, name: str) -> None:
    shown = hide_password(url)
    expected = "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"{name}={shown!r} is no database URL; {expected}") from None
    if parsed.drivername not in _DATABASE_SCHEMES:
        raise ValueError(f"{name}={shown!r}: the {parsed.drivername!r} database is not supported; {expected}")
    if parsed.drivername != "sqlite" and not parsed.database:
        raise ValueError(f"{name}={shown!r} names no database; {expected}")


def _create_sqlite_directory(url: str, *, name: str) -> None:
    parsed = make_url(url)
    if parsed.drivername != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    directory = Path(parsed.database).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{name}={url!r}: cannot create the directory {str(directory)!r} for the database: {exc.strerror}"
        ) from None


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}={value!r}: expected a non-empty text")
    return value.strip()


def _optional_path(value: object, name: str) -> Path | None:
    """A path, or None when the value is empty (the variable set to "" turns the setting off)."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: expected a file path")
    return Path(value.strip()) if value.strip() else None


def _duration(value: object, name: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{name}={value!r}: expected seconds, or a number with s, m, h or d (e.g. 2, 90s, 24h)")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    _check_positive(seconds, name=name)
    return seconds


def _whole(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{name}={value!r}: expected a whole number >= 1")
    if number < 1:
        raise ValueError(f"{name}={value!r}: expected a whole number >= 1")
    return number


def _check_positive(seconds: float, *, name: str) -> None:
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name}={seconds!r}: expected a duration in seconds greater than 0")
