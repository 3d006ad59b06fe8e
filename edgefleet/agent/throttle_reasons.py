"""NVML's clock event ("throttle") reason bits and the names a heartbeat carries for them (docs/protocol.md).

One decoder for every GPU source: ``gpu.NvmlProbe`` decodes the mask NVML returns, and the simulator's GPU source
(``simulator.sources``) builds a mask of the same bits and decodes it here, so a simulated box can never spell a
reason differently from a real one. This module imports nothing of NVML on purpose: the simulator uses it, and
only ``gpu`` may reach pynvml (an import-linter contract). The bits are part of NVML's ABI (nvml.h), so they are
fixed numbers here; a test checks them against the installed pynvml.
"""

from __future__ import annotations

from typing import Final

# nvmlClocksEventReason* (formerly nvmlClocksThrottleReason*). UserDefinedClocks is the same bit as
# ApplicationsClocksSetting.
GPU_IDLE: Final = 0x1
APPLICATIONS_CLOCKS_SETTING: Final = 0x2
SW_POWER_CAP: Final = 0x4
HW_SLOWDOWN: Final = 0x8
SYNC_BOOST: Final = 0x10
SW_THERMAL_SLOWDOWN: Final = 0x20
HW_THERMAL_SLOWDOWN: Final = 0x40
HW_POWER_BRAKE_SLOWDOWN: Final = 0x80
DISPLAY_CLOCK_SETTING: Final = 0x100

# Each bit with the name the heartbeat carries for it, in bit order (the order of a decoded list).
THROTTLE_REASONS: Final[tuple[tuple[int, str], ...]] = (
    (GPU_IDLE, "gpu-idle"),
    (APPLICATIONS_CLOCKS_SETTING, "applications-clocks-setting"),
    (SW_POWER_CAP, "sw-power-cap"),
    (HW_SLOWDOWN, "hw-slowdown"),
    (SYNC_BOOST, "sync-boost"),
    (SW_THERMAL_SLOWDOWN, "sw-thermal-slowdown"),
    (HW_THERMAL_SLOWDOWN, "hw-thermal-slowdown"),
    (HW_POWER_BRAKE_SLOWDOWN, "hw-power-brake-slowdown"),
    (DISPLAY_CLOCK_SETTING, "display-clock-setting"),
)
_KNOWN_BITS: Final = sum(bit for bit, _ in THROTTLE_REASONS)


def decode_throttle_reasons(mask: int) -> list[str]:
    """The names of the reason bits set in ``mask``; a bit this agent does not know is named by its value."""
    names = [name for bit, name in THROTTLE_REASONS if mask & bit]
    unknown = mask & ~_KNOWN_BITS
    bit = 1
    while unknown >= bit:
        if unknown & bit:
            names.append(f"unknown-0x{bit:x}")
        bit <<= 1
    return names
