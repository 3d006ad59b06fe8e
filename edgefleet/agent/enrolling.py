"""``edgefleet agent enroll``: a new box trades its site's single-use enrollment token for its own broker login.

The box POSTs the token and its id to the controller's ``/api/v1/enroll`` (standard library only: the agent
stays small) and writes what comes back, once, into one directory (default ``/etc/edgefleet/agent``):

- ``mqtt.password``, ``box.key``: the broker password and the certificate's key, 0600;
- ``box.crt``, ``ca.crt``: the box's certificate and the CA that signed the broker's;
- ``agent.env``: the agent's settings as ``EDGEFLEET_*=value`` lines naming those files (never the secrets
  themselves), 0600. ``edgefleet agent run --config DIR/agent.env`` starts with them; so does a systemd unit
  with ``EnvironmentFile=``.

Each file is written to a temporary name created with its final mode and renamed into place, so a secret is never
readable by others, not even for a moment. Nothing here prints or logs a secret.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_DIR: Final = Path("/etc/edgefleet/agent")
ENV_FILE: Final = "agent.env"
PASSWORD_FILE: Final = "mqtt.password"
CERT_FILE: Final = "box.crt"
KEY_FILE: Final = "box.key"
CA_FILE: Final = "ca.crt"
# Enrollment makes a certificate and a broker account; a loopback controller answers in well under a second.
TIMEOUT_S: Final = 30.0
_FIELDS: Final = ("box", "site", "username", "password", "certificate", "key", "ca", "broker_host", "broker_port")


class EnrollError(Exception):
    """Enrollment failed; the message says why and what to do (never a secret)."""


@dataclass(frozen=True, slots=True)
class Enrolled:
    box: str
    site: str
    directory: Path
    env_file: Path
    broker_url: str
    in_inventory: bool


def enroll(
    controller_url: str,
    token: str,
    box: str,
    *,
    directory: Path = DEFAULT_DIR,
    broker_url: str | None = None,
    controller_ca_file: Path | None = None,
) -> Enrolled:
    """Enroll ``box`` at ``controller_url`` and write its credentials into ``directory``."""
    answer = _post(controller_url.rstrip("/") + "/api/v1/enroll", {"token": token, "box": box}, controller_ca_file)
    missing = [name for name in _FIELDS if name not in answer]
    if missing:
        raise EnrollError(
            f"the controller's answer lacks {', '.join(missing)}; is {controller_url} an edgefleet controller?"
        )
    url = broker_url or f"mqtts://{answer['broker_host']}:{answer['broker_port']}"
    directory = directory.expanduser().resolve()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(directory / PASSWORD_FILE, str(answer["password"]) + "\n", 0o600)
        _write(directory / KEY_FILE, str(answer["key"]), 0o600)
        _write(directory / CERT_FILE, str(answer["certificate"]), 0o644)
        _write(directory / CA_FILE, str(answer["ca"]), 0o644)
        settings = {
            "EDGEFLEET_BOX": str(answer["box"]),
            "EDGEFLEET_SITE": str(answer["site"]),
            "EDGEFLEET_BROKER_URL": url,
            "EDGEFLEET_MQTT_USERNAME": str(answer["username"]),
            "EDGEFLEET_MQTT_PASSWORD_FILE": str(directory / PASSWORD_FILE),
            "EDGEFLEET_MQTT_CA_FILE": str(directory / CA_FILE),
            "EDGEFLEET_MQTT_CERT_FILE": str(directory / CERT_FILE),
            "EDGEFLEET_MQTT_KEY_FILE": str(directory / KEY_FILE),
        }
        lines = ["# Written by 'edgefleet agent enroll'; 'edgefleet agent run --config' reads it."]
        lines += [f"{name}={value}" for name, value in settings.items()]
        _write(directory / ENV_FILE, "\n".join(lines) + "\n", 0o600)
    except OSError as exc:
        raise EnrollError(
            f"enrolled, but cannot write the credentials into {directory}: {exc.strerror or exc}; the login is "
            f"lost: revoke the box (edgefleet broker box revoke {box}) and enroll it again with a new token"
        ) from None
    return Enrolled(
        str(answer["box"]),
        str(answer["site"]),
        directory,
        directory / ENV_FILE,
        url,
        bool(answer.get("in_inventory", True)),
    )


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments and blank lines skipped), as ``agent.env`` holds; a bad line raises
    ``EnrollError`` naming the file and line."""
    try:
        text = path.expanduser().read_text()
    except OSError as exc:
        raise EnrollError(f"cannot read {path}: {exc.strerror or exc}") from None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip().startswith("EDGEFLEET_"):
            raise EnrollError(f"{path}:{number}: expected EDGEFLEET_NAME=value (as 'edgefleet agent enroll' writes)")
        found[name.strip()] = value.strip()
    return found


def with_env_file(environ: Mapping[str, str], path: Path) -> dict[str, str]:
    """The file's settings under ``environ``: a variable set in the environment wins over the file."""
    return {**read_env_file(path), **environ}


def _post(url: str, body: dict[str, str], ca_file: Path | None) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise EnrollError(f"--controller {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise EnrollError(f"the controller refused the enrollment ({exc.code}): {_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollError(f"cannot reach the controller at {url}: {reason}; check --controller") from None
    except ValueError:
        raise EnrollError(f"the controller at {url} answered no JSON; is it an edgefleet controller?") from None
    if not isinstance(answer, dict):
        raise EnrollError(f"the controller at {url} answered no JSON object; is it an edgefleet controller?")
    return answer


def _message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return error.reason if isinstance(error.reason, str) else "no reason given"


def _write(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
