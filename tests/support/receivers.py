"""Receivers of notifications for tests: a recording HTTP server (a DingTalk robot or a webhook) and a real
Prometheus Alertmanager, each on a free loopback port.

``recording_receiver()`` records every request (path, query, headers, body) and answers DingTalk's success
(HTTP 200, ``{"errcode": 0}``) unless told otherwise for the next requests (``answer``). ``alertmanager(tmp)``
starts Debian's ``prometheus-alertmanager`` with a config that routes everything to a receiver that sends
nowhere, and waits until it is ready.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.support.peers import free_port, wait_for

DINGTALK_OK = b'{"errcode":0,"errmsg":"ok"}'
ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = DINGTALK_OK
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Only for requests to this path (None: any path).
    path: str | None = None


class RecordingReceiver:
    """An HTTP server on 127.0.0.1 that records what it is sent. Use ``recording_receiver()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._script: deque[Answer] = deque()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def do_GET(self) -> None:
                receiver._handle(self)

            def do_PUT(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll: ``stop`` waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="recording-receiver", daemon=True
        )

    def answer(
        self,
        *,
        status: int = 200,
        errcode: int | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay_s: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, when given) with ``status`` and ``body`` (or DingTalk's
        ``errcode``), after ``delay_s`` seconds; other requests get the usual success."""
        if body is None:
            body = (
                json.dumps({"errcode": errcode, "errmsg": f"test errcode {errcode}"}).encode()
                if errcode
                else DINGTALK_OK
            )
        with self._lock:
            self._script.extend(Answer(status, body, headers or {}, delay_s, path) for _ in range(times))

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""

        def arrived() -> list[Received] | None:
            received = self.received
            return received if len(received) >= count else None

        return wait_for(arrived, timeout=timeout, what=f"{count} request(s)")[:count]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = Received(
            method=handler.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            raw_query=parts.query,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            at=time.time(),
        )
        with self._lock:
            self._received.append(request)
            answer = next((a for a in self._script if a.path in (None, request.path)), None)
            if answer is None:
                answer = Answer()
            else:
                self._script.remove(answer)
        if answer.delay_s and self._released.wait(answer.delay_s):
            return  # the receiver is stopping: no answer
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def recording_receiver() -> Iterator[RecordingReceiver]:
    receiver = RecordingReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


# --- Alertmanager -----------------------------------------------------------------------------------------

_ALERTMANAGER_CONFIG = """\
route:
  receiver: nowhere
  group_by: [site]
receivers:
  - name: nowhere
"""


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the active alerts Alertmanager holds."""
        with httpx.Client(trust_env=False, timeout=5) as client:
            response = client.get(f"{self.url}/api/v2/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready(url: str) -> bool:
    try:
        with httpx.Client(trust_env=False, timeout=1) as client:
            return client.get(f"{url}/-/ready").status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def alertmanager(directory: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager of the test's own on a free loopback port, clustering off, data under ``directory``."""
    binary = shutil.which("prometheus-alertmanager") or ALERTMANAGER_BINARY
    if not Path(binary).exists():
        raise RuntimeError("prometheus-alertmanager is not installed: apt-get install prometheus-alertmanager")
    root = directory / "alertmanager"
    root.mkdir()
    config = root / "alertmanager.yml"
    config.write_text(_ALERTMANAGER_CONFIG)
    port = free_port()
    log = root / "alertmanager.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    manager = Alertmanager(f"http://127.0.0.1:{port}", process, log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"alertmanager exited at start: {log.read_text()[-2000:]}")
            return _ready(manager.url)

        wait_for(ready, timeout=15, what="alertmanager to be ready")
        yield manager
    finally:
        manager.stop()
