"""The GPU probe turns NVML readings into GpuSamples, survives fields a GPU cannot give, says why there are no GPUs,
and starts NVML again after failures with a growing delay. A small fake stands in for the pynvml functions used;
one test runs the real pynvml of this machine (no NVIDIA driver here)."""

from __future__ import annotations

import pynvml
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.agent import gpu as gpu_module
from edgefleet.agent.gpu import INIT_RETRY_MAX_S, INIT_RETRY_MIN_S, NoGpuProbe, NvmlProbe, init_retry_delay_s
from edgefleet.agent.throttle_reasons import THROTTLE_REASONS, decode_throttle_reasons
from edgefleet.clock import FakeClock
from edgefleet.messages import GpuReport, decode_heartbeat
from tests.agent.doubles import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    LIBRARY_NOT_FOUND,
    FakeGpu,
    FakeNvml,
    FakeNvmlError,
)


def test_every_gpu_is_converted() -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu(name=b"NVIDIA T4", uuid="GPU-2", reasons=0, ecc=(0, 1))])
    report = NvmlProbe(nvml=nvml).sample()
    assert report.available
    assert report.reason is None
    assert report.driver_version == "550.54.15"
    first, second = report.gpus
    assert first.index == 0
    assert first.name == "NVIDIA A2"
    assert first.uuid == "GPU-11111111-2222-3333-4444-555555555555"
    assert first.utilization_percent == 37.0
    assert (first.memory_used_bytes, first.memory_total_bytes) == (3 * 2**30, 16 * 2**30)
    assert first.temperature_c == 61.0
    assert first.power_w == pytest.approx(42.5)
    assert first.throttle_reasons == ["sw-power-cap", "sw-thermal-slowdown"]
    assert (first.ecc_corrected_errors, first.ecc_uncorrected_errors) == (2, 0)
    assert second.index == 1
    assert second.name == "NVIDIA T4"
    assert second.throttle_reasons == []
    assert (second.ecc_corrected_errors, second.ecc_uncorrected_errors) == (0, 1)
    assert nvml.inits == 1


def test_unsupported_fields_are_none_and_the_rest_stays(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeGpu(ecc=None, broken={"power", "reasons"})
    report = NvmlProbe(nvml=FakeNvml([consumer])).sample()
    (sample,) = report.gpus
    assert sample.ecc_corrected_errors is None
    assert sample.ecc_uncorrected_errors is None
    assert sample.power_w is None
    assert sample.throttle_reasons == []
    assert sample.temperature_c == 61.0
    assert sample.utilization_percent == 37.0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # NotSupported is normal, not a warning


def test_old_drivers_read_throttle_reasons_through_the_old_call() -> None:
    report = NvmlProbe(nvml=FakeNvml([FakeGpu(reasons=0x40)], new_reasons_api=False)).sample()
    assert report.gpus[0].throttle_reasons == ["hw-thermal-slowdown"]

    nvml = FakeNvml([FakeGpu(reasons=0x8)])

    def missing_symbol(handle: FakeGpu) -> int:
        raise FakeNvmlError(FUNCTION_NOT_FOUND)

    nvml.nvmlDeviceGetCurrentClocksEventReasons = missing_symbol
    assert NvmlProbe(nvml=nvml).sample().gpus[0].throttle_reasons == ["hw-slowdown"]


def test_a_lost_gpu_is_named_and_the_others_still_reported() -> None:
    report = NvmlProbe(nvml=FakeNvml([FakeGpu(), FakeGpu(lost=True), FakeGpu(uuid="GPU-3")])).sample()
    assert report.available
    assert [g.index for g in report.gpus] == [0, 2]
    assert report.reason is not None
    assert "GPU 1" in report.reason


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (LIBRARY_NOT_FOUND, "no NVIDIA driver"),
        (DRIVER_NOT_LOADED, "not loaded"),
        (4, "no permission"),
        (18, "reboot"),
        (999, "NVML failed to start"),
    ],
)
def test_no_driver_gives_a_reason_a_person_can_act_on(error: int, words: str) -> None:
    report = NvmlProbe(nvml=FakeNvml([], init_error=error)).sample()
    assert report == GpuReport(available=False, reason=report.reason)
    assert report.reason is not None
    assert words in report.reason


def test_no_gpu_is_not_available_with_a_reason() -> None:
    report = NvmlProbe(nvml=FakeNvml([])).sample()
    assert not report.available
    assert report.reason == "NVML found no GPU on this box"


def test_failed_start_is_retried_with_a_growing_delay() -> None:
    clock = FakeClock()
    nvml = FakeNvml([FakeGpu()], init_error=LIBRARY_NOT_FOUND)
    probe = NvmlProbe(nvml=nvml, clock=clock)
    probe.sample()
    assert nvml.inits == 1
    clock.advance(INIT_RETRY_MIN_S - 1)
    assert not probe.sample().available
    assert nvml.inits == 1  # still waiting
    clock.advance(1)
    probe.sample()
    assert nvml.inits == 2
    clock.advance(INIT_RETRY_MIN_S)
    probe.sample()
    assert nvml.inits == 2  # the second delay is twice the first
    clock.advance(INIT_RETRY_MIN_S)
    nvml.init_error = None  # the driver got installed
    report = probe.sample()
    assert nvml.inits == 3
    assert report.available
    assert len(report.gpus) == 1


def test_losing_the_driver_restarts_nvml_later() -> None:
    clock = FakeClock()
    nvml = FakeNvml([FakeGpu()])
    probe = NvmlProbe(nvml=nvml, clock=clock)
    assert probe.sample().available
    nvml.count_error = DRIVER_NOT_LOADED
    report = probe.sample()
    assert not report.available
    assert report.reason is not None
    assert "count" in report.reason
    assert nvml.shutdowns == 1
    nvml.count_error = None
    assert not probe.sample().available  # waits its delay
    clock.advance(INIT_RETRY_MIN_S)
    assert probe.sample().available
    assert nvml.inits == 2


def test_an_unexpected_binding_error_never_reaches_the_agent() -> None:
    nvml = FakeNvml([FakeGpu()])
    nvml.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(OSError("ctypes blew up"))  # type: ignore[method-assign]
    report = NvmlProbe(nvml=nvml).sample()
    assert not report.available
    assert report.reason is not None
    assert "ctypes blew up" in report.reason


def test_long_names_are_cut_to_fit_the_message() -> None:
    report = NvmlProbe(nvml=FakeNvml([FakeGpu(name="X" * 1000)])).sample()
    assert len(report.gpus[0].name) == 256


def test_real_pynvml_without_driver_reports_unavailable_and_never_raises() -> None:
    probe = NvmlProbe()
    for _ in range(2):
        report = probe.sample()
        if report.available:  # a machine with a driver: the sample must still be valid
            assert report.gpus or report.reason
            continue
        assert report.reason
        assert report.gpus == []
    probe.close()


def test_nvml_constants_match_the_installed_pynvml() -> None:
    for name in (
        "NVML_ERROR_UNINITIALIZED",
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_NO_PERMISSION",
        "NVML_ERROR_DRIVER_NOT_LOADED",
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVML_ERROR_FUNCTION_NOT_FOUND",
        "NVML_ERROR_GPU_IS_LOST",
        "NVML_ERROR_RESET_REQUIRED",
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
        "NVML_TEMPERATURE_GPU",
        "NVML_MEMORY_ERROR_TYPE_CORRECTED",
        "NVML_MEMORY_ERROR_TYPE_UNCORRECTED",
        "NVML_VOLATILE_ECC",
    ):
        assert getattr(gpu_module, name) == getattr(pynvml, name), name
    bits = {
        "gpu-idle": "GpuIdle",
        "applications-clocks-setting": "ApplicationsClocksSetting",
        "sw-power-cap": "SwPowerCap",
        "hw-slowdown": "HwSlowdown",
        "sync-boost": "SyncBoost",
        "sw-thermal-slowdown": "SwThermalSlowdown",
        "hw-thermal-slowdown": "HwThermalSlowdown",
        "hw-power-brake-slowdown": "HwPowerBrakeSlowdown",
        "display-clock-setting": "DisplayClockSetting",
    }
    for bit, name in THROTTLE_REASONS:
        assert getattr(pynvml, f"nvmlClocksEventReason{bits[name]}") == bit
        assert getattr(pynvml, f"nvmlClocksThrottleReason{bits[name]}") == bit
    assert decode_throttle_reasons(pynvml.nvmlClocksEventReasonAll) == [name for _, name in THROTTLE_REASONS]


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0, []),
        (0x1, ["gpu-idle"]),
        (0x44, ["sw-power-cap", "hw-thermal-slowdown"]),
        (0x1000, ["unknown-0x1000"]),
        (0x8 | 0x400, ["hw-slowdown", "unknown-0x400"]),
    ],
)
def test_throttle_reason_bits_decode_to_names(mask: int, names: list[str]) -> None:
    assert decode_throttle_reasons(mask) == names


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_set_bit_is_named_exactly_once(mask: int) -> None:
    assert len(decode_throttle_reasons(mask)) == bin(mask).count("1")


@given(st.integers(min_value=1, max_value=10_000))
def test_retry_delay_grows_and_stays_within_bounds(failures: int) -> None:
    delay = init_retry_delay_s(failures)
    assert INIT_RETRY_MIN_S <= delay <= INIT_RETRY_MAX_S
    assert init_retry_delay_s(failures + 1) >= delay


def test_no_gpu_probe_says_so() -> None:
    report = NoGpuProbe().sample()
    assert not report.available
    assert report.reason
    assert "--no-gpu" in report.reason


def test_a_sample_with_gpus_is_a_valid_heartbeat_section() -> None:
    from edgefleet.agent.reporting import BoxReporter
    from edgefleet.messages import AppReport, HostSample, encode

    gpus = NvmlProbe(nvml=FakeNvml([FakeGpu(), FakeGpu(ecc=None)])).sample()
    heartbeat = BoxReporter("box-1", "site-1", interval_s=10, clock=FakeClock()).heartbeat(
        HostSample(), gpus, AppReport(source="none")
    )
    assert decode_heartbeat(encode(heartbeat)).gpu == gpus
