"""Many boxes' own broker logins, kept in one file: ``edgefleet broker config --boxes-from`` writes it, the simulator
reads it (``edgefleet sim run --box-logins``) to play a whole fleet on the secured broker.

A secured broker (docs/security.md) gives every box an account of its own, bound to the client id that is its box
id; the simulator logs each simulated box in with its own, as the real agents do. The file is JSON, readable by its owner
only (it holds every box's password)::

    {"boxes": {"sh-pudong-001": {"username": "sh-pudong-001", "password": "..."}, ...}}

Read by ``simulator.running`` at start; a file that cannot be used is a ``BoxLoginsError`` saying what and where.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.errors import EdgefleetError


class BoxLoginsError(EdgefleetError):
    """The box logins file cannot be used (the message says why and where)."""


@dataclass(frozen=True, slots=True)
class BoxLogin:
    username: str
    # Never in a repr, a log line or a traceback.
    password: str = field(repr=False)


def read_box_logins(path: Path) -> dict[str, BoxLogin]:
    """Every box's login in ``path``, by box id. Refused: a file others may read, one that is not the JSON above."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise BoxLoginsError(f"box logins file {str(path)!r}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BoxLoginsError(
            f"box logins file {str(path)!r} may be read by others (mode {stat.S_IMODE(mode):04o}); it holds every "
            f"box's password: chmod 600 {path}"
        )
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BoxLoginsError(f"box logins file {str(path)!r} is not readable JSON: {exc}") from None
    boxes = raw.get("boxes") if isinstance(raw, dict) else None
    if not isinstance(boxes, dict):
        raise BoxLoginsError(
            f'box logins file {str(path)!r}: expected {{"boxes": {{BOX: {{"username": ..., "password": ...}}}}}}; '
            "write it with 'edgefleet broker config --boxes-from SITES --box-logins FILE'"
        )
    logins: dict[str, BoxLogin] = {}
    for box, entry in boxes.items():
        username = entry.get("username") if isinstance(entry, dict) else None
        password = entry.get("password") if isinstance(entry, dict) else None
        if not isinstance(username, str) or not username or not isinstance(password, str) or not password:
            raise BoxLoginsError(
                f"box logins file {str(path)!r}, box {box!r}: expected a non-empty username and password"
            )
        logins[str(box)] = BoxLogin(username, password)
    return logins


def write_box_logins(path: Path, logins: Mapping[str, BoxLogin]) -> None:
    """Write ``logins`` to a new file ``path``, 0600 from its first byte; an existing file is never overwritten."""
    data = {"boxes": {box: {"username": login.username, "password": login.password} for box, login in logins.items()}}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BoxLoginsError(f"{path} exists; name a new file (a logins file is never overwritten)") from None
    except OSError as exc:
        raise BoxLoginsError(f"cannot write the box logins file {str(path)!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
