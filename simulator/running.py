"""The simulator process: loads the inventory, builds a simulated box for every box it plays, connects them all
through one ``LinkDriver``, sends their heartbeats on one ``HeartbeatSchedule``, applies faults, and serves the
control API (uvicorn, in the same asyncio loop) until it is told to stop. In the same loop it serves one simulated
Kubernetes API server per cluster of the played sites (``simulator.cluster.playing``) and writes a kubeconfig with
one context per cluster (``--kubeconfig``; removed again when the simulator stops).

Entry points: ``run_simulator`` (async), ``run`` (blocking; ``edgefleet sim run`` calls it) and
``start_in_background`` (a thread of its own; for tests and demos that need a live fleet beside them).

A broker that wants a login gets it from the broker URL (``mqtt://USER:PASSWORD@HOST:PORT``, percent-encoded):
every simulated box logs in with that one login; or, with ``box_logins`` (``edgefleet.box_logins``), each box with its
own account, as on the secured broker (docs/security.md). ``mqtts://`` connects over TLS, verifying the broker with
``ca_file`` and presenting ``cert_file`` where the broker asks for a client certificate: one certificate for every
simulated box (real boxes each have their own). The URL's password is registered with ``credentials.hide_in_logs``,
and the broker is only shown masked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import uvicorn

from edgefleet import topics
from edgefleet.agent.link import DEFAULT_KEEPALIVE_S, BrokerAddress, TlsFiles
from edgefleet.agent.running import APP_CHECK_S
from edgefleet.box_logins import BoxLogin, BoxLoginsError, read_box_logins
from edgefleet.clock import Clock, SystemClock
from edgefleet.credentials import hide_in_logs
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, Inventory, Site, load_inventory
from simulator.boxes import SimulatedBox, build_box
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.lifecycle import NODE_MONITOR_GRACE_S
from simulator.cluster.nodes import ClusterBox
from simulator.cluster.playing import SimulatedClusters
from simulator.cluster.pods import Fate
from simulator.cluster.releases import seeded_images
from simulator.cluster.troubles import ApiTrouble
from simulator.faults import Fault, FaultRejected, FaultRequest, Faults
from simulator.figures import SimulatedFigures
from simulator.inbox import Inbox
from simulator.listening import QuietServer, listen_tcp
from simulator.malformed import malformed_payload
from simulator.networking import Connection, LinkDriver
from simulator.registry import RegistryContent, SimulatedRegistry, release_images, remove_hosts_dir, serve_registry
from simulator.registry import write_hosts_dir as write_registry_hosts
from simulator.scheduling import MAX_JITTER, HeartbeatSchedule
from simulator.sources import NodePodsAppSource, stream
from simulator.threads import LoopThread

log = logging.getLogger(__name__)

DEFAULT_SITES_DIR: Final = "sites"
DEFAULT_RELEASES_DIR: Final = "releases"
DEFAULT_BROKER_URL: Final = "mqtt://127.0.0.1:1883"
DEFAULT_LISTEN: Final = "127.0.0.1:8100"
# Faults end on time to within this; a cut's recovery is what depends on it.
HOUSEKEEPING_INTERVAL_S: Final = 0.2
# The CPU figure in /status is the mean over this many seconds (one sample a second).
CPU_WINDOW_S: Final = 10
# File descriptors beside the boxes' sockets: the control API, its clients, the log, Python's own.
SPARE_FDS: Final = 64
# MQTT's keepalive is a 16-bit number of seconds.
MAX_KEEPALIVE_S: Final = 65_535
# A grace shorter than this would have the kubelets renew faster than the loop can keep up with.
MIN_NODE_GRACE_S: Final = 0.5


class SimulatorError(EdgefleetError):
    """The simulator cannot start as asked; says what is wrong and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """What ``edgefleet sim run`` was asked to play and how; ``check`` says what is out of range."""

    sites_dir: Path = Path(DEFAULT_SITES_DIR)
    # Left out of repr: it may carry the boxes' broker password (``broker()`` shows it masked).
    broker_url: str = field(default=DEFAULT_BROKER_URL, repr=False)
    listen: str = DEFAULT_LISTEN
    sites: tuple[str, ...] = ()
    max_boxes_per_site: int | None = None
    interval_override_s: float | None = None
    keepalive_s: int = DEFAULT_KEEPALIVE_S
    jitter: float = 0.0
    loss: float = 0.0
    seed: int = 0
    # Where the kubeconfig of the simulated clusters goes; None: ``default_kubeconfig`` of the control port.
    kubeconfig: Path | None = None
    # kube-controller-manager's node-monitor grace period; tests shorten it.
    node_grace_s: float = NODE_MONITOR_GRACE_S
    # Whose images the simulated registry serves (beside the seeded apps'), and where its hosts directory goes
    # (None: ``default_registry_hosts`` of the control port).
    releases_dir: Path = Path(DEFAULT_RELEASES_DIR)
    registry_hosts: Path | None = None
    # The DingTalk-like receiver's robot token and signing secret (simulator.inbox); None: any is accepted. Left
    # out of repr: secrets.
    dingtalk_token: str | None = field(default=None, repr=False)
    dingtalk_secret: str | None = field(default=None, repr=False)
    # A mqtts:// broker: the CA to verify it with (None: the system's trust store), and the client certificate and
    # key every simulated box presents where the broker requires one.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Each box's own login (edgefleet.box_logins); None: every box logs in with the broker URL's login, if any.
    box_logins: Path | None = None

    def broker(self) -> BrokerAddress:
        try:
            address = BrokerAddress.parse(self.broker_url)
        except ValueError as exc:
            raise SimulatorError(
                str(exc), "pass --broker mqtt[s]://[USER:PASSWORD@]HOST:PORT or set EDGEFLEET_BROKER_URL"
            ) from exc
        given = [f for f in (self.ca_file, self.cert_file, self.key_file) if f is not None]
        if address.tls is None:
            if given:
                raise SimulatorError(
                    f"--ca-file/--cert-file/--key-file are for TLS, but the broker URL {address} is plain",
                    "use mqtts://HOST:PORT",
                )
            return address
        if (self.cert_file is None) != (self.key_file is None):
            raise SimulatorError("--cert-file and --key-file go together", "pass both, or neither")
        for path in given:
            if not path.is_file():
                raise SimulatorError(f"TLS file {path}: no such file", "make it with 'edgefleet pki issue'")
        return address.with_tls(
            TlsFiles(
                ca_file=str(self.ca_file) if self.ca_file else None,
                cert_file=str(self.cert_file) if self.cert_file else None,
                key_file=str(self.key_file) if self.key_file else None,
            )
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """The one TLS context every box shares (None: plain MQTT); raises SimulatorError on a file it cannot use."""
        tls = self.broker().tls
        if tls is None:
            return None
        try:
            return tls.context()
        except (OSError, ssl.SSLError) as exc:
            raise SimulatorError(
                f"cannot use the TLS files: {exc}", "check --ca-file, --cert-file, --key-file"
            ) from None

    def logins(self, boxes: list[BoxId]) -> dict[str, BoxLogin] | None:
        """Each of ``boxes``' own login, or None without ``box_logins``; a box the file lacks is an error."""
        if self.box_logins is None:
            return None
        try:
            logins = read_box_logins(self.box_logins)
        except BoxLoginsError as exc:
            raise SimulatorError(str(exc), "pass --box-logins FILE or set EDGEFLEET_SIM_BOX_LOGINS") from None
        missing = [box for box in boxes if box not in logins]
        if missing:
            raise SimulatorError(
                f"box logins file {self.box_logins} has no login for {len(missing)} of the boxes played "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
                "add their accounts with 'edgefleet broker box add-all', or play fewer with --site",
            )
        return logins

    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or int(port) > 65_535:
            raise SimulatorError(
                f"listen address {self.listen!r} is not HOST:PORT",
                "pass --listen 127.0.0.1:8100 or set EDGEFLEET_SIM_LISTEN",
            )
        return host, int(port)

    def check(self) -> None:
        """Raise SimulatorError naming the first option that is out of range."""
        self.broker()
        self.listen_address()
        if not 1 <= self.keepalive_s <= MAX_KEEPALIVE_S:
            raise SimulatorError(f"--keepalive must be from 1 to {MAX_KEEPALIVE_S} seconds, got {self.keepalive_s}")
        if not 0.0 <= self.jitter <= MAX_JITTER:
            raise SimulatorError(
                f"--jitter must be from 0 to {MAX_JITTER} (0.2 = +-20% of the interval), got {self.jitter}"
            )
        if not 0.0 <= self.loss <= 1.0:
            raise SimulatorError(f"--loss must be from 0 to 1 (0.01 = 1% of heartbeats), got {self.loss}")
        if self.interval_override_s is not None and not 0.0 < self.interval_override_s <= 3600.0:
            raise SimulatorError(
                f"--interval-override must be more than 0 and at most 3600 seconds, got {self.interval_override_s}"
            )
        if self.max_boxes_per_site is not None and self.max_boxes_per_site < 1:
            raise SimulatorError(f"--max-boxes-per-site must be at least 1, got {self.max_boxes_per_site}")
        if not MIN_NODE_GRACE_S <= self.node_grace_s <= 3600.0:
            raise SimulatorError(
                f"--node-grace must be from {MIN_NODE_GRACE_S} to 3600 seconds (Kubernetes: 50), got {self.node_grace_s}"
            )
        if self.kubeconfig is not None and self.kubeconfig.is_dir():
            raise SimulatorError(
                f"--kubeconfig {self.kubeconfig} is a directory", "pass the path of a file the simulator may overwrite"
            )


def default_registry_hosts(control_port: int) -> Path:
    """Where the registry hosts directory goes when not told: beside the default kubeconfig."""
    return Path(tempfile.gettempdir()) / f"edgefleet-sim-{control_port}.registries"


def default_kubeconfig(control_port: int) -> Path:
    """Where the kubeconfig goes when not told: the temp dir, named after the control API's port, so two
    simulators on one machine do not overwrite each other's."""
    return Path(tempfile.gettempdir()) / f"edgefleet-sim-{control_port}.kubeconfig"


def select_fleet(inventory: Inventory, options: SimulatorOptions) -> Inventory:
    """The part of ``inventory`` the simulator plays: the sites asked for (all by default), each cut down to
    its first ``max_boxes_per_site`` boxes."""
    wanted = [SiteId(s) for s in options.sites] or list(inventory.sites)
    unknown = [s for s in wanted if s not in inventory.sites]
    if unknown:
        raise SimulatorError(
            f"site(s) {', '.join(repr(s) for s in unknown)} not in the inventory at {options.sites_dir}",
            "see the file names in that directory, or 'edgefleet sites list'",
        )
    sites: dict[SiteId, Site] = {}
    boxes = {}
    for site_id in dict.fromkeys(wanted):
        site = inventory.sites[site_id]
        kept = site.boxes[: options.max_boxes_per_site] if options.max_boxes_per_site else site.boxes
        sites[site_id] = replace(site, boxes=kept)
        boxes.update({b: inventory.boxes[b] for b in kept})
    clusters = {
        site.cluster: inventory.clusters[site.cluster] for site in sites.values() if site.cluster in inventory.clusters
    }
    return Inventory(sites=sites, boxes=boxes, clusters=clusters)


def raise_open_file_limit(needed: int) -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (2,000 sockets do not fit the usual soft 1,024); raises
    SimulatorError when even the hard limit is too low. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        raise SimulatorError(
            f"{needed} open files are needed but the hard limit is {hard}",
            "raise it (ulimit -Hn, LimitNOFILE=) or play fewer boxes with --site / --max-boxes-per-site",
        )
    return soft


@dataclass(slots=True)
class Counters:
    heartbeats_sent: int = 0
    heartbeats_lost: int = 0
    malformed_sent: int = 0


@dataclass(slots=True)
class _CpuMeter:
    """CPU use of this process from /proc/self/stat (utime + stime), sampled once a second."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=CPU_WINDOW_S + 1))

    def sample(self) -> None:
        stat = process_stat()
        if stat is not None:
            self.samples.append((time.monotonic(), stat[0]))

    def percent(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return round(100.0 * (c1 - c0) / (t1 - t0), 1) if t1 > t0 else None


_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


def process_stat() -> tuple[float, int] | None:
    """(CPU seconds used, resident bytes) of this process, or None where /proc is missing."""
    try:
        raw = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at field 3: state.
    after = raw[raw.rindex(")") + 2 :].split()
    utime, stime, rss_pages = int(after[11]), int(after[12]), int(after[21])
    return (utime + stime) / _CLOCK_TICKS, rss_pages * _PAGE_SIZE


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class FaultedClusters:
    """The simulator's faults as its clusters feel them (``simulator.cluster.playing.Troubles``), read now."""

    def __init__(self, faults: Faults, clock: Clock, registry: RegistryContent | None = None) -> None:
        self._faults = faults
        self._clock = clock
        self._registry = registry

    def kubelet_silent(self, box: ClusterBox) -> bool:
        return box.box is not None and self._faults.kubelet_silent(BoxId(box.box), self._clock.monotonic())

    def api_trouble(self, cluster: ClusterId) -> ApiTrouble | None:
        return self._faults.api_trouble(cluster, self._clock.monotonic())

    def api_down(self, cluster: ClusterId) -> bool:
        return self._faults.api_down(cluster, self._clock.monotonic())

    def pod_fate(self, box: ClusterBox, images: list[str]) -> Fate:
        if box.box is None:
            return Fate()
        fate = self._faults.pod_fate(BoxId(box.box), images, self._clock.monotonic())
        if fate != Fate() or self._registry is None:
            # A fault names what happens to the pod (a crash-loop fault stands for an image that exists).
            return fate
        # An image of a registry the simulator serves that it does not have cannot be pulled.
        error = next((e for image in images if (e := self._registry.pull_error(image)) is not None), None)
        return Fate(pull_error=error) if error is not None else fate


class Simulation:
    """The simulated fleet while it runs. Lives on one asyncio loop; the control API calls it from there."""

    def __init__(self, fleet: Inventory, options: SimulatorOptions, *, clock: Clock | None = None) -> None:
        self.fleet = fleet
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self.faults = Faults(fleet)
        self.counters = Counters()
        # Every image the release files and the seeded apps name (simulator.registry), served once clusters run.
        self.registry = RegistryContent([*release_images(options.releases_dir), *seeded_images()])
        # The receivers the demo's notifications go to (``edgefleet sim inbox`` reads them).
        self.inbox = Inbox(options.dingtalk_token, options.dingtalk_secret)
        self.clusters = SimulatedClusters(
            fleet,
            clock=self.clock,
            troubles=FaultedClusters(self.faults, self.clock, self.registry),
            grace_s=options.node_grace_s,
            seed=options.seed,
        )
        # Set by ``run_simulator`` once written.
        self.kubeconfig: Path | None = None
        self.registry_hosts: Path | None = None
        self.registries: dict[str, str] = {}
        self.started_at = self.clock.now()
        self._cpu = _CpuMeter()
        self._loss_rng = stream(options.seed, "loss")
        self._malformed_rng = stream(options.seed, "malformed")
        self.driver = LinkDriver(rng=stream(options.seed, "reconnect"))
        broker = options.broker()
        tls_context = options.tls_context()
        logins = options.logins(list(fleet.boxes))
        self.boxes: list[SimulatedBox] = []
        self._by_id: dict[BoxId, tuple[SimulatedBox, Connection]] = {}
        for box_id, box in fleet.boxes.items():
            site = fleet.sites[box.site]
            login = logins[box_id] if logins is not None else None
            sim_box = build_box(
                box,
                broker=broker.with_login(login.username, login.password) if login is not None else broker,
                tls_context=tls_context,
                interval_s=options.interval_override_s or site.interval_s,
                keepalive_s=options.keepalive_s,
                seed=options.seed,
                clock=self.clock,
                skew=self._skew_reader(box_id),
                overheat=self._overheat_reader(box_id),
                apps=NodePodsAppSource(self._pods_reader(box), figures=self._figures_reader(box)),
            )
            self.boxes.append(sim_box)
            self._by_id[box_id] = (sim_box, self.driver.add(sim_box.link))

    def _pods_reader(self, box: Box) -> Callable[[], list[dict[str, Any]] | None]:
        """The pods its cluster runs on the box's node, as edgecore's MetaServer serves them on the box (its local
        copy: a cut site still serves them); None while its edgecore, the MetaServer with it, is down."""
        cluster = self.fleet.sites[box.site].cluster

        def pods() -> list[dict[str, Any]] | None:
            if self.faults.edgecore_down(box.id, self.clock.monotonic()):
                return None
            return self.clusters.node_pods(cluster, box.node_name)

        return pods

    def _figures_reader(self, box: Box) -> SimulatedFigures:
        """The box's apps' figures: its site's baseline, worse by the slow faults on the app's version now."""

        def slowdown(app: str, version: str) -> float:
            return self.faults.slowdown_of(box.id, app, version, self.clock.monotonic())

        return SimulatedFigures(seed=self.options.seed, site=box.site, box=box.id, slowdown=slowdown)

    def _skew_reader(self, box: BoxId) -> Callable[[], float]:
        return lambda: self.faults.skew_of(box, self.clock.monotonic())

    def _overheat_reader(self, box: BoxId) -> Callable[[], dict[int, float]]:
        return lambda: self.faults.overheat_of(box, self.clock.monotonic())

    # --- running -----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, ready: Callable[[], None] | None = None) -> None:
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._send_heartbeats(), name="heartbeats"),
            asyncio.create_task(self._keep_house(), name="housekeeping"),
        ]
        try:
            started = time.monotonic()
            connecting = asyncio.create_task(self.driver.start(), name="connecting")
            stopping = asyncio.create_task(stop.wait(), name="stop")
            tasks += [connecting, stopping]
            # A stop while 2,000 boxes are still being connected must not wait for the last of them.
            await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
            if connecting.done():
                connecting.result()
                log.info(
                    "Made first connection attempt of every simulated box",
                    extra={"boxes": len(self.boxes), "seconds": round(time.monotonic() - started, 2)},
                )
                if ready:
                    ready()
                await stopping
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.driver.close()
            log.info("Stopped simulated boxes", extra={"boxes": len(self.boxes)})

    async def _send_heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        schedule = HeartbeatSchedule(
            [b.reporter.interval_s for b in self.boxes],
            start=loop.time(),
            jitter=self.options.jitter,
            rng=stream(self.options.seed, "jitter"),
        )
        # Between heartbeats each box's agent glances at its apps every APP_CHECK_S and sends its heartbeat at once
        # when their states changed, as the real agent does (``edgefleet.agent.running``); the grid stays.
        glances = HeartbeatSchedule(
            [min(APP_CHECK_S, b.reporter.interval_s) for b in self.boxes],
            start=loop.time(),
            jitter=self.options.jitter,
            rng=stream(self.options.seed, "glances"),
        )
        while True:
            now = loop.time()
            for index in schedule.pop_due(now):
                self._beat_or_log(self.boxes[index])
            for index in glances.pop_due(now):
                if self.boxes[index].apps_changed():
                    self._beat_or_log(self.boxes[index])
            due = min((d for d in (schedule.next_due(), glances.next_due()) if d is not None), default=None)
            await asyncio.sleep(max(0.0, (due if due is not None else loop.time() + 1.0) - loop.time()))

    def _beat_or_log(self, sim_box: SimulatedBox) -> None:
        try:
            self._beat(sim_box)
        except Exception:
            log.exception("Failed to send heartbeat of box", extra={"box": sim_box.box.id})

    def _beat(self, sim_box: SimulatedBox) -> None:
        box_id = sim_box.box.id
        now = self.clock.monotonic()
        if self.faults.is_stopped(box_id, now):
            return  # a hung app: no heartbeat, the connection carries on
        heartbeat = sim_box.heartbeat()
        if self.options.loss and self._loss_rng.random() < self.options.loss:
            self.counters.heartbeats_lost += 1
            return
        variant = self.faults.take_malformed(box_id, now)
        if variant is not None:
            payload = malformed_payload(variant, heartbeat, rng=self._malformed_rng, other_box=self._other_box(box_id))
            sim_box.link.publish_raw(topics.heartbeat_topic(box_id), payload)
            self.counters.malformed_sent += 1
            return
        if self._by_id[box_id][1].frozen:
            # Cut off, the agent's link has not noticed yet; its buffer (bounded, unlike paho's queue) holds
            # the heartbeat and BoxLink flushes it after the reconnect.
            sim_box.reporter.keep(heartbeat)
        else:
            sim_box.link.send(heartbeat)
        sim_box.heartbeats_sent += 1
        self.counters.heartbeats_sent += 1

    def _other_box(self, box: BoxId) -> str:
        """The box a payload of the ``other-box`` variant claims: the next one of the same site, else any."""
        site_boxes = self.fleet.sites[self.fleet.boxes[box].site].boxes
        pool = site_boxes if len(site_boxes) > 1 else tuple(self.fleet.boxes)
        others = [b for b in pool if b != box]
        if not others:
            return "impostor-box"
        position = pool.index(box) if box in pool else 0
        return others[position % len(others)]

    async def _keep_house(self) -> None:
        last_cpu_sample = 0.0
        while True:
            self._end(self.faults.expire(self.clock.monotonic()))
            if time.monotonic() - last_cpu_sample >= 1.0:
                self._cpu.sample()
                last_cpu_sample = time.monotonic()
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    # --- faults ------------------------------------------------------------------------------------------------

    def inject(self, request: FaultRequest) -> Fault:
        """Check and apply a fault; raises FaultRejected (invalid, not-found, conflict)."""
        checked = self.faults.check(request)
        if checked.kind == "drop":
            assert checked.box is not None
            if self._by_id[checked.box][1].sock is None:
                raise FaultRejected(
                    "conflict", f"box {checked.box!r} has no connection to drop now (it is reconnecting)", field="box"
                )
        fault = self.faults.add(request, now=self.clock.monotonic())
        if fault.kind == "drop" and fault.box is not None:
            self.driver.drop(self._by_id[fault.box][1], away_s=request.seconds)
        elif fault.kind == "cut" and fault.site is not None:
            for box_id in self.fleet.sites[fault.site].boxes:
                self.driver.freeze(self._by_id[box_id][1])
        log.info(
            "Injected fault",
            extra={
                "fault": fault.id,
                "kind": fault.kind,
                "site": fault.site,
                "box": fault.box,
                "seconds": request.seconds,
            },
        )
        return fault

    def clear(self, *, fault_id: str | None = None, box: str | None = None, site: str | None = None) -> list[Fault]:
        cleared = self.faults.clear(fault_id=fault_id, box=box, site=site)
        self._end(cleared)
        return cleared

    def _end(self, faults: list[Fault]) -> None:
        now = self.clock.monotonic()
        for fault in faults:
            log.info("Ended fault", extra={"fault": fault.id, "kind": fault.kind, "site": fault.site, "box": fault.box})
            if fault.kind == "cut" and fault.site is not None and not self.faults.is_cut(fault.site, now):
                for box_id in self.fleet.sites[fault.site].boxes:
                    self.driver.thaw(self._by_id[box_id][1])

    # --- status ------------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        sites = [self._site_summary(site, now) for site in self.fleet.sites]
        stat = process_stat()
        counters = self.driver.counters
        return {
            "broker": str(self.options.broker()),
            "uptime_s": round(self.clock.now() - self.started_at, 1),
            "boxes": {
                "total": len(self.boxes),
                "connected": sum(s["connected"] for s in sites),
                "stopped": sum(s["stopped"] for s in sites),
                "cut": sum(s["boxes"] for s in sites if s["cut"]),
            },
            "heartbeats": {
                "sent": self.counters.heartbeats_sent,
                "lost": self.counters.heartbeats_lost,
                "malformed": self.counters.malformed_sent,
            },
            "connections": {
                "connects": counters.connects,
                "losses": counters.losses,
                "drops": counters.drops,
                "connect_failures": counters.connect_failures,
            },
            "faults_active": len(self.faults.active(now)),
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig is not None else None,
            "registry_hosts": str(self.registry_hosts) if self.registry_hosts is not None else None,
            "registries": dict(self.registries),
            "clusters": self.clusters.status(),
            "process": {
                "pid": os.getpid(),
                "cpu_percent": self._cpu.percent(),
                "cpu_seconds": round(stat[0], 2) if stat else None,
                "rss_bytes": stat[1] if stat else None,
                "open_fds": _open_fds(),
            },
            "sites": sites,
        }

    def site_status(self, site: str) -> dict[str, Any]:
        """One site's summary and its boxes; raises FaultRejected (not-found) for a site not played."""
        if SiteId(site) not in self.fleet.sites:
            raise FaultRejected("not-found", f"no site {site!r} in the simulated fleet", field="site")
        now = self.clock.monotonic()
        summary = self._site_summary(SiteId(site), now)
        summary["box_list"] = [self._box_row(b, now) for b in self.fleet.sites[SiteId(site)].boxes]
        return summary

    def _site_summary(self, site: SiteId, now: float) -> dict[str, Any]:
        rows = [self._by_id[b] for b in self.fleet.sites[site].boxes]
        return {
            "site": site,
            "boxes": len(rows),
            # A cut-off box's link has not noticed yet; from the fleet's side it is gone.
            "connected": sum(1 for sim_box, conn in rows if sim_box.link.connected and not conn.frozen),
            "stopped": sum(1 for sim_box, _ in rows if self.faults.is_stopped(sim_box.box.id, now)),
            "cut": self.faults.is_cut(site, now),
            "heartbeats_sent": sum(sim_box.heartbeats_sent for sim_box, _ in rows),
        }

    def _box_row(self, box: BoxId, now: float) -> dict[str, Any]:
        sim_box, conn = self._by_id[box]
        return {
            "box": box,
            "role": sim_box.box.role,
            "connected": sim_box.link.connected and not conn.frozen,
            "stopped": self.faults.is_stopped(box, now),
            "frozen": conn.frozen,
            "session": sim_box.reporter.session,
            "seq": sim_box.reporter.seq,
            "buffered": len(sim_box.reporter.buffer),
            "heartbeats_sent": sim_box.heartbeats_sent,
            "skew_s": self.faults.skew_of(box, now),
            # Its node's kubelet cannot post (edgecore down, or the site cut): Kubernetes will lose the node.
            "kubelet_silent": self.faults.kubelet_silent(box, now),
        }


def _listen(options: SimulatorOptions) -> socket.socket:
    host, port = options.listen_address()
    try:
        return listen_tcp(host, port)
    except OSError as exc:
        raise SimulatorError(
            f"cannot listen on {options.listen}: {exc.strerror or exc}",
            "pass --listen HOST:PORT or set EDGEFLEET_SIM_LISTEN",
        ) from exc


async def run_simulator(
    options: SimulatorOptions,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[Simulation, str], None] | None = None,
) -> None:
    """Play the fleet until ``stop`` is set (or SIGINT/SIGTERM, when running in the main thread).
    ``ready(simulation, control_url)`` is called once every box has made its first connection attempt."""
    from simulator.control import create_control_app

    options.check()
    hide_in_logs(options.broker().password)
    fleet = select_fleet(load_inventory(options.sites_dir), options)
    raise_open_file_limit(len(fleet.boxes) + SPARE_FDS)
    # Before listening: a TLS file or a logins file it cannot use is refused with nothing left open.
    simulation = Simulation(fleet, options)
    listener = _listen(options)
    host, port = listener.getsockname()[:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    config = uvicorn.Config(
        create_control_app(simulation),
        log_config=None,
        access_log=False,
        lifespan="off",
        http="h11",
        ws="none",
    )
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="control-api")

    async def stop_serving() -> None:
        # The API winds down (~0.2 s) while the boxes say goodbye, not after them.
        await stop.wait()
        server.should_exit = True

    stopping_api = asyncio.create_task(stop_serving(), name="control-api-stop")
    log.info(
        "Started simulator",
        extra={"boxes": len(fleet.boxes), "sites": len(fleet.sites), "broker": str(options.broker()), "control": url},
    )
    registries_stop = asyncio.Event()
    registries: list[asyncio.Task[None]] = []
    try:
        # Before the kubeconfig: whoever waits for the kubeconfig (scripts/demo) finds the registry hosts written.
        await _serve_registries(simulation, registries_stop, registries)
        if simulation.registries:
            simulation.registry_hosts = _write_registry_hosts(
                options.registry_hosts or default_registry_hosts(port), simulation.registries
            )
            log.info(
                "Wrote registry hosts of the simulated registry",
                extra={"registry_hosts": str(simulation.registry_hosts), "hosts": ",".join(simulation.registries)},
            )
        await simulation.clusters.start()
        servers = simulation.clusters.servers()
        if servers:
            simulation.kubeconfig = _write_kubeconfig(options.kubeconfig or default_kubeconfig(port), servers)
            log.info(
                "Wrote kubeconfig of the simulated clusters",
                extra={"kubeconfig": str(simulation.kubeconfig), "contexts": ",".join(servers)},
            )
        await simulation.run(stop, ready=(lambda: ready(simulation, url)) if ready else None)
    finally:
        server.should_exit = True
        stopping_api.cancel()
        registries_stop.set()
        await asyncio.gather(serving, stopping_api, *registries, return_exceptions=True)
        await simulation.clusters.close()
        if simulation.kubeconfig is not None:
            # Its URLs die with the simulator; a later one writes its own.
            simulation.kubeconfig.unlink(missing_ok=True)
        if simulation.registry_hosts is not None:
            remove_hosts_dir(simulation.registry_hosts, simulation.registries)
        listener.close()
        if in_main_thread:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def _write_kubeconfig(path: Path, servers: dict[str, str]) -> Path:
    try:
        return write_kubeconfig(path, servers)
    except OSError as exc:
        raise SimulatorError(
            f"cannot write the kubeconfig {path}: {exc.strerror or exc}", "pass --kubeconfig PATH somewhere writable"
        ) from exc


async def _serve_registries(simulation: Simulation, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Serve one simulated registry per registry host of the simulation's images (each task added to ``tasks``,
    for the caller to await once ``stop`` is set); returns once each listens (its URL in
    ``simulation.registries``)."""
    for host in sorted(simulation.registry.hosts):

        def listening(url: str, host: str = host) -> None:
            simulation.registries[host] = url

        registry = SimulatedRegistry(simulation.registry, host)
        tasks.append(asyncio.create_task(serve_registry(registry, stop=stop, ready=listening), name=f"registry-{host}"))
    while len(simulation.registries) < len(tasks) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    for task in tasks:
        if task.done() and task.exception() is not None:
            raise SimulatorError(f"cannot serve the simulated registry: {task.exception()}")


def _write_registry_hosts(path: Path, servers: dict[str, str]) -> Path:
    try:
        return write_registry_hosts(path, servers)
    except OSError as exc:
        raise SimulatorError(
            f"cannot write the registry hosts directory {path}: {exc.strerror or exc}",
            "pass --registry-hosts DIR somewhere writable",
        ) from exc


def run(options: SimulatorOptions) -> None:
    """Play the fleet until SIGINT or SIGTERM (``edgefleet sim run``)."""
    asyncio.run(run_simulator(options))


class BackgroundSimulator(LoopThread):
    """A simulator running in a thread of its own with its own event loop; ``stop()`` ends it cleanly."""

    def __init__(self, options: SimulatorOptions) -> None:
        super().__init__(thread_name="edgefleet-simulator", what="the simulator")
        self.options = options
        self.simulation: Simulation | None = None

    async def serve(self, stop: asyncio.Event) -> None:
        await run_simulator(self.options, stop=stop, ready=self._on_ready)

    def _on_ready(self, simulation: Simulation, url: str) -> None:
        self.simulation = simulation
        self.served_at(url)

    def start(self, *, timeout_s: float = 60.0) -> BackgroundSimulator:
        if not self.start_thread(timeout_s):
            self.stop()
            raise TimeoutError(f"the simulator was not ready within {timeout_s} s")
        error = self.take_error()
        if error is not None:
            raise error
        return self

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the simulator's loop and return its result (for tests that look inside)."""
        return self.run_on_loop(function, timeout_s=10)

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop the boxes cleanly and wait for the thread; raises what the simulator died of, if it did."""
        self.stop_thread(timeout_s)
        error = self.take_error()
        if error is not None:
            raise error


def start_in_background(options: SimulatorOptions, *, timeout_s: float = 60.0) -> BackgroundSimulator:
    """Start a simulator in a thread and wait until its boxes are connecting and its control API serves."""
    return BackgroundSimulator(options).start(timeout_s=timeout_s)
