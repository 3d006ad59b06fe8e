"""What a box says and in which order: heartbeats with a per-boot sequence, online/offline status messages
with a per-boot session counter, and a bounded buffer of heartbeats made while the broker is unreachable.

No I/O: the agent process and the simulator feed it samples and hand its messages to a ``BoxLink``.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Final

from edgefleet import __version__
from edgefleet.clock import Clock
from edgefleet.messages import (
    SCHEMA_VERSION,
    AppReport,
    BoxStatus,
    GpuReport,
    Heartbeat,
    HostSample,
)

# One hour of 10 s heartbeats: enough to bridge a broker restart or a WAN outage of a center, small enough
# (about 0.5 MB) for the smallest box. Heartbeats are latest-wins state, so on overflow the oldest go.
DEFAULT_BUFFER_LIMIT: Final = 360


class BoxReporter:
    """Numbers and builds one box's messages. ``boot`` is new at each agent start."""

    def __init__(
        self,
        box: str,
        site: str,
        *,
        interval_s: float,
        clock: Clock,
        boot: str | None = None,
        agent_version: str = __version__,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
    ) -> None:
        self.box = box
        self.site = site
        self.interval_s = interval_s
        self.clock = clock
        self.boot = boot or uuid.uuid4().hex
        self.agent_version = agent_version
        self.seq = 0
        self.session = 0
        self._started = clock.monotonic()
        self.buffer: deque[Heartbeat] = deque(maxlen=buffer_limit)
        self.dropped_from_buffer = 0

    def heartbeat(
        self, host: HostSample, gpu: GpuReport, apps: AppReport, *, uptime_s: float | None = None
    ) -> Heartbeat:
        self.seq += 1
        return Heartbeat(
            schema=SCHEMA_VERSION,
            box=self.box,
            site=self.site,
            boot=self.boot,
            seq=self.seq,
            sent_at=self.clock.now(),
            agent_version=self.agent_version,
            interval_s=self.interval_s,
            uptime_s=uptime_s if uptime_s is not None else max(0.0, self.clock.monotonic() - self._started),
            host=host,
            gpu=gpu,
            apps=apps,
        )

    def next_session(self) -> int:
        """Called before each connection attempt: the will and the birth message of it carry this number."""
        self.session += 1
        return self.session

    def status(self, state: str, reason: str) -> BoxStatus:
        return BoxStatus(
            schema=SCHEMA_VERSION,
            box=self.box,
            site=self.site,
            boot=self.boot,
            session=self.session,
            state=state,  # type: ignore[arg-type]
            at=self.clock.now(),
            reason=reason,
        )

    def keep(self, heartbeat: Heartbeat) -> None:
        """Buffer a heartbeat made while disconnected; the oldest is dropped when the buffer is full."""
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped_from_buffer += 1
        self.buffer.append(heartbeat)

    def drain(self) -> list[Heartbeat]:
        out = list(self.buffer)
        self.buffer.clear()
        return out
