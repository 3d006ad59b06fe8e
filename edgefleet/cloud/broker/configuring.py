"""``edgefleet broker config``: the files a secured Mosquitto runs from, written into one directory.

- ``mosquitto.conf``: anonymous clients refused, Nagle's algorithm off (``set_tcp_nodelay``), one TLS listener (loopback by default) with the PKI's CA and
  the broker's certificate, client certificates required (unless asked otherwise), and the dynamic-security
  plugin, which holds the accounts and their ACLs and can change them while the broker runs.
- ``dynamic-security.json``: the plugin's own file, with the admin account (changes accounts through the control
  topic, nothing else) and the controller's account; boxes are added at run time (``accounts``), or, for a whole
  fleet at once (the demo's 2,000 simulated boxes), written into this first file (``boxes``). Mosquitto
  rewrites this file itself on every change, so it is written only when absent: re-running the command rewrites
  the configuration and keeps every account.
- ``admin.password``, ``controller.password`` (0600): the service accounts' passwords, made here and never printed.
- ``broker.json``: where the broker listens and which files an admin connection uses, so that
  ``edgefleet broker box ...`` needs only ``--dir``.

The plugin's file stores passwords as Mosquitto's ``mosquitto_ctrl dynsec init`` does: PBKDF2-HMAC-SHA512 with a
12-byte salt and 101 iterations, base64. The iteration count is the plugin's own; it matters little because every
password edgefleet makes is 32 random bytes, far beyond guessing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edgefleet.cloud.broker import grants, pki
from edgefleet.cloud.broker.pki import PkiError, write_atomically
from edgefleet.errors import EdgefleetError

# Where Debian's mosquitto package puts the plugin (shared/FIELD-NOTES.md); other systems name it with --plugin.
PLUGIN_CANDIDATES: Final = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
DEFAULT_PORT: Final = 8883
DEFAULT_HOST: Final = "127.0.0.1"
CONF: Final = "mosquitto.conf"
DYNSEC: Final = "dynamic-security.json"
SETTINGS: Final = "broker.json"
ADMIN_PASSWORD: Final = "admin.password"
CONTROLLER_PASSWORD: Final = "controller.password"
# The plugin's hashing (mosquitto_ctrl dynsec init, Mosquitto 2.0).
HASH_ITERATIONS: Final = 101
SALT_BYTES: Final = 12
# 32 random bytes, URL-safe: a password can go into a broker URL without escaping.
PASSWORD_BYTES: Final = 32


class BrokerConfigError(EdgefleetError):
    """The broker's configuration cannot be written or read as asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What ``broker.json`` records: how an admin connection reaches the broker."""

    host: str
    port: int
    cafile: Path
    # The client certificate an admin connection presents (the controller's); None when the listener does not
    # ask for one.
    certfile: Path | None
    keyfile: Path | None
    admin_username: str
    admin_password_file: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "cafile": str(self.cafile),
            "certfile": str(self.certfile) if self.certfile else None,
            "keyfile": str(self.keyfile) if self.keyfile else None,
            "admin_username": self.admin_username,
            "admin_password_file": str(self.admin_password_file),
        }


@dataclass(frozen=True, slots=True)
class Written:
    conf: Path
    dynsec: Path
    dynsec_created: bool
    settings: BrokerSettings
    # The new box accounts' passwords by box id (``boxes`` of ``write_config``): here once, never written by us.
    box_passwords: dict[str, str] = field(default_factory=dict, repr=False)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def find_plugin() -> Path | None:
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    return None


def write_config(
    directory: Path,
    *,
    pki_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    broker_cert: str = "broker",
    controller_cert: str = "controller",
    require_client_certs: bool = True,
    plugin: Path | None = None,
    run_as: str | None = None,
    boxes: Sequence[str] = (),
) -> Written:
    """Write (or rewrite) the broker's files in ``directory``; the plugin's account file only when absent. With
    ``boxes``, that new file also holds an account for each (as ``accounts.add_box`` makes one at run time), their
    passwords returned once: one file write, where the plugin rewrites its whole file on every command it runs
    (2,000 accounts over the control topic take minutes, docs/performance.md)."""
    for box in boxes:
        grants.check_box(box)
    if len(set(boxes)) != len(boxes):
        raise BrokerConfigError("a box is named twice in the boxes to make accounts for")
    if not 0 < port < 65536:
        raise BrokerConfigError(f"--port {port}: expected a TCP port, 1 to 65535")
    plugin = plugin or find_plugin()
    if plugin is None or not plugin.exists():
        raise BrokerConfigError(
            "Mosquitto's dynamic-security plugin was not found"
            + (f" at {plugin}" if plugin else f" (looked at {', '.join(PLUGIN_CANDIDATES)})")
            + "; install Mosquitto 2 (Debian: apt-get install mosquitto) or name the plugin with --plugin"
        )
    pki_dir = pki_dir.resolve()
    directory = directory.resolve()
    cafile = pki_dir / pki.CA_CERT
    needed = [cafile, pki.cert_path(pki_dir, "broker", broker_cert), pki.key_path(pki_dir, "broker", broker_cert)]
    if require_client_certs:
        needed += [
            pki.cert_path(pki_dir, "controller", controller_cert),
            pki.key_path(pki_dir, "controller", controller_cert),
        ]
    for path in needed:
        if not path.exists():
            raise BrokerConfigError(f"{path} is missing; {_how_to_make(path, pki_dir)}")
    try:
        pki.load_trusted(pki_dir)
    except PkiError as exc:
        raise BrokerConfigError(str(exc)) from None

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    dynsec = directory / DYNSEC
    created = not dynsec.exists()
    box_passwords: dict[str, str] = {}
    if boxes and not created:
        raise BrokerConfigError(
            f"{dynsec} exists, so box accounts can no longer be written into it; add them to the running broker "
            "('edgefleet broker box add BOX'), or move the account file away to start afresh"
        )
    if created:
        admin_password, controller_password = new_password(), new_password()
        box_passwords = {box: new_password() for box in boxes}
        write_atomically(dynsec, _dynsec_json(admin_password, controller_password, box_passwords).encode(), mode=0o600)
        write_atomically(directory / ADMIN_PASSWORD, admin_password.encode() + b"\n", mode=0o600)
        write_atomically(directory / CONTROLLER_PASSWORD, controller_password.encode() + b"\n", mode=0o600)
    elif not (directory / ADMIN_PASSWORD).exists():
        raise BrokerConfigError(
            f"{dynsec} exists but {directory / ADMIN_PASSWORD} does not; restore it, or move the account file away "
            "to start with new accounts (every box then needs a new one)"
        )

    lines = [
        "# Written by 'edgefleet broker config'; rewritten by it (docs/security.md). Accounts live in the",
        f"# dynamic-security plugin's file, {DYNSEC}, which Mosquitto itself updates.",
        "per_listener_settings false",
        "allow_anonymous false",
        # Without it Mosquitto's small answers wait on Nagle's algorithm against the client's delayed ACK: an
        # account change took ~180 ms instead of ~3 ms on loopback (bench/broker_accounts.py).
        "set_tcp_nodelay true",
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec}",
    ]
    if run_as:
        # Mosquitto started as root drops to this user, which must read the keys and write the account file.
        lines.append(f"user {run_as}")
    lines += [
        "",
        f"listener {port} {host}",
        f"cafile {cafile}",
        f"certfile {pki.cert_path(pki_dir, 'broker', broker_cert)}",
        f"keyfile {pki.key_path(pki_dir, 'broker', broker_cert)}",
        f"require_certificate {'true' if require_client_certs else 'false'}",
        "",
    ]
    conf = directory / CONF
    write_atomically(conf, "\n".join(lines).encode(), mode=0o644)

    settings = BrokerSettings(
        host=host,
        port=port,
        cafile=cafile,
        certfile=pki.cert_path(pki_dir, "controller", controller_cert) if require_client_certs else None,
        keyfile=pki.key_path(pki_dir, "controller", controller_cert) if require_client_certs else None,
        admin_username=grants.ADMIN_USERNAME,
        admin_password_file=directory / ADMIN_PASSWORD,
    )
    write_atomically(directory / SETTINGS, (json.dumps(settings.to_json(), indent=2) + "\n").encode(), mode=0o644)
    return Written(conf, dynsec, created, settings, box_passwords)


def read_settings(directory: Path) -> BrokerSettings:
    """``broker.json`` of a directory ``write_config`` wrote."""
    path = directory / SETTINGS
    try:
        raw = json.loads(path.read_text())
        return BrokerSettings(
            host=str(raw["host"]),
            port=int(raw["port"]),
            cafile=Path(raw["cafile"]),
            certfile=Path(raw["certfile"]) if raw.get("certfile") else None,
            keyfile=Path(raw["keyfile"]) if raw.get("keyfile") else None,
            admin_username=str(raw["admin_username"]),
            admin_password_file=Path(raw["admin_password_file"]),
        )
    except FileNotFoundError:
        raise BrokerConfigError(
            f"{path} is missing; write the broker's configuration first: edgefleet broker config --dir {directory}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerConfigError(f"{path} cannot be read ({exc}); rewrite it with 'edgefleet broker config'") from None


def hash_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    """The plugin's stored form of ``password``: ``password`` (hash), ``salt``, ``iterations``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": HASH_ITERATIONS,
    }


def _dynsec_json(admin_password: str, controller_password: str, box_passwords: dict[str, str]) -> str:
    def stored(entry: dict[str, Any], password: str) -> dict[str, Any]:
        # The file names it textName where the control topic's commands say textname.
        textname = entry.pop("textname", "")
        return {**entry, "textName": textname, **hash_password(password)}

    data = {
        "clients": [
            stored(
                grants.client(grants.ADMIN_USERNAME, role_name=grants.ADMIN_ROLE, textname="edgefleet account admin"),
                admin_password,
            ),
            stored(
                grants.client(
                    grants.CONTROLLER_USERNAME, role_name=grants.CONTROLLER_ROLE, textname="edgefleet controller"
                ),
                controller_password,
            ),
            *(
                stored(
                    grants.client(box, role_name=grants.box_role(box), clientid=box, textname=f"box {box}"),
                    password,
                )
                for box, password in box_passwords.items()
            ),
        ],
        "roles": [
            grants.role(grants.ADMIN_ROLE, grants.admin_acls()),
            grants.role(grants.CONTROLLER_ROLE, grants.controller_acls()),
            *(grants.role(grants.box_role(box), grants.box_acls(box)) for box in box_passwords),
        ],
        "defaultACLAccess": {entry["acltype"]: entry["allow"] for entry in grants.DEFAULT_ACL_ACCESS},
    }
    return json.dumps(data, indent=2) + "\n"


def _how_to_make(path: Path, pki_dir: Path) -> str:
    if path.name in (pki.CA_CERT, pki.CA_KEY):
        return f"make the CA first: edgefleet pki init --dir {pki_dir}"
    kind, _, name = path.stem.partition("-")
    return f"issue it first: edgefleet pki issue {kind} {name} --dir {pki_dir}"
