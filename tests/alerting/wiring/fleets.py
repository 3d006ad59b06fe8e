"""A whole alerting set-up for the wiring tests: a real Mosquitto, the simulator playing a small inventory (its
sites beat every 0.5 s by their own ``heartbeat.intervalSeconds``), the real controller with a notification file
that sends to a recording webhook receiver and a real Alertmanager, and the controller's API served by uvicorn.

``Fleet`` injects the simulator's faults and reads what the receivers got: every notice the webhook received, as
(request, alert) pairs, and what Alertmanager lists.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edgefleet.cloud.api import create_app
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import heartbeat_timeout
from edgefleet.cloud.settings import Settings
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from tests.cloud.api.serving import serving
from tests.support.access import bearer, mint
from tests.support.clusters import TEST_HOST, write_host_cluster
from tests.support.peers import Mosquitto, wait_for
from tests.support.receivers import Alertmanager, Received, RecordingReceiver

# Each site's own heartbeat interval: a timeout of 3 x 0.5 s + 20% = 1.8 s keeps every scenario within seconds.
INTERVAL_S = 0.5
MISSED_BEATS = 3
TIMEOUT_S = heartbeat_timeout(INTERVAL_S, MISSED_BEATS)
# Short, so that a dropped or cut box's will comes within seconds (the broker waits ~1.5 x keepalive).
KEEPALIVE_S = 2
WEBHOOK_PATH = "/hooks/edgefleet"
# The kinds the webhook route takes: the simulator's GPUs show a corrected ECC error now and then, and the
# scenarios count lost-contact and overheat notices, not those.
WEBHOOK_KINDS = ("box-lost", "box-flapping", "site-unreachable", "gpu-overheat")


def write_sites(directory: Path, sites: dict[str, int]) -> Path:
    """Transfer centers ``name`` with one edge node and ``count - 1`` GPU boxes each (``name-edge-01``,
    ``name-gpu-01``, ...), beating every INTERVAL_S seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    for site, count in sites.items():
        boxes = [f"    - {{name: {site}-edge-01, role: edge-node, model: Dell PowerEdge XR11}}\n"]
        boxes += [
            f"    - {{name: {site}-gpu-{i:02d}, role: gpu-box, model: Dell PowerEdge R750xa,\n"
            '       gpu: {model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}\n'
            for i in range(1, count)
        ]
        (directory / f"{site}.yaml").write_text(
            "apiVersion: edgefleet.io/v1\nkind: Site\n"
            f"metadata: {{name: {site}}}\n"
            "spec:\n  kind: transfer-center\n"
            f'  displayName: "{site.title()} Transfer Center"\n  region: east\n  timezone: Asia/Shanghai\n'
            f"  cluster: {TEST_HOST}\n"
            f"  heartbeat: {{intervalSeconds: {INTERVAL_S}, missedBeats: {MISSED_BEATS}}}\n"
            "  boxes:\n" + "".join(boxes)
        )
    write_host_cluster(directory)
    return directory


def write_notifications(path: Path, *, webhook: str, alertmanager: str | None, extra_rules: str = "") -> Path:
    """A notification file: the webhook takes the WEBHOOK_KINDS, Alertmanager (when given) every alert; a site
    gets at most one webhook message a second; a GPU is "overheating" after one second above the limit."""
    channels = [f"    - {{name: tickets, kind: webhook, url: '{webhook}{WEBHOOK_PATH}'}}\n"]
    routes = [f"    - kinds: [{', '.join(WEBHOOK_KINDS)}]\n      channels: [tickets]\n"]
    if alertmanager is not None:
        channels.append(f"    - {{name: alertmanager, kind: alertmanager, url: '{alertmanager}'}}\n")
        routes.append("    - channels: [alertmanager]\n")
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: wiring-tests}\nspec:\n"
        "  timing: {groupWait: 0s, groupInterval: 1s, repeatInterval: 1h}\n"
        "  channels:\n" + "".join(channels) + "  routes:\n" + "".join(routes) + "  rules:\n"
        "    defaults:\n      gpuTemperatureFor: 1s\n" + extra_rules
    )
    return path


@dataclass(frozen=True)
class Notice:
    """One alert in one webhook message, as the receiver got it."""

    received: Received
    alert: dict[str, Any]

    @property
    def notice(self) -> str:
        """firing, repeat or resolved."""
        return str(self.alert["notice"])

    @property
    def kind(self) -> str:
        return str(self.alert["kind"])


@dataclass
class Fleet:
    broker: Mosquitto
    sim: BackgroundSimulator
    controller: Controller
    receiver: RecordingReceiver
    alertmanager: Alertmanager | None
    api: str
    sites: dict[str, int] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    # --- who calls ----------------------------------------------------------------------------------------

    def token(self, name: str | None = None) -> str:
        """An admin token named ``name`` (the actor its calls record; default: a unique test name), made once per
        fleet. A restarted controller's new ``Fleet`` on the same database must name others (names stay taken)."""
        key = name or ""
        if key not in self._tokens:
            self._tokens[key] = mint(self.controller, "admin", name=name)
        return self._tokens[key]

    def headers(self, name: str | None = None) -> dict[str, str]:
        return bearer(self.token(name))

    # --- faults -------------------------------------------------------------------------------------------

    def inject(self, **body: object) -> dict[str, Any]:
        response = httpx.post(f"{self.sim.url}/faults", json=body, timeout=10)
        assert response.status_code == 201, response.text
        fault: dict[str, Any] = response.json()
        return fault

    def clear(self, fault: dict[str, Any]) -> None:
        response = httpx.delete(f"{self.sim.url}/faults/{fault['id']}", timeout=10)
        assert response.status_code == 200, response.text

    # --- what the receivers got ---------------------------------------------------------------------------

    def notices(
        self, *, site: str | None = None, box: str | None = None, kind: str | None = None, notice: str | None = None
    ) -> list[Notice]:
        found = []
        for request in self.receiver.received:
            if request.path != WEBHOOK_PATH:
                continue
            for alert in request.json()["alerts"]:
                if (
                    (site is None or alert["site"] == site)
                    and (box is None or alert["box"] == box)
                    and (kind is None or alert["kind"] == kind)
                    and (notice is None or alert["notice"] == notice)
                ):
                    found.append(Notice(request, alert))
        return found

    def wait_notice(self, *, timeout: float = 10.0, **filters: str) -> Notice:
        """The first notice that matches, once it has arrived."""
        return wait_for(lambda: self.notices(**filters), timeout=timeout, what=f"a notice {filters}")[0]

    def messages_about(self, site: str) -> list[dict[str, Any]]:
        """Every webhook message body that names ``site``."""
        return [
            body
            for body in (json.loads(r.body) for r in self.receiver.received if r.path == WEBHOOK_PATH)
            if site in body["sites"]
        ]

    def settled(self) -> None:
        """Wait until the outbox holds nothing undelivered: whatever was planned has reached its receiver."""
        wait_for(lambda: not self.controller.delivery.outbox.backlog(), timeout=10, what="an empty outbox")

    def stored(self, *, site: str, kind: str | None = None, box: str | None = None) -> list[dict[str, Any]]:
        """The alerts as the API lists them (newest first)."""
        params = {"site": site, **({"kind": kind} if kind else {})}
        response = httpx.get(f"{self.api}/api/v1/alerts", params=params, headers=self.headers(), timeout=10)
        assert response.status_code == 200, response.text
        alerts: list[dict[str, Any]] = response.json()
        return [a for a in alerts if box is None or a["box"] == box]


def controller_settings(directory: Path, broker: Mosquitto, notifications: Path | None) -> Settings:
    return Settings(
        broker_url=broker.url,
        database_url=f"sqlite:///{directory / 'edgefleet.db'}",
        sites_dir=directory / "sites",
        flush_interval_s=0.5,
        notifications_file=notifications,
    )


@contextlib.contextmanager
def running_controller(settings: Settings) -> Iterator[tuple[Controller, str]]:
    """The real controller and its API, evaluating alerts (the warm-up done) once this yields."""
    controller = Controller(settings)
    try:
        controller.start()
        with serving(create_app(settings, controller=controller)) as url:
            wait_for(lambda: controller.alert_loop.evaluating, timeout=15, what="alert evaluation to start")
            yield controller, url
    finally:
        controller.stop()


@contextlib.contextmanager
def running_simulator(directory: Path, broker: Mosquitto) -> Iterator[BackgroundSimulator]:
    options = SimulatorOptions(
        sites_dir=directory / "sites", broker_url=broker.url, listen="127.0.0.1:0", keepalive_s=KEEPALIVE_S, seed=3
    )
    sim = start_in_background(options)
    try:
        yield sim
    finally:
        sim.stop()


def all_online(controller: Controller) -> bool:
    now = time.time()
    with controller.state.lock:
        return all(
            live.last_seen is not None and now - live.last_seen < TIMEOUT_S and live.status_state == "online"
            for live in controller.state.boxes.values()
        )
