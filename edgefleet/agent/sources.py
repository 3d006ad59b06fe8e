"""The three things a heartbeat is made of, each behind a small seam with a real side (the agent's probes:
/proc, NVML, an apps file or KubeEdge's MetaServer) and a simulated side (the simulator's)."""

from __future__ import annotations

from typing import Protocol

from edgefleet.messages import AppReport, GpuReport, HostSample


class HostProbe(Protocol):
    def sample(self) -> HostSample:
        """The box's CPU, memory, disk and load now. Never raises: a reading that fails is None."""
        ...


class GpuProbe(Protocol):
    def sample(self) -> GpuReport:
        """Every GPU's metrics now, or ``available=False`` with the reason. Never raises."""
        ...


class AppSource(Protocol):
    def read(self) -> AppReport:
        """The apps on the box and their states. Never raises: a failure is reported in ``error``."""
        ...

    def states(self) -> AppReport:
        """The apps as ``read`` gives them but without their health figures, where those cost more to read (a
        scrape of each app's /metrics): what the agent glances at between heartbeats. Never raises."""
        ...
