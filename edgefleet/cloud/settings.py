"""The controller's settings: read once from the environment (``EDGEFLEET_*``), checked, then frozen.

``Settings.from_env(os.environ, **overrides)`` is called by ``edgefleet cloud serve`` (overrides are its command
line options) and by tests; the controller and the API's lifespan receive the result and never read the
environment themselves. Every bad value is refused with a ``ValueError`` that names the variable, the value and
what is expected, so the CLI can print it as one line.

Secrets: the broker login comes from the broker URL (``mqtt://USER:PASSWORD@HOST:PORT``, percent-encoded) or from
``EDGEFLEET_BROKER_USERNAME`` with ``EDGEFLEET_BROKER_PASSWORD`` or ``EDGEFLEET_BROKER_PASSWORD_FILE`` - one way
only: a password given twice is refused, never silently chosen. A ``mqtts://`` URL connects over TLS, verifying
the broker against ``EDGEFLEET_BROKER_CA_FILE`` (default: the system's trust store) and presenting
``EDGEFLEET_BROKER_CERT_FILE`` / ``EDGEFLEET_BROKER_KEY_FILE`` where the broker requires a client certificate
(``edgefleet pki``, docs/security.md). Every password read here is registered with
``credentials.hide_in_logs``, and URLs are shown only through ``credentials.mask_url`` (``*_shown``); the
values themselves are left out of ``repr``.

Kubernetes: the clusters of the inventory are reached through one kubeconfig file, ``EDGEFLEET_KUBECONFIG``
(default ``~/.kube/config``), by each cluster's context; a controller running in a pod (``KUBERNETES_SERVICE_HOST``
set) with no file named uses its in-cluster configuration instead. Only the setting is read and checked here.

Registries: ``EDGEFLEET_REGISTRY_CONFIG`` names a containerd-style hosts directory (``<dir>/<host>/hosts.toml``,
``edgefleet.cloud.registry``) through which a rollout pins its images by digest when it starts; unset, no
registry is asked and images go out as the release gives them (docs/releases.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from edgefleet.cloud.access.oidc_config import OidcSettings, oidc_from_env
from edgefleet.credentials import SecretFileError, hide_in_logs, mask_url, read_secret_file

DEFAULT_BROKER_URL: Final = "mqtt://127.0.0.1:1883"
# Relative to the working directory, like ./sites: a controller started from a checkout keeps its data there.
DEFAULT_DATABASE_URL: Final = "sqlite:///var/edgefleet.db"
DEFAULT_LISTEN: Final = "127.0.0.1:8000"
DEFAULT_SITES_DIR: Final = "sites"
# Where a rollout finds the manifest of a release that ran before it when no earlier rollout brought it (the
# releases a fleet was set up with): what an abort or rollback goes back to.
DEFAULT_RELEASES_DIR: Final = "releases"
# Two seconds of heartbeats (~400 at fleet scale) per transaction: few commits, and a crash loses little.
DEFAULT_FLUSH_INTERVAL_S: Final = 2.0
# A day of health history in the database for charts: the last hour as received, older as 5-minute buckets
# (edgefleet.cloud.persisting); about 75 MB for 2,000 boxes on SQLite (docs/operations.md, "Disk").
DEFAULT_HISTORY_RETENTION_S: Final = 24 * 3600.0
# Full-resolution samples kept per box: twice an hour at 10 s heartbeats, so that a box that beats far faster
# than its site says cannot grow the database past its bound.
DEFAULT_HISTORY_MAX_POINTS: Final = 720
# The largest request body the API takes (413 beyond): a release manifest, the largest body, holds 60,000
# characters at most.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
# How often the rollout reconciler ticks (edgefleet.cloud.rollouts.reconciling.TICK_S): a tick reads the store and
# one list per cluster, cheap enough every 2 s, and an abort lands within one tick. Shorter makes a rollout with no
# soak faster at the cost of more calls to every cluster (tests run a few sites at 0.3 s).
DEFAULT_ROLLOUT_TICK_S: Final = 2.0
# How long the PostgreSQL leader's lease runs from its last renewal (edgefleet.cloud.leading derives the renewal,
# the candidates' tries and the clock margin from it): the longest a killed or frozen leader blocks its successor.
# 6 s is well inside the 15 s takeover target and survives a database blip of several seconds. Below 2 s a renewal
# comes every third of a second and a leader starved of CPU for about a second under load steps down: takeovers
# nobody asked for. Above 60 s a dead leader leaves the fleet unled for a minute.
DEFAULT_LEADER_LEASE_S: Final = 6.0
LEADER_LEASE_MIN_S: Final = 2.0
LEADER_LEASE_MAX_S: Final = 60.0
DEFAULT_KUBECONFIG: Final = "~/.kube/config"
# The kubeconfig setting's value when the controller runs in a pod and no file is named: the pod's service
# account and the cluster's API server address, as Kubernetes mounts and sets them.
IN_CLUSTER: Final = "in-cluster"
KubeconfigSource = Path | Literal["in-cluster"]

ENV_BROKER_URL: Final = "EDGEFLEET_BROKER_URL"
ENV_DATABASE_URL: Final = "EDGEFLEET_DATABASE_URL"
ENV_LISTEN: Final = "EDGEFLEET_LISTEN"
# Where the other replicas reach this one's API (a standby forwards writes to the leader there); in a pod, its IP.
ENV_ADVERTISE_URL: Final = "EDGEFLEET_ADVERTISE_URL"
ENV_SITES_DIR: Final = "EDGEFLEET_SITES_DIR"
ENV_RELEASES_DIR: Final = "EDGEFLEET_RELEASES_DIR"
ENV_FLUSH_INTERVAL: Final = "EDGEFLEET_FLUSH_INTERVAL"
ENV_HISTORY_RETENTION: Final = "EDGEFLEET_HISTORY_RETENTION"
ENV_HISTORY_MAX_POINTS: Final = "EDGEFLEET_HISTORY_MAX_POINTS"
ENV_MAX_BODY_BYTES: Final = "EDGEFLEET_MAX_BODY_BYTES"
ENV_NOTIFICATIONS: Final = "EDGEFLEET_NOTIFICATIONS"
ENV_ROLLOUT_TICK: Final = "EDGEFLEET_ROLLOUT_TICK"
ENV_LEADER_LEASE: Final = "EDGEFLEET_LEADER_LEASE"
ENV_BROKER_USERNAME: Final = "EDGEFLEET_BROKER_USERNAME"
ENV_BROKER_PASSWORD: Final = "EDGEFLEET_BROKER_PASSWORD"
ENV_BROKER_PASSWORD_FILE: Final = "EDGEFLEET_BROKER_PASSWORD_FILE"
ENV_BROKER_CA_FILE: Final = "EDGEFLEET_BROKER_CA_FILE"
ENV_BROKER_CERT_FILE: Final = "EDGEFLEET_BROKER_CERT_FILE"
ENV_BROKER_KEY_FILE: Final = "EDGEFLEET_BROKER_KEY_FILE"
ENV_KUBECONFIG: Final = "EDGEFLEET_KUBECONFIG"
ENV_REGISTRY_CONFIG: Final = "EDGEFLEET_REGISTRY_CONFIG"
# The console's cookies: "auto" (Secure when the request came over https), "true" or "false" (docs/security.md).
ENV_COOKIE_SECURE: Final = "EDGEFLEET_COOKIE_SECURE"
ENV_BROKER_DIR: Final = "EDGEFLEET_BROKER_DIR"
ENV_PKI_DIR: Final = "EDGEFLEET_PKI_DIR"
# Set by Kubernetes in every pod's environment.
ENV_IN_POD: Final = "KUBERNETES_SERVICE_HOST"

_TLS_SCHEMES: Final = frozenset({"mqtts", "ssl"})
DEFAULT_TLS_PORT: Final = 8883
_DATABASE_SCHEMES: Final = frozenset({"sqlite", "postgresql", "postgres", "postgresql+psycopg"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Settings:
    # Left out of repr: the URL may carry the broker's password. ``broker_url_shown`` masks it.
    broker_url: str = field(default=DEFAULT_BROKER_URL, repr=False)
    # Left out of repr: a PostgreSQL URL may carry a password. ``database_url_shown`` hides it.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    # ``http(s)://HOST:PORT`` where the other replicas reach this API; None: from ``listen`` (controller.py).
    advertise_url: str | None = None
    sites_dir: Path = Path(DEFAULT_SITES_DIR)
    releases_dir: Path = Path(DEFAULT_RELEASES_DIR)
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    history_retention_s: float = DEFAULT_HISTORY_RETENTION_S
    history_max_points: int = DEFAULT_HISTORY_MAX_POINTS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rollout_tick_s: float = DEFAULT_ROLLOUT_TICK_S
    # The PostgreSQL leader's lease (a SQLite controller leads alone and has none).
    leader_lease_s: float = DEFAULT_LEADER_LEASE_S
    # The notification file (docs/alerting.md); None: alerts are evaluated, stored and listed, but not sent.
    notifications_file: Path | None = None
    # The broker login when it is not in the URL (``broker_login`` gives it from either place).
    broker_username: str | None = None
    broker_password: str | None = field(default=None, repr=False)
    # Where the clusters' kubeconfig comes from: a file, or the pod's in-cluster configuration.
    kubeconfig: KubeconfigSource = field(default_factory=lambda: Path(DEFAULT_KUBECONFIG).expanduser())
    # The registry hosts directory a rollout resolves its images' tags through; None: none is asked.
    registry_config: Path | None = None
    # TLS to the broker (a mqtts:// URL): the CA to verify it with (None: the system's), the client certificate.
    broker_ca_file: Path | None = None
    broker_cert_file: Path | None = None
    broker_key_file: Path | None = None
    # Sign-in through the company's OpenID Connect provider (EDGEFLEET_OIDC_*); None: local users only.
    oidc: OidcSettings | None = None
    # Whether the console's cookies are marked Secure: None decides per request (https or not).
    cookie_secure: bool | None = None
    # Box enrollment (docs/security.md): the directory 'edgefleet broker config' wrote (broker.json and the admin
    # account's password) and the PKI directory whose CA signs the boxes' certificates. Both, or enrollment is off.
    broker_dir: Path | None = None
    pki_dir: Path | None = None

    def __post_init__(self) -> None:
        # Direct construction (tests, embedding) gets the same checks as the environment, named by field.
        parse_broker_url(self.broker_url, name="broker_url")
        _check_broker_login(
            self.broker_url,
            self.broker_username,
            self.broker_password,
            url_name="broker_url",
            username_name="broker_username",
            password_name="broker_password",
        )
        _check_broker_tls(
            self.broker_url, self.broker_ca_file, self.broker_cert_file, self.broker_key_file, names=_TLS_FIELD_NAMES
        )
        _check_database_url(self.database_url, name="database_url")
        if not 0 < self.listen_port < 65536:
            raise ValueError(f"listen_port={self.listen_port}: expected a TCP port, 1 to 65535")
        _check_positive(self.flush_interval_s, name="flush_interval_s")
        _check_positive(self.history_retention_s, name="history_retention_s")
        _check_positive(self.rollout_tick_s, name="rollout_tick_s")
        check_leader_lease(self.leader_lease_s, name="leader_lease_s")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes={self.max_body_bytes}: expected a whole number >= 1")
        if self.history_max_points < 1:
            raise ValueError(f"history_max_points={self.history_max_points}: expected a whole number >= 1")

    @property
    def broker_host(self) -> str:
        return parse_broker_url(self.broker_url, name="broker_url")[0]

    @property
    def broker_port(self) -> int:
        return parse_broker_url(self.broker_url, name="broker_url")[1]

    @property
    def broker_url_shown(self) -> str:
        """The broker URL with any password masked, for logs, messages and /healthz."""
        return mask_url(self.broker_url)

    @property
    def broker_login(self) -> tuple[str, str | None] | None:
        """(username, password) to log in to the broker with, from the URL or the separate settings; None for an
        anonymous connection."""
        url_username, url_password = broker_url_login(self.broker_url)
        username = url_username if url_username is not None else self.broker_username
        if username is None:
            return None
        return username, url_password if url_password is not None else self.broker_password

    @property
    def broker_tls(self) -> BrokerTls | None:
        """The TLS files to connect with, or None for plain MQTT (a mqtt:// URL)."""
        if not broker_url_is_tls(self.broker_url):
            return None
        return BrokerTls(self.broker_ca_file, self.broker_cert_file, self.broker_key_file)

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def database_url_shown(self) -> str:
        """The database URL with any password masked, for logs and messages."""
        return mask_url(self.database_url)

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
        advertise_url = parse_advertise_url(environ.get(ENV_ADVERTISE_URL, ""), name=ENV_ADVERTISE_URL)

        sites_value, name = raw("sites_dir", ENV_SITES_DIR, DEFAULT_SITES_DIR)
        sites_dir = sites_value if isinstance(sites_value, Path) else Path(_text(sites_value, name))

        releases_value, name = raw("releases_dir", ENV_RELEASES_DIR, DEFAULT_RELEASES_DIR)
        releases_dir = releases_value if isinstance(releases_value, Path) else Path(_text(releases_value, name))

        flush_value, name = raw("flush_interval_s", ENV_FLUSH_INTERVAL, str(DEFAULT_FLUSH_INTERVAL_S))
        flush_interval_s = _duration(flush_value, name)

        retention_value, name = raw("history_retention_s", ENV_HISTORY_RETENTION, str(DEFAULT_HISTORY_RETENTION_S))
        history_retention_s = _duration(retention_value, name)

        points_value, name = raw("history_max_points", ENV_HISTORY_MAX_POINTS, str(DEFAULT_HISTORY_MAX_POINTS))
        history_max_points = _whole(points_value, name)

        body_value, name = raw("max_body_bytes", ENV_MAX_BODY_BYTES, str(DEFAULT_MAX_BODY_BYTES))
        max_body_bytes = _whole(body_value, name)

        tick_value, name = raw("rollout_tick_s", ENV_ROLLOUT_TICK, str(DEFAULT_ROLLOUT_TICK_S))
        rollout_tick_s = _duration(tick_value, name)

        lease_value, name = raw("leader_lease_s", ENV_LEADER_LEASE, str(DEFAULT_LEADER_LEASE_S))
        name = "--leader-lease" if "leader_lease_s" in given else name  # the only way to override it
        leader_lease_s = _duration(lease_value, name)
        check_leader_lease(leader_lease_s, name=name, given=lease_value)

        notifications_value, name = raw("notifications_file", ENV_NOTIFICATIONS, "")
        notifications_file = _optional_path(notifications_value, name)

        username_value, username_name = raw("broker_username", ENV_BROKER_USERNAME, "")
        broker_username = _optional_text(username_value, username_name)
        broker_password, password_name = _broker_password(environ, given.get("broker_password_file"))
        _check_broker_login(
            broker,
            broker_username,
            broker_password,
            url_name="--broker" if "broker_url" in given else ENV_BROKER_URL,
            username_name=username_name,
            password_name=password_name,
        )
        hide_in_logs(broker_password, broker_url_login(broker)[1])

        tls_files: list[Path | None] = []
        tls_names: list[str] = []
        for key, env in (
            ("broker_ca_file", ENV_BROKER_CA_FILE),
            ("broker_cert_file", ENV_BROKER_CERT_FILE),
            ("broker_key_file", ENV_BROKER_KEY_FILE),
        ):
            value, name = raw(key, env, "")
            path = _optional_path(value, name)
            tls_files.append(_expand_home(str(path), environ) if path is not None else None)
            tls_names.append(name)
        ca_file, cert_file, key_file = tls_files
        _check_broker_tls(broker, ca_file, cert_file, key_file, names=tuple(tls_names))

        kubeconfig = _kubeconfig(environ, given.get("kubeconfig"))

        registry_value, name = raw("registry_config", ENV_REGISTRY_CONFIG, "")
        registry_config = _optional_path(registry_value, name)
        if registry_config is not None:
            registry_config = _expand_home(str(registry_config), environ)
            if not registry_config.is_dir():
                raise ValueError(
                    f"{name}={str(registry_value)!r}: no such directory ({registry_config}); name the registry hosts "
                    "directory (<dir>/<host>/hosts.toml, as `edgefleet sim run` logs it), or leave it unset"
                )

        oidc = oidc_from_env(environ)
        cookie_secure = _cookie_secure(environ.get(ENV_COOKIE_SECURE, "auto"))
        enrollment_dirs: list[Path | None] = []
        for key, env in (("broker_dir", ENV_BROKER_DIR), ("pki_dir", ENV_PKI_DIR)):
            value, name = raw(key, env, "")
            path = _optional_path(value, name)
            if path is not None:
                path = _expand_home(str(path), environ)
                if not path.is_dir():
                    raise ValueError(
                        f"{name}={str(value)!r}: no such directory ({path}); name the directory "
                        f"'edgefleet {'broker config' if key == 'broker_dir' else 'pki init'}' wrote, or leave it unset"
                    )
            enrollment_dirs.append(path)
        broker_dir, pki_dir = enrollment_dirs
        if (broker_dir is None) != (pki_dir is None):
            raise ValueError(
                f"box enrollment needs both {ENV_BROKER_DIR} and {ENV_PKI_DIR} (the broker's and the CA's "
                "directories); set both, or neither to leave enrollment off"
            )

        return cls(
            broker_url=broker,
            database_url=database_url,
            listen_host=listen_host,
            listen_port=listen_port,
            advertise_url=advertise_url,
            sites_dir=sites_dir,
            releases_dir=releases_dir,
            flush_interval_s=flush_interval_s,
            history_retention_s=history_retention_s,
            history_max_points=history_max_points,
            max_body_bytes=max_body_bytes,
            rollout_tick_s=rollout_tick_s,
            leader_lease_s=leader_lease_s,
            notifications_file=notifications_file,
            broker_username=broker_username,
            broker_password=broker_password,
            kubeconfig=kubeconfig,
            registry_config=registry_config,
            broker_ca_file=ca_file,
            broker_cert_file=cert_file,
            broker_key_file=key_file,
            oidc=oidc,
            cookie_secure=cookie_secure,
            broker_dir=broker_dir,
            pki_dir=pki_dir,
        )


def parse_advertise_url(value: str, *, name: str) -> str | None:
    """``http(s)://HOST:PORT`` (no path), as the other replicas reach this API; None when ``value`` is empty."""
    text = value.strip()
    if not text:
        return None
    expected = "expected http://HOST:PORT where the other replicas reach this API (in a pod: http://$(POD_IP):8000)"
    parsed = urlsplit(text)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port is None:
        raise ValueError(f"{name}={value!r}: {expected}")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError(f"{name}={value!r}: no path, query or login; {expected}")
    return text.rstrip("/")


def _cookie_secure(value: str) -> bool | None:
    chosen = {"auto": None, "true": True, "false": False}
    text = value.strip().lower() or "auto"
    if text not in chosen:
        raise ValueError(f"{ENV_COOKIE_SECURE}={value!r}: expected auto, true or false")
    return chosen[text]


_OVERRIDABLE: Final = frozenset(
    {
        "broker_url",
        "database_url",
        "listen",
        "sites_dir",
        "releases_dir",
        "flush_interval_s",
        "history_retention_s",
        "history_max_points",
        "max_body_bytes",
        "rollout_tick_s",
        "leader_lease_s",
        "notifications_file",
        "broker_username",
        "broker_password_file",
        "kubeconfig",
        "registry_config",
        "broker_ca_file",
        "broker_cert_file",
        "broker_key_file",
        "broker_dir",
        "pki_dir",
    }
)
_TLS_FIELD_NAMES: Final = ("broker_ca_file", "broker_cert_file", "broker_key_file")


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """What the controller verifies the broker with (None: the system's trust store) and shows of itself."""

    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None


def broker_url_is_tls(url: str) -> bool:
    return urlsplit(url if "://" in url else f"mqtt://{url}").scheme in _TLS_SCHEMES


def _check_broker_tls(
    url: str, ca: Path | None, cert: Path | None, key: Path | None, *, names: tuple[str, ...]
) -> None:
    """TLS files only with a mqtts:// URL, a certificate only with its key, every file present."""
    given = [(path, name) for path, name in zip((ca, cert, key), names, strict=True) if path is not None]
    if given and not broker_url_is_tls(url):
        raise ValueError(
            f"{given[0][1]} is for TLS, but the broker URL {mask_url(url)!r} is plain; use mqtts://HOST:PORT"
        )
    if (cert is None) != (key is None):
        raise ValueError(f"{names[1]} and {names[2]} go together: a client certificate needs its key")
    for path, name in given:
        if not path.is_file():
            raise ValueError(f"{name}={str(path)!r}: no such file")


def parse_broker_url(url: str, *, name: str = ENV_BROKER_URL) -> tuple[str, int]:
    """``mqtt://[USER[:PASSWORD]@]HOST:PORT`` (port 1883 when left out) -> (host, port); ValueError naming
    ``name`` otherwise. The error shows the URL masked (``mask_url``)."""
    shown = mask_url(url)
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in {"mqtt", "tcp", *_TLS_SCHEMES}:
        raise ValueError(f"{name}={shown!r}: expected mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)")
    if parts.path.strip("/") or parts.query or parts.fragment:
        # Also what a password with a raw '/', '?' or '#' looks like to a URL parser.
        raise ValueError(
            f"{name}={shown!r}: expected mqtt://[USER:PASSWORD@]HOST:PORT with nothing after the port; "
            "percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40)"
        )
    if not parts.hostname:
        raise ValueError(f"{name}={shown!r} names no host; expected mqtt://HOST:PORT, e.g. {DEFAULT_BROKER_URL}")
    try:
        port = parts.port or (DEFAULT_TLS_PORT if parts.scheme in _TLS_SCHEMES else 1883)
    except ValueError:
        raise ValueError(f"{name}={shown!r} has an invalid port; expected 1 to 65535") from None
    if port == 0:
        raise ValueError(f"{name}={shown!r} has an invalid port; expected 1 to 65535")
    return parts.hostname, port


def broker_url_login(url: str) -> tuple[str | None, str | None]:
    """The (username, password) a broker URL carries, percent-decoded; (None, None) when it has none."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.username is None:
        return None, None
    password = unquote(parts.password) if parts.password is not None else None
    return unquote(parts.username), password


def _broker_password(environ: Mapping[str, str], file_override: object) -> tuple[str | None, str]:
    """The broker password given apart from the URL, and the name of where it came from. The command line's
    ``--broker-password-file`` wins over both variables; the two variables together are refused."""
    if file_override is not None:
        return _password_file(file_override, "--broker-password-file"), "--broker-password-file"
    inline = environ.get(ENV_BROKER_PASSWORD) or None
    file = environ.get(ENV_BROKER_PASSWORD_FILE, "").strip() or None
    if inline is not None and file is not None:
        raise ValueError(
            f"{ENV_BROKER_PASSWORD} and {ENV_BROKER_PASSWORD_FILE} are both set; give the broker password one way "
            f"(the file keeps it out of the environment)"
        )
    if file is not None:
        return _password_file(file, ENV_BROKER_PASSWORD_FILE), ENV_BROKER_PASSWORD_FILE
    return inline, ENV_BROKER_PASSWORD


def _kubeconfig(environ: Mapping[str, str], override: object) -> KubeconfigSource:
    """The kubeconfig file named by ``--kubeconfig`` or ``EDGEFLEET_KUBECONFIG`` (it must exist: a named file that
    is not there is a typo to hear of now); else the in-cluster configuration inside a pod; else
    ``~/.kube/config``, which need not exist yet (nothing reads it before the controller talks to a cluster).
    ``KUBECONFIG`` is not read: the controller's clusters come from one file, named here."""
    if override is not None:
        value, name = override, "--kubeconfig"
    else:
        value, name = environ.get(ENV_KUBECONFIG, ""), ENV_KUBECONFIG
    text = str(value).strip()
    if not text:
        if environ.get(ENV_IN_POD, "").strip():
            return IN_CLUSTER
        return _expand_home(DEFAULT_KUBECONFIG, environ)
    path = _expand_home(text, environ)
    if not path.is_file():
        raise ValueError(
            f"{name}={text!r}: no such kubeconfig file ({path}); name an existing file, or leave it unset for "
            f"{DEFAULT_KUBECONFIG} (or the in-cluster configuration inside a pod)"
        )
    return path


def _expand_home(path: str, environ: Mapping[str, str]) -> Path:
    """``path`` with a leading ``~`` expanded from ``HOME`` in ``environ`` (the environment the settings come
    from, which may not be this process's)."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME")
        return Path(home + path[1:]) if home else Path(path).expanduser()
    return Path(path)


def _password_file(value: object, name: str) -> str:
    path = value if isinstance(value, Path) else Path(_text(value, name)).expanduser()
    try:
        return read_secret_file(path)
    except SecretFileError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _check_broker_login(
    url: str,
    username: str | None,
    password: str | None,
    *,
    url_name: str,
    username_name: str,
    password_name: str,
) -> None:
    """Refuse a username or a password given twice (URL and setting), an empty username, or a password without
    a username (MQTT sends one only with a username). ``mqtt://USER@HOST`` with a password file is fine."""
    url_username, url_password = broker_url_login(url)
    for what, in_url, apart, apart_name in (
        ("username", url_username, username, username_name),
        ("password", url_password, password, password_name),
    ):
        if in_url is not None and apart is not None:
            raise ValueError(
                f"{url_name}={mask_url(url)!r} carries a {what} and {apart_name} gives another; give the broker "
                f"{what} one way"
            )
    if url_username == "":
        raise ValueError(f"{url_name}={mask_url(url)!r}: the broker username in the URL is empty")
    if password is not None and url_username is None and username is None:
        raise ValueError(
            f"{password_name} gives a broker password but there is no username; set {ENV_BROKER_USERNAME} "
            "(or --broker-username), or put it in the URL (mqtt://USER@HOST:PORT)"
        )


def _optional_text(value: object, name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _text(value, name)


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
    """``url`` as it may be shown (``credentials.mask_url``); kept for the store's messages."""
    return mask_url(url)


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
            f"{name}={mask_url(url)!r}: cannot create the directory {str(directory)!r} for the database: {exc.strerror}"
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


def check_leader_lease(seconds: float, *, name: str, given: object = None) -> None:
    """The lease between ``LEADER_LEASE_MIN_S`` and ``LEADER_LEASE_MAX_S``; ValueError naming ``name`` and the value
    as ``given`` otherwise."""
    if not LEADER_LEASE_MIN_S <= seconds <= LEADER_LEASE_MAX_S:
        raise ValueError(
            f"{name}={seconds if given is None else given!r}: expected a leader lease from {LEADER_LEASE_MIN_S:g} s to {LEADER_LEASE_MAX_S:g} s "
            f"(default {DEFAULT_LEADER_LEASE_S:g} s): shorter leases make takeovers under load, longer ones leave "
            "the fleet unled for longer when the leader dies"
        )


def _check_positive(seconds: float, *, name: str) -> None:
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name}={seconds!r}: expected a duration in seconds greater than 0")
