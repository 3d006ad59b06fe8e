"""The box's GPUs as NVML reports them (nvidia-ml-py, ``import pynvml``): the agent's ``GpuProbe``.

The only module of edgefleet that talks to NVML (an import-linter contract says so). ``running`` calls
``NvmlProbe.sample()`` once per heartbeat; boxes configured without GPUs get ``NoGpuProbe``.

NVML is started lazily on the first sample, and again after it failed or lost the driver, with a growing delay so
that a box without a driver does not retry every heartbeat. Every reading of a GPU is taken on its own: a field the
GPU cannot give (ECC on a consumer card answers ``NotSupported``) is None and the rest of the sample stays. No
library, no driver or no GPU gives ``GpuReport(available=False)`` with a reason a person can act on; nothing here
ever raises into the agent.

``nvml`` is injectable so tests run the conversion against a small fake of the functions used here. The throttle
reason mask is decoded by ``throttle_reasons``, the decoder the simulator's GPU source uses too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar

from edgefleet.agent.throttle_reasons import decode_throttle_reasons
from edgefleet.clock import Clock, SystemClock
from edgefleet.messages import GpuReport, GpuSample

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# The first retry one heartbeat later (a driver that is still loading at boot), then doubling up to 10 minutes: a
# box whose driver is missing costs a failed dlopen every 10 minutes, and a driver installed later is picked up
# without restarting the agent.
INIT_RETRY_MIN_S: Final = 10.0
INIT_RETRY_MAX_S: Final = 600.0
_TEXT_MAX: Final = 256

# NVML return codes and enums (nvml.h). They are part of NVML's ABI, so they are fixed numbers here rather than
# read from the module: a test checks them against the installed pynvml.
NVML_ERROR_UNINITIALIZED: Final = 1
NVML_ERROR_NOT_SUPPORTED: Final = 3
NVML_ERROR_NO_PERMISSION: Final = 4
NVML_ERROR_DRIVER_NOT_LOADED: Final = 9
NVML_ERROR_LIBRARY_NOT_FOUND: Final = 12
NVML_ERROR_FUNCTION_NOT_FOUND: Final = 13
NVML_ERROR_GPU_IS_LOST: Final = 15
NVML_ERROR_RESET_REQUIRED: Final = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH: Final = 18
NVML_TEMPERATURE_GPU: Final = 0
NVML_MEMORY_ERROR_TYPE_CORRECTED: Final = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED: Final = 1
# Volatile counters count since the driver was loaded and move at once; the aggregate (lifetime) ones are updated
# by some GPUs only when the driver unloads, so a new error would show there days late.
NVML_VOLATILE_ECC: Final = 0

# Errors after which the NVML session is useless until it is started again.
_REINIT_ERRORS: Final = frozenset(
    {
        NVML_ERROR_UNINITIALIZED,
        NVML_ERROR_DRIVER_NOT_LOADED,
        NVML_ERROR_LIBRARY_NOT_FOUND,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)

_INIT_REASONS: Final[dict[int, str]] = {
    NVML_ERROR_LIBRARY_NOT_FOUND: (
        "no NVIDIA driver: libnvidia-ml.so.1 was not found (install the NVIDIA driver, or run the agent with "
        "--no-gpu on a box without GPUs)"
    ),
    NVML_ERROR_DRIVER_NOT_LOADED: (
        "the NVIDIA driver is installed but not loaded (check 'lsmod | grep nvidia' and the kernel log)"
    ),
    NVML_ERROR_NO_PERMISSION: "no permission to use the NVIDIA driver: the agent's user cannot open /dev/nvidia*",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVIDIA driver library and kernel module versions differ (reboot the box after a driver upgrade)"
    ),
}


def init_retry_delay_s(failures: int) -> float:
    """How long to wait before starting NVML again after ``failures`` failed starts in a row (>= 1)."""
    return min(INIT_RETRY_MAX_S, INIT_RETRY_MIN_S * 2.0 ** min(max(failures, 1) - 1, 32))


def _text(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text[:_TEXT_MAX]


class NoGpuProbe:
    """For boxes configured without GPUs (``--no-gpu``): NVML is never loaded."""

    def sample(self) -> GpuReport:
        return GpuReport(available=False, reason="GPU reporting is off on this box (--no-gpu)")


class NvmlProbe:
    """Every GPU of the box through NVML; see the module docstring. Not thread-safe: one caller samples."""

    def __init__(self, nvml: Any = None, *, clock: Clock | None = None) -> None:
        self._nvml = nvml
        self._clock = clock or SystemClock()
        self._initialised = False
        self._failures = 0
        self._retry_at = 0.0
        self._reason = "NVML was not started yet"
        self._driver_version: str | None = None
        self._logged: set[tuple[int, str, str]] = set()

    def sample(self) -> GpuReport:
        try:
            if not self._initialised and not self._start():
                return GpuReport(available=False, reason=self._reason)
            return self._sample_gpus()
        except Exception as exc:  # never into the agent: an NVML binding bug must not cost the heartbeat
            log.exception("Failed to sample GPUs", extra={"error": str(exc)})
            self._stop(f"GPU probe failed: {exc}")
            return GpuReport(available=False, reason=self._reason)

    def close(self) -> None:
        """Shut NVML down (at agent exit)."""
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:
                log.debug("Failed to shut NVML down", extra={"error": str(exc)})

    # --- starting and stopping NVML --------------------------------------------------------------------------

    def _start(self) -> bool:
        if self._clock.monotonic() < self._retry_at:
            return False
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self._failed("nvidia-ml-py (pynvml) is not installed in the agent's Python")
                return False
            self._nvml = pynvml
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as exc:
            self._failed(_INIT_REASONS.get(getattr(exc, "value", -1)) or f"NVML failed to start: {_text(exc)}")
            return False
        self._initialised = True
        try:
            self._driver_version = _text(self._nvml.nvmlSystemGetDriverVersion())
        except self._nvml.NVMLError:
            self._driver_version = None
        if self._failures:
            log.info("Started NVML after failures", extra={"failures": self._failures})
        self._failures = 0
        return True

    def _failed(self, reason: str) -> None:
        self._failures += 1
        delay = init_retry_delay_s(self._failures)
        self._retry_at = self._clock.monotonic() + delay
        if reason != self._reason:
            log.warning("Found no usable GPU driver", extra={"reason": reason, "retry_in_s": delay})
        self._reason = reason[:_TEXT_MAX]

    def _stop(self, reason: str) -> None:
        """Give the NVML session up after an error that makes it useless; the next start waits its delay."""
        self.close()
        self._failed(reason)

    # --- reading the GPUs ------------------------------------------------------------------------------------

    def _sample_gpus(self) -> GpuReport:
        nvml = self._nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            self._stop(f"NVML could not count the GPUs: {_text(exc)}")
            return GpuReport(available=False, reason=self._reason, driver_version=self._driver_version)
        if count == 0:
            return GpuReport(
                available=False, reason="NVML found no GPU on this box", driver_version=self._driver_version
            )
        gpus: list[GpuSample] = []
        unreadable: list[str] = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) in _REINIT_ERRORS:
                    self._stop(f"NVML lost the driver: {_text(exc)}")
                    return GpuReport(available=False, reason=self._reason, driver_version=self._driver_version)
                # A GPU that fell off the bus is exactly what ops must hear about: say which one and why.
                unreadable.append(f"GPU {index}: {_text(exc)}")
                self._log_once(index, "handle", exc)
                continue
            gpus.append(self._sample_gpu(index, handle))
        reason = None
        if unreadable:
            reason = ("could not read " + "; ".join(unreadable))[:_TEXT_MAX]
        return GpuReport(available=True, reason=reason, driver_version=self._driver_version, gpus=gpus)

    def _sample_gpu(self, index: int, handle: object) -> GpuSample:
        nvml = self._nvml
        name = self._read(index, "name", lambda: _text(nvml.nvmlDeviceGetName(handle)))
        uuid = self._read(index, "uuid", lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
        utilization = self._read(index, "utilization", lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        memory = self._read(index, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        temperature = self._read(
            index, "temperature", lambda: float(nvml.nvmlDeviceGetTemperature(handle, NVML_TEMPERATURE_GPU))
        )
        # NVML reports milliwatts.
        power = self._read(index, "power", lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        throttle = self._read(index, "throttle reasons", lambda: self._throttle_mask(handle))
        ecc_corrected = self._read(
            index,
            "ECC corrected errors",
            lambda: int(nvml.nvmlDeviceGetTotalEccErrors(handle, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC)),
        )
        ecc_uncorrected = self._read(
            index,
            "ECC uncorrected errors",
            lambda: int(
                nvml.nvmlDeviceGetTotalEccErrors(handle, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC)
            ),
        )
        return GpuSample(
            index=index,
            name=name or "unknown",
            uuid=uuid or "unknown",
            utilization_percent=_clamp_percent(utilization),
            memory_used_bytes=_non_negative_int(getattr(memory, "used", None)),
            memory_total_bytes=_non_negative_int(getattr(memory, "total", None)),
            temperature_c=temperature,
            power_w=power if power is None or power >= 0 else None,
            throttle_reasons=decode_throttle_reasons(throttle) if throttle is not None else [],
            ecc_corrected_errors=_non_negative_int(ecc_corrected),
            ecc_uncorrected_errors=_non_negative_int(ecc_uncorrected),
        )

    def _throttle_mask(self, handle: object) -> int:
        nvml = self._nvml
        current = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if current is not None:
            try:
                return int(current(handle))
            except nvml.NVMLError as exc:
                # Drivers older than 535 lack the new symbol; the old one reads the same bits.
                if getattr(exc, "value", None) != NVML_ERROR_FUNCTION_NOT_FOUND:
                    raise
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))

    def _read(self, index: int, field: str, read: Callable[[], _T]) -> _T | None:
        """One reading; None when NVML cannot give it. An unsupported field is normal and not logged."""
        try:
            return read()
        except Exception as exc:
            if getattr(exc, "value", None) != NVML_ERROR_NOT_SUPPORTED:
                self._log_once(index, field, exc)
            return None

    def _log_once(self, index: int, field: str, exc: Exception) -> None:
        key = (index, field, type(exc).__name__)
        if key not in self._logged:
            self._logged.add(key)
            log.warning("Failed to read GPU value", extra={"gpu": index, "value": field, "error": _text(exc)})


def _clamp_percent(value: float | None) -> float | None:
    return None if value is None else min(100.0, max(0.0, value))


def _non_negative_int(value: object) -> int | None:
    if isinstance(value, int) and value >= 0:
        return value
    return None
