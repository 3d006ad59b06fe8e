"""The simulated host, GPU and app sources: the same seed gives the same readings, readings stay plausible
and in range, GPUs follow the inventory, and an overheat holds a GPU at its temperature."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Box, GpuSpec
from simulator.sources import GPU_MODELS, NO_GPU_REASON, SimulatedAppSource, SimulatedGpuProbe, SimulatedHostProbe

GPU_BOX = Box(
    BoxId("s-gpu-01"), SiteId("s"), "gpu-box", "R750xa", GpuSpec(model="NVIDIA L4", count=2, driver_version="550.90.07")
)
EDGE = Box(BoxId("s-edge-01"), SiteId("s"), "edge-node", "XR11", None)
CLUSTER = Box(BoxId("c-cp-01"), SiteId("c"), "cluster-node", "R660", None)
ODD_GPU = Box(
    BoxId("s-gpu-02"), SiteId("s"), "gpu-box", None, GpuSpec(model="Future X9", count=1, driver_version="600.1")
)


def test_the_same_seed_gives_the_same_readings_and_another_seed_others() -> None:
    def readings(seed: int) -> list[object]:
        host, gpu = SimulatedHostProbe(GPU_BOX, seed=seed), SimulatedGpuProbe(GPU_BOX, seed=seed)
        return [(host.sample(), gpu.sample()) for _ in range(20)]

    assert readings(1) == readings(1)
    assert readings(1) != readings(2)


def test_boxes_without_gpu_say_so() -> None:
    for box in (EDGE, CLUSTER):
        report = SimulatedGpuProbe(box, seed=0).sample()
        assert (report.available, report.reason, report.gpus) == (False, NO_GPU_REASON, [])


def test_gpus_follow_the_inventory() -> None:
    report = SimulatedGpuProbe(GPU_BOX, seed=0).sample()
    assert report.available
    assert report.driver_version == "550.90.07"
    assert [(g.index, g.name) for g in report.gpus] == [(0, "NVIDIA L4"), (1, "NVIDIA L4")]
    assert {g.memory_total_bytes for g in report.gpus} == {GPU_MODELS["NVIDIA L4"].memory_bytes}
    assert len({g.uuid for g in report.gpus}) == 2
    assert SimulatedGpuProbe(ODD_GPU, seed=0).sample().gpus[0].name == "Future X9", "an unknown model still works"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), samples=st.integers(min_value=1, max_value=200))
def test_readings_stay_in_range(seed: int, samples: int) -> None:
    host, gpu = SimulatedHostProbe(GPU_BOX, seed=seed), SimulatedGpuProbe(GPU_BOX, seed=seed)
    ecc_before = [g.ecc_corrected_errors for g in gpu.sample().gpus]
    for _ in range(samples):
        h, report = host.sample(), gpu.sample()
    assert within(h.cpu_percent, 0, 100)
    assert within(h.memory_available_bytes, 1, h.memory_total_bytes)
    assert within(h.disk_free_bytes, 1, h.disk_total_bytes)
    assert within(h.load1, 0, 32 * 1.5)
    for g, before in zip(report.gpus, ecc_before, strict=True):
        assert within(g.utilization_percent, 0, 100)
        assert within(g.temperature_c, 25, 89.9), "a healthy GPU never throttles"
        assert g.throttle_reasons == []
        assert within(g.memory_used_bytes, 1, g.memory_total_bytes)
        assert within(g.power_w, 1, GPU_MODELS["NVIDIA L4"].power_limit_w)
        assert within(g.ecc_corrected_errors, before or 0, 10**6)
        assert g.ecc_uncorrected_errors == 0


def within(value: float | None, low: float, high: float | None) -> bool:
    return value is not None and high is not None and low <= value <= high


def test_readings_vary_slowly() -> None:
    gpu = SimulatedGpuProbe(GPU_BOX, seed=3)
    temps = [gpu.sample().gpus[0].temperature_c or 0.0 for _ in range(100)]
    steps = [abs(b - a) for a, b in itertools.pairwise(temps)]
    assert max(steps) < 5, "a heat sink does not jump"
    assert len(set(temps)) > 10, "but it does move"


@pytest.mark.parametrize(
    ("held", "reasons"), [(92.0, ["sw-thermal-slowdown"]), (97.0, ["sw-thermal-slowdown", "hw-thermal-slowdown"])]
)
def test_overheat_holds_the_named_gpu_and_shows_thermal_throttling(held: float, reasons: list[str]) -> None:
    overheat: dict[int, float] = {}
    gpu = SimulatedGpuProbe(GPU_BOX, seed=0, overheat=lambda: overheat)
    overheat[1] = held
    report = gpu.sample()
    assert (report.gpus[1].temperature_c, report.gpus[1].throttle_reasons) == (held, reasons)
    assert report.gpus[0].throttle_reasons == []
    overheat.clear()
    assert gpu.sample().gpus[1].temperature_c < 90  # type: ignore[operator]


def test_apps_follow_the_role_and_a_site_runs_one_release() -> None:
    assert [a.name for a in SimulatedAppSource(GPU_BOX, seed=0).read().apps] == ["sorting-recognition"]
    assert [a.name for a in SimulatedAppSource(EDGE, seed=0).read().apps] == ["scan-upload"]
    assert SimulatedAppSource(CLUSTER, seed=0).read().apps == []
    versions = {SimulatedAppSource(b, seed=5).read().apps[0].version for b in (GPU_BOX, ODD_GPU)}
    assert len(versions) == 1
    report = SimulatedAppSource(EDGE, seed=0).read()
    assert (report.source, report.error, report.apps[0].state) == ("simulator", None, "running")
