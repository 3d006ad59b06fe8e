"""Real peers for integration tests: Mosquitto on a free loopback port, a PostgreSQL database of the run's own."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Mosquitto:
    port: int
    process: subprocess.Popen[bytes]
    config: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (a broker restart as ops would see it)."""
        self.stop()
        self.process = _spawn_mosquitto(self.config, self.port)


def _spawn_mosquitto(config: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    # The log goes to a file: a pipe nobody reads fills after ~64 KB of connection lines and Mosquitto then
    # blocks and stops accepting (seen at ~450 simulated boxes).
    log = config.with_suffix(".log")
    with log.open("ab") as sink:
        process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 10
    while not _port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited at start: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("mosquitto did not listen within 10 s")
        time.sleep(0.02)
    return process


def mosquitto_password_file(directory: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (``mosquitto_passwd -b``: salted hashes) with these usernames and passwords."""
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path = directory / "mosquitto-passwords"
    path.touch(mode=0o600)
    for username, password in users.items():
        subprocess.run([binary, "-b", str(path), username, password], check=True, capture_output=True)
    return path


@contextlib.contextmanager
def mosquitto(directory: Path, *, extra_config: str = "", password_file: Path | None = None) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own on a free loopback port; anonymous clients allowed (a listener line
    switches Mosquitto 2 to refusing them otherwise) - unless ``password_file`` is given: then only its users
    may connect (``mosquitto_password_file``)."""
    port = free_port()
    config = directory / f"mosquitto-{port}.conf"
    # ``user root``: Mosquitto started as root reads the password file after dropping to its own user, which
    # cannot enter pytest's private temporary directories; as any other user the line changes nothing.
    login = (
        f"allow_anonymous false\npassword_file {password_file}\nuser root\n"
        if password_file
        else "allow_anonymous true\n"
    )
    config.write_text(
        f"listener {port} 127.0.0.1\n{login}persistence false\nmax_inflight_messages 100\n"
        f"max_keepalive 65535\n{extra_config}"
    )
    broker = Mosquitto(port, _spawn_mosquitto(config, port), config)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def mosquitto_from(config: Path, port: int) -> Iterator[Mosquitto]:
    """A Mosquitto run from a configuration written elsewhere (``edgefleet broker config``) that listens on
    ``port`` of 127.0.0.1; stopped afterwards."""
    broker = Mosquitto(port, _spawn_mosquitto(config, port), config)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A database of this test run's own on the PostgreSQL server at ``server_url``, dropped afterwards."""
    import sqlalchemy as sa

    name = f"edgefleet_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
