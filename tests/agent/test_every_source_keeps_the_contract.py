"""Every host probe, GPU probe and apps source, the agent's and the simulator's alike, keeps the same contract
(``edgefleet.agent.sources``): it never raises; what it reports goes into a heartbeat that the ingest's own decoder
reads back unchanged; its figures are in their units and ranges; and every word it sends (throttle reasons, app
states, the apps source) is one docs/protocol.md lists. A double that drifts from the real thing - the simulator
spelling a throttle reason its own way - fails here, and so does a real source that leaves the documented words.

Each source runs in the states it can be in (GPUs, no driver, no GPU; a good apps file, a broken one, a MetaServer
that is down...), a few samples each, all through the same checks."""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args

import pynvml
import pytest

from edgefleet.agent.apps import FIGURES_PORT_ANNOTATION, MAX_APPS, FileAppSource, MetaServerAppSource, NoAppSource
from edgefleet.agent.gpu import NoGpuProbe, NvmlProbe
from edgefleet.agent.probes import ProcHostProbe
from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.sources import AppSource, GpuProbe, HostProbe
from edgefleet.agent.throttle_reasons import SW_POWER_CAP, SW_THERMAL_SLOWDOWN, THROTTLE_REASONS
from edgefleet.clock import FakeClock
from edgefleet.cloud.rollouts.gates import FIGURES as GATE_FIGURES
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box, GpuSpec
from edgefleet.messages import (
    FIGURE_NAME_PATTERN,
    AppReport,
    AppRunState,
    AppState,
    GpuReport,
    GpuSample,
    Heartbeat,
    HostSample,
    decode_heartbeat,
    encode,
)
from simulator.figures import SHAPES as SIMULATED_FIGURES
from simulator.figures import SimulatedFigures
from simulator.sources import NodePodsAppSource, SimulatedAppSource, SimulatedGpuProbe, SimulatedHostProbe
from tests.agent.doubles import LIBRARY_NOT_FOUND, POD_LIST, FakeGpu, FakeNvml, serve_metaserver, serve_metrics
from tests.support.peers import free_port

S = TypeVar("S", HostProbe, GpuProbe, AppSource)
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SAMPLES = 3
SEED = 11
GPU_BOX = Box(
    BoxId("s-gpu-01"), SiteId("s"), "gpu-box", "R750xa", GpuSpec(model="NVIDIA L4", count=2, driver_version="550.90.07")
)
EDGE_NODE = Box(BoxId("s-edge-01"), SiteId("s"), "edge-node", "XR11", None)
CLUSTER_NODE = Box(BoxId("c-cp-01"), SiteId("c"), "cluster-node", "R660", None)
# Plausible physical bounds: a reading outside them is a unit mistake (kelvin, milliwatts), not a hot GPU.
GPU_TEMPERATURE_C = (-40.0, 130.0)
GPU_POWER_MAX_W = 1500.0


# --- what docs/protocol.md says ------------------------------------------------------------------------------


def doc() -> str:
    return DOC.read_text()


def doc_row(field: str) -> str:
    """The meaning column of the heartbeat table's row for ``field``."""
    match = re.search(rf"^\| `{field}` \| (.*) \|$", doc(), re.MULTILINE)
    assert match, f"docs/protocol.md has no heartbeat table row for `{field}`"
    return match.group(1)


def quoted(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def documented_throttle_reasons() -> list[str]:
    match = re.search(r"`throttle_reasons` are NVML's clock event reasons: (.*?); a bit", doc(), re.DOTALL)
    assert match, "docs/protocol.md no longer lists the throttle reasons"
    return quoted(match.group(1))


def documented_app_sources() -> list[re.Pattern[str]]:
    """The forms of ``apps.source``, ``<...>`` standing for any text."""
    match = re.search(r"`source` \((.*?)\)", doc_row("apps"))
    assert match, "docs/protocol.md no longer lists the apps sources"
    return [re.compile(re.sub("<[^>]+>", ".+", re.escape(form))) for form in quoted(match.group(1))]


def documented_app_states() -> list[str]:
    match = re.search(r"`state` \((.*?)\)", doc_row("apps"))
    assert match, "docs/protocol.md no longer lists the app states"
    return quoted(match.group(1))


def test_the_docs_list_the_words_the_code_sends() -> None:
    assert documented_throttle_reasons() == [name for _, name in THROTTLE_REASONS]
    assert documented_app_states() == list(get_args(AppRunState))
    assert len(documented_app_sources()) >= 3


def test_the_docs_name_every_field_of_the_messages() -> None:
    """Every field of each section is named in its heartbeat table row, in the message's order."""

    def named(text: str, fields: tuple[str, ...]) -> list[str]:
        words = [
            w for word in quoted(text) for w in (("load1", "load5", "load15") if word == "load1/5/15" else (word,))
        ]
        return [w for w in words if w in fields]

    gpu, _, per_gpu = doc_row("gpu").partition("per GPU")
    apps, apps_field, per_app = doc_row("apps").partition("`apps`:")
    for text, struct in (
        (doc_row("host"), HostSample),
        (gpu, GpuReport),
        (per_gpu, GpuSample),
        (apps + apps_field, AppReport),
        (per_app, AppState),
    ):
        assert named(text, struct.__struct_fields__) == list(struct.__struct_fields__), struct.__name__


# --- the sources, each in the states it can be in ------------------------------------------------------------


@dataclass(frozen=True)
class Case(Generic[S]):
    """A source built for one test by ``build(stack, tmp_path)`` (the stack closes what it opens), with what must
    show in its reports. Typed by the seam, so mypy checks that every source has the seam's shape too."""

    build: Callable[[ExitStack, Path], S]
    throttles: bool = False  # a GPU must show a throttle reason: the spelling check is not vacuous for this source
    figures: bool = False  # an app must show figures: the figure checks are not vacuous for this source


def _apps_file(text: str) -> Callable[[ExitStack, Path], FileAppSource]:
    def build(stack: ExitStack, tmp_path: Path) -> FileAppSource:
        path = tmp_path / "apps"
        path.write_text(text)
        return FileAppSource(path)

    return build


def _metaserver(stack: ExitStack, tmp_path: Path) -> MetaServerAppSource:
    url, _ = stack.enter_context(serve_metaserver())
    return MetaServerAppSource(url)


def _metaserver_with_figures(stack: ExitStack, tmp_path: Path) -> MetaServerAppSource:
    """A MetaServer whose scan-upload pods name a metrics port: one served by the app, one where nothing listens."""
    port, _ = stack.enter_context(serve_metrics())
    pods = copy.deepcopy(POD_LIST)
    served = next(p for p in pods["items"] if p["metadata"]["name"].startswith("scan-upload"))
    down = copy.deepcopy(served)
    for pod, to in ((served, port), (down, free_port())):
        pod["metadata"]["annotations"] = {FIGURES_PORT_ANNOTATION: str(to)}
        pod["status"]["podIP"] = "127.0.0.1"
    down["metadata"]["name"] = "scan-upload-down"
    pods["items"].append(down)
    url, _ = stack.enter_context(serve_metaserver(pods))
    return MetaServerAppSource(url)


def _node_pods_with_figures(slowdown: float) -> Callable[[ExitStack, Path], NodePodsAppSource]:
    def build(stack: ExitStack, tmp_path: Path) -> NodePodsAppSource:
        figures = SimulatedFigures(seed=SEED, site="s", box="s-gpu-01", slowdown=lambda app, version: slowdown)
        return NodePodsAppSource(_seeded_pods, figures=figures)

    return build


def _installed_nvml(stack: ExitStack, tmp_path: Path) -> NvmlProbe:
    """The installed pynvml: no driver on a machine without GPUs, the real GPUs on one with them."""
    probe = NvmlProbe()
    stack.callback(probe.close)
    return probe


HOST_PROBES: dict[str, Case[HostProbe]] = {
    "proc": Case(lambda stack, tmp: ProcHostProbe()),
    "proc-unreadable": Case(lambda stack, tmp: ProcHostProbe(tmp / "no-proc", disk_path=str(tmp / "no-disk"))),
    "simulated-gpu-box": Case(lambda stack, tmp: SimulatedHostProbe(GPU_BOX, seed=SEED)),
    "simulated-edge-node": Case(lambda stack, tmp: SimulatedHostProbe(EDGE_NODE, seed=SEED)),
    "simulated-cluster-node": Case(lambda stack, tmp: SimulatedHostProbe(CLUSTER_NODE, seed=SEED)),
}

GPU_PROBES: dict[str, Case[GpuProbe]] = {
    "nvml-gpus": Case(
        lambda stack, tmp: NvmlProbe(
            nvml=FakeNvml(
                [
                    FakeGpu(reasons=SW_POWER_CAP | SW_THERMAL_SLOWDOWN),
                    FakeGpu(uuid="GPU-2", reasons=0x1000, ecc=None, broken={"power", "temperature"}),
                ]
            )
        ),
        throttles=True,
    ),
    "nvml-a-gpu-lost": Case(lambda stack, tmp: NvmlProbe(nvml=FakeNvml([FakeGpu(), FakeGpu(lost=True)]))),
    "nvml-no-gpu": Case(lambda stack, tmp: NvmlProbe(nvml=FakeNvml([]))),
    "nvml-no-driver": Case(lambda stack, tmp: NvmlProbe(nvml=FakeNvml([], init_error=LIBRARY_NOT_FOUND))),
    "nvml-installed-pynvml": Case(_installed_nvml),
    "no-gpu": Case(lambda stack, tmp: NoGpuProbe()),
    "simulated-gpu-box": Case(lambda stack, tmp: SimulatedGpuProbe(GPU_BOX, seed=SEED)),
    "simulated-overheated": Case(
        lambda stack, tmp: SimulatedGpuProbe(GPU_BOX, seed=SEED, overheat=lambda: {1: 97.0}), throttles=True
    ),
    "simulated-edge-node": Case(lambda stack, tmp: SimulatedGpuProbe(EDGE_NODE, seed=SEED)),
}

APP_SOURCES: dict[str, Case[AppSource]] = {
    "file-json": Case(
        _apps_file('{"apps": [{"name": "scan-upload", "version": "2.4.1", "state": "running", "detail": "ok"}]}')
    ),
    "file-json-figures": Case(
        _apps_file(
            '{"apps": [{"name": "scan-upload", "version": "2.4.1", "state": "running", "figures": '
            '{"upload_backlog": 84, "error_rate_percent": 0.31, "Bad": 1, "huge": 1e300, "text": "x"}}]}'
        ),
        figures=True,
    ),
    "file-lines": Case(_apps_file("scan-upload 2.4.1 running\nlabel-print 0.3 stopped for maintenance\n")),
    "file-too-many": Case(_apps_file("".join(f"app-{i} 1.0 running\n" for i in range(MAX_APPS + 1)))),
    "file-malformed": Case(_apps_file("scan-upload 2.4.1 crashed\n")),
    "file-missing": Case(lambda stack, tmp: FileAppSource(tmp / "missing.json")),
    "metaserver": Case(_metaserver),
    "metaserver-figures": Case(_metaserver_with_figures, figures=True),
    "metaserver-down": Case(lambda stack, tmp: MetaServerAppSource(f"http://127.0.0.1:{free_port()}")),
    "none": Case(lambda stack, tmp: NoAppSource()),
    "simulated-gpu-box": Case(lambda stack, tmp: SimulatedAppSource(GPU_BOX, seed=SEED)),
    "simulated-edge-node": Case(lambda stack, tmp: SimulatedAppSource(EDGE_NODE, seed=SEED)),
    "simulated-cluster-node": Case(lambda stack, tmp: SimulatedAppSource(CLUSTER_NODE, seed=SEED)),
    "simulated-node-pods": Case(lambda stack, tmp: NodePodsAppSource(_seeded_pods)),
    "simulated-node-pods-figures": Case(_node_pods_with_figures(0.0), figures=True),
    "simulated-node-pods-slow": Case(_node_pods_with_figures(300.0), figures=True),
    "simulated-metaserver-down": Case(lambda stack, tmp: NodePodsAppSource(lambda: None)),
}


def _seeded_pods() -> list[dict[str, Any]]:
    """The pods the simulated cluster's controllers run for a GPU box: a Running one and a crash-looping one."""

    def pod(name: str, waiting: str | None) -> dict[str, Any]:
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": "2026-12-01T08:00:00Z"}}
        return {
            "metadata": {"name": name, "namespace": "edgefleet", "labels": {"app.kubernetes.io/name": name}},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": name, "image": f"registry.local:5000/{name}:3.5.0"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": name, "ready": waiting is None, "restartCount": 2 if waiting else 0, "state": state}
                ],
            },
        }

    return [pod("sorting-recognition", None), pod("edge-exporter", "CrashLoopBackOff")]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def on_the_wire(host: HostSample, gpu: GpuReport, apps: AppReport) -> Heartbeat:
    """A heartbeat the agent's reporter makes of these sections, as the controller's ingest decodes it."""
    heartbeat = BoxReporter("box-1", "site-1", interval_s=10, clock=FakeClock()).heartbeat(host, gpu, apps)
    return decode_heartbeat(encode(heartbeat))


# --- the checks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOST_PROBES)
def test_every_host_probe_keeps_the_contract(name: str, stack: ExitStack, tmp_path: Path) -> None:
    probe = HOST_PROBES[name].build(stack, tmp_path)
    for _ in range(SAMPLES):
        host = probe.sample()
        assert type(host) is HostSample
        assert on_the_wire(host, GpuReport(available=False, reason="x"), AppReport(source="none")).host == host
        assert host.cpu_percent is None or 0 <= host.cpu_percent <= 100
        for load in (host.load1, host.load5, host.load15):
            assert load is None or load >= 0
        assert at_most(host.memory_available_bytes, host.memory_total_bytes)
        assert at_most(host.disk_free_bytes, host.disk_total_bytes)
        assert host.disk_path.startswith("/")


@pytest.mark.parametrize("name", GPU_PROBES)
def test_every_gpu_probe_keeps_the_contract(name: str, stack: ExitStack, tmp_path: Path) -> None:
    case = GPU_PROBES[name]
    probe = case.build(stack, tmp_path)
    documented = set(documented_throttle_reasons())
    throttled = False
    for _ in range(SAMPLES):
        report = probe.sample()
        assert type(report) is GpuReport
        assert on_the_wire(HostSample(), report, AppReport(source="none")).gpu == report
        if not report.available:
            assert report.gpus == []
            assert report.reason, "a report without GPUs says why"
            continue
        assert report.gpus or report.reason, "GPUs that could not be read are named"
        indices = [g.index for g in report.gpus]
        assert indices == sorted(set(indices))
        for gpu in report.gpus:
            assert gpu.name
            assert gpu.uuid
            assert gpu.utilization_percent is None or 0 <= gpu.utilization_percent <= 100
            assert at_most(gpu.memory_used_bytes, gpu.memory_total_bytes)
            low, high = GPU_TEMPERATURE_C
            assert gpu.temperature_c is None or low <= gpu.temperature_c <= high, "degrees Celsius"
            assert gpu.power_w is None or 0 <= gpu.power_w <= GPU_POWER_MAX_W, "watts"
            for reason in gpu.throttle_reasons:
                assert reason in documented or an_unknown_bit(reason), f"{reason!r} is not in docs/protocol.md"
            assert len(set(gpu.throttle_reasons)) == len(gpu.throttle_reasons)
            throttled = throttled or bool(gpu.throttle_reasons)
    assert throttled or not case.throttles, "this source shows throttle reasons, so their spelling is checked"


@pytest.mark.parametrize("name", APP_SOURCES)
def test_every_apps_source_keeps_the_contract(name: str, stack: ExitStack, tmp_path: Path) -> None:
    source = APP_SOURCES[name].build(stack, tmp_path)
    forms = documented_app_sources()
    with_figures = False
    for _ in range(SAMPLES):
        report = source.read()
        assert type(report) is AppReport
        assert on_the_wire(HostSample(), GpuReport(available=False, reason="x"), report).apps == report
        assert any(form.fullmatch(report.source) for form in forms), f"source {report.source!r} is not documented"
        assert report.error is None or report.error.strip(), "an error says what went wrong"
        assert len(report.apps) <= MAX_APPS
        for app in report.apps:
            assert app.name
            assert app.version
            assert app.detail is None or app.detail
            assert app.figures is None or app.state == "running", "only a running app reports figures"
            for figure, value in (app.figures or {}).items():
                assert re.fullmatch(FIGURE_NAME_PATTERN, figure)
                assert math.isfinite(value)
                low, high = FIGURE_RANGES.get(figure, (-math.inf, math.inf))
                assert low <= value <= high, f"{figure} {value} is not in its unit ({low}..{high})"
            with_figures = with_figures or bool(app.figures)
    assert with_figures or not APP_SOURCES[name].figures, "this source reports figures, so they are checked"


# The documented figures' units (docs/protocol.md, "App health figures"): a backlog counts parcels, a rate is a
# percentage, fps and milliseconds are never negative and a latency in seconds would show as under 1.
FIGURE_RANGES: dict[str, tuple[float, float]] = {
    "upload_backlog": (0.0, 1e9),
    "error_rate_percent": (0.0, 100.0),
    "fps": (0.0, 1000.0),
    "inference_latency_ms": (1.0, 60_000.0),
}


def documented_figures() -> dict[str, tuple[str, str]]:
    """Figure -> (app, better) from docs/protocol.md's table of app health figures."""
    rows = re.findall(r"^\| ([a-z-]+) \| `([a-z_]+)` \| [^|]+ \| [^|]+ \| (higher|lower) \|$", doc(), re.MULTILINE)
    assert rows, "docs/protocol.md no longer has the table of app health figures"
    return {figure: (app, better) for app, figure, better in rows}


def test_the_docs_the_health_gate_and_the_simulator_agree_on_the_figures() -> None:
    gate = {f.name: (app, f.better) for app, figures in GATE_FIGURES.items() for f in figures}
    simulated = {s.name: (app, s.better) for app, shapes in SIMULATED_FIGURES.items() for s in shapes}
    assert documented_figures() == gate == simulated
    assert set(FIGURE_RANGES) == set(gate)


def at_most(part: int | None, whole: int | None) -> bool:
    return part is None or whole is None or 0 <= part <= whole


def an_unknown_bit(reason: str) -> bool:
    """``unknown-0x<bit>``: one bit, none of the known ones."""
    match = re.fullmatch(r"unknown-0x([0-9a-f]+)", reason)
    if not match:
        return False
    bit = int(match.group(1), 16)
    return bit.bit_count() == 1 and all(bit != known for known, _ in THROTTLE_REASONS)


# --- the NVML fake is the real pynvml's shape --------------------------------------------------------------------


def test_the_nvml_fake_has_only_functions_pynvml_has_and_takes_their_arguments() -> None:
    fake = FakeNvml([])
    faked = [name for name in dir(fake) if name.startswith("nvml")]
    assert "nvmlDeviceGetCurrentClocksEventReasons" in faked
    for name in faked:
        real = getattr(pynvml, name, None)
        assert callable(real), f"the fake NVML has {name}, pynvml has not"
        takes = len(inspect.signature(getattr(fake, name)).parameters)
        parameters = inspect.signature(real).parameters.values()
        needs = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
        assert needs <= takes <= len(parameters), f"{name} takes {takes} arguments; pynvml's needs {needs}"
