"""Agent footprint: resident memory and CPU of the real box agent, against prometheus-node-exporter on the same box.

Starts a Mosquitto of its own on a free loopback port and a subscriber that counts the agent's heartbeats, then:
1. runs the agent (``python -m edgefleet.cli agent run``, GPU probe on, an apps file) at a 0.1 s interval and takes
   its CPU time (utime + stime from /proc/<pid>/stat) over a window after start-up: CPU per heartbeat;
2. runs it at the default interval (10 s) for a few heartbeats and reads VmRSS from /proc/<pid>/status;
3. starts Debian's prometheus-node-exporter on a free loopback port, scrapes /metrics a few times and reads its
   VmRSS and CPU per scrape.
Prints a table and PASS/FAIL against the issue's target (agent <= 30 MB resident).

"GPU probe on" means the agent's real ``NvmlProbe``, which loads NVML if the machine has it. On a machine without
an NVIDIA driver it finds no library, reports no GPU and does not try again for a while: the figures are then
those of an agent that never reads a GPU, and the output says so (NVML absent, and why). ``--gpu`` is for a
machine with NVIDIA GPUs: it refuses to run unless NVML loads and every GPU is read (the agent's own
``edgefleet agent sample`` first, cross-checked with ``nvidia-smi -L`` where present), and checks that the measured
agent's heartbeats carry every GPU.

    scripts/bench agent_footprint [--gpu] [--cpu-seconds 10] [--rss-heartbeats 3]   # installs what is missing
    .venv/bin/python bench/agent_footprint.py [--gpu] [--cpu-seconds 10] [--rss-heartbeats 3]

Needs Mosquitto and prometheus-node-exporter (Debian packages ``mosquitto`` and ``prometheus-node-exporter``;
``scripts/bench`` installs them). Results: docs/performance.md, section "Agent footprint".
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet import messages, topics  # noqa: E402
from tests.support.peers import free_port, mosquitto, wait_for  # noqa: E402

TARGET_RSS_MB = 30.0
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
# Heartbeats left out at the start of the CPU window: imports and the first connection are a one-off cost.
WARMUP_HEARTBEATS = 10
NODE_EXPORTER_SCRAPES = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BOX = "bench-gpu-01"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    # Fields after the command name (which may hold spaces, hence the split at the last ')'): utime is field 14,
    # stime field 15 of stat(5), i.e. index 11 and 12 after the ')'.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class GpuFinding:
    """What the agent's GPU probe reported: whether NVML answered, why not, and the GPUs it read."""

    available: bool
    reason: str | None
    driver_version: str | None
    gpus: tuple[str, ...]

    @classmethod
    def of(cls, report: messages.GpuReport) -> GpuFinding:
        return cls(report.available, report.reason, report.driver_version, tuple(g.name for g in report.gpus))

    def describe(self) -> str:
        if not self.available:
            return f"NVML absent or unusable ({self.reason})"
        names = ", ".join(sorted(set(self.gpus)))
        unread = f"; {self.reason}" if self.reason else ""
        return (
            f"NVML loaded, driver {self.driver_version}, {len(self.gpus)} GPU(s) read each heartbeat ({names}){unread}"
        )


def probe_gpus() -> GpuFinding:
    """One sample of the agent's own GPU probe, by ``edgefleet agent sample`` (GPU probe on, nothing connected)."""
    command = [sys.executable, "-m", "edgefleet.cli", "agent", "sample", "--box", BOX, "--site", "bench-site"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    sample = subprocess.run(
        [*command, "--log-level", "error"], cwd=REPO, env=env, capture_output=True, check=False, timeout=60
    )
    if sample.returncode != 0:
        error = sample.stderr.decode(errors="replace").strip().splitlines() or ["(nothing on stderr)"]
        raise SystemExit(f"error: 'edgefleet agent sample' failed (exit status {sample.returncode}): {error[-1]}")
    return GpuFinding.of(messages.decode_heartbeat(sample.stdout).gpu)


def gpu_problem(finding: GpuFinding, listed: int | None) -> str | None:
    """Why ``--gpu`` cannot measure an agent that reads every GPU here; None when it can. ``listed``: the GPUs
    ``nvidia-smi -L`` lists, None where it is not installed."""
    if not finding.available:
        return f"--gpu needs NVML and a GPU, and the agent's GPU probe says: {finding.reason}"
    if finding.reason:
        return f"--gpu needs every GPU read, and the agent's GPU probe says: {finding.reason}"
    if not finding.gpus:
        return "--gpu needs a GPU, and NVML found none on this machine"
    if listed is not None and listed != len(finding.gpus):
        return (
            f"--gpu needs every GPU read: nvidia-smi -L lists {listed}, the agent's GPU probe read {len(finding.gpus)}"
        )
    return None


def gpu_note(seen: GpuFinding) -> str:
    """The line under the figures that says what "GPU probe on" meant in this run."""
    if seen.available:
        return f"GPU probe on: {seen.describe()}."
    return (
        "GPU probe on, but NVML absent: the agent found no usable NVIDIA driver and read no GPU "
        f"({seen.reason}). These figures are those of a box without GPUs; run with --gpu on a machine "
        "with NVIDIA GPUs to measure one that reads them."
    )


def nvidia_smi_gpus() -> int | None:
    """How many GPUs ``nvidia-smi -L`` lists; None where nvidia-smi is not installed or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


class Counter:
    """Counts the heartbeats the broker delivers for one box, and keeps the latest."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self.latest: bytes | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topics.heartbeat_topic(BOX), qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self._ready.is_set, what="subscriber ready")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.count += 1
            self.latest = message.payload

    def value(self) -> int:
        with self._lock:
            return self.count

    def gpu(self) -> GpuFinding:
        """What the latest heartbeat says about the box's GPUs."""
        with self._lock:
            latest = self.latest
        if latest is None:
            raise RuntimeError("no heartbeat received yet")
        return GpuFinding.of(messages.decode_heartbeat(latest).gpu)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_agent(broker_url: str, interval: float, apps_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    args = [sys.executable, "-m", "edgefleet.cli", "agent", "run", "--box", BOX, "--site", "bench-site"]
    args += ["--broker", broker_url, "--interval", str(interval), "--apps-file", str(apps_file), "--log-level", "error"]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure_cpu(
    broker_url: str, counter: Counter, apps_file: Path, seconds: float
) -> tuple[float, int, float, GpuFinding]:
    """(CPU us per heartbeat, heartbeats in the window, window seconds, what its last heartbeat said of the GPUs)
    at a 0.1 s interval."""
    agent = start_agent(broker_url, 0.1, apps_file)
    try:
        start_count = counter.value()
        wait_for(lambda: counter.value() >= start_count + WARMUP_HEARTBEATS, timeout=30, what="warm-up heartbeats")
        cpu0, n0, t0 = cpu_s(agent.pid), counter.value(), time.monotonic()
        time.sleep(seconds)  # the measurement window itself
        cpu1, n1, t1 = cpu_s(agent.pid), counter.value(), time.monotonic()
    finally:
        stop(agent)
    beats = n1 - n0
    return (cpu1 - cpu0) / max(beats, 1) * 1e6, beats, t1 - t0, counter.gpu()


def measure_rss(broker_url: str, counter: Counter, apps_file: Path, heartbeats: int) -> tuple[float, float, GpuFinding]:
    """(VmRSS MB after ``heartbeats`` heartbeats at the default interval, CPU seconds of the whole run, what its
    last heartbeat said of the GPUs)."""
    agent = start_agent(broker_url, 10.0, apps_file)
    try:
        start_count = counter.value()
        wait_for(lambda: counter.value() >= start_count + heartbeats, timeout=10.0 * heartbeats + 30, what="heartbeats")
        return rss_mb(agent.pid), cpu_s(agent.pid), counter.gpu()
    finally:
        stop(agent)


def measure_node_exporter(directory: Path) -> tuple[float, float, int]:
    """(VmRSS MB after a few scrapes, CPU ms per scrape, bytes of one scrape) of prometheus-node-exporter."""
    port = free_port()
    exporter = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", f"--collector.textfile.directory={directory}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> bytes:
        with opener.open(url, timeout=10) as response:
            body: bytes = response.read()
            return body

    try:

        def answers() -> bool:
            try:
                scrape()
            except OSError:
                return False
            return True

        wait_for(answers, timeout=20, what="node-exporter answering")
        cpu0 = cpu_s(exporter.pid)
        size = 0
        for _ in range(NODE_EXPORTER_SCRAPES):
            size = len(scrape())
        cpu1 = cpu_s(exporter.pid)
        return rss_mb(exporter.pid), (cpu1 - cpu0) / NODE_EXPORTER_SCRAPES * 1e3, size
    finally:
        stop(exporter)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="CPU window at a 0.1 s interval")
    parser.add_argument("--rss-heartbeats", type=int, default=3, help="heartbeats at the default interval before RSS")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="on a machine with NVIDIA GPUs: require the agent to load NVML and read every GPU each heartbeat",
    )
    args = parser.parse_args()
    found = probe_gpus()
    if args.gpu:
        problem = gpu_problem(found, nvidia_smi_gpus())
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if not Path(NODE_EXPORTER).exists():
        print(
            f"error: {NODE_EXPORTER} is missing: run 'scripts/bench agent_footprint' (installs it) or "
            "'apt-get install prometheus-node-exporter'",
            file=sys.stderr,
        )
        return 2
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("error: mosquitto is missing: apt-get install mosquitto", file=sys.stderr)
        return 2
    print(f"Agent GPU probe (NvmlProbe) on this machine: {found.describe()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        apps_file = directory / "apps.json"
        apps_file.write_text(
            '{"apps": [{"name": "scan-upload", "version": "2.4.1", "state": "running"},'
            ' {"name": "sorting-recognition", "version": "1.9.0", "state": "running"},'
            ' {"name": "label-print", "version": "0.3.2", "state": "stopped"}]}'
        )
        with mosquitto(directory) as broker:
            counter = Counter(broker.port)
            try:
                print(f"Agent at a 0.1 s interval for {args.cpu_seconds:g} s ...", flush=True)
                cpu_us, beats, window, cpu_gpus = measure_cpu(broker.url, counter, apps_file, args.cpu_seconds)
                print(f"Agent at the default 10 s interval for {args.rss_heartbeats} heartbeats ...", flush=True)
                agent_rss, agent_cpu_total, rss_gpus = measure_rss(broker.url, counter, apps_file, args.rss_heartbeats)
            finally:
                counter.close()
        print("prometheus-node-exporter, a few scrapes ...", flush=True)
        exporter_rss, exporter_cpu_ms, scrape_bytes = measure_node_exporter(directory)

    # The measured agents must have seen what the sample saw: with --gpu, every GPU in every run.
    for run, seen in (("CPU", cpu_gpus), ("memory", rss_gpus)):
        if args.gpu and (not seen.available or seen.reason or len(seen.gpus) != len(found.gpus)):
            print(
                f"error: --gpu: the agent of the {run} run did not read every GPU ({len(found.gpus)}): "
                f"its heartbeat says {seen.describe()}",
                file=sys.stderr,
            )
            return 2
    passed = agent_rss <= TARGET_RSS_MB
    print()
    print(f"{'figure':<44} {'value':>12}")
    print(f"{'-' * 44} {'-' * 12}")
    nvml = f"{len(rss_gpus.gpus)} GPU(s) read" if rss_gpus.available else "absent"
    print(f"{'agent GPU probe on, NVML':<44} {nvml:>12}")
    print(f"{'agent resident memory (VmRSS), MB':<44} {agent_rss:>12.1f}")
    print(f"{'node-exporter resident memory (VmRSS), MB':<44} {exporter_rss:>12.1f}")
    print(f"{'ratio agent / node-exporter':<44} {agent_rss / exporter_rss:>12.2f}")
    print(f"{'agent CPU per heartbeat, us':<44} {cpu_us:>12.0f}")
    print(f"{'  (heartbeats in the window / seconds)':<44} {f'{beats} / {window:.1f}':>12}")
    print(f"{'agent CPU, whole default-interval run, ms':<44} {agent_cpu_total * 1e3:>12.0f}")
    print(f"{'node-exporter CPU per scrape, ms':<44} {exporter_cpu_ms:>12.1f}")
    print(f"{'  (bytes per scrape)':<44} {scrape_bytes:>12}")
    print()
    print(gpu_note(rss_gpus))
    verdict = "PASS" if passed else "FAIL"
    print(f"{verdict}: agent {agent_rss:.1f} MB resident (GPU probe on, NVML {nvml}), target <= {TARGET_RSS_MB:g} MB")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
