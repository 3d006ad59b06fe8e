"""One simulated box: the real agent's ``BoxReporter`` and ``BoxLink`` fed by simulated sources, with a clock of
its own that a ``skew`` fault can shift. Built by ``simulator.running`` for every box the simulator plays.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgefleet.agent.link import BoxLink, BrokerAddress
from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.running import AppStates, app_states
from edgefleet.agent.sources import AppSource
from edgefleet.clock import Clock
from edgefleet.inventory import Box
from edgefleet.messages import Heartbeat
from simulator.sources import SimulatedAppSource, SimulatedGpuProbe, SimulatedHostProbe


class OffsetClock:
    """A box's own wall clock: ``base`` shifted by ``offset()`` seconds (read at every call, so a skew fault
    starts and ends without telling anyone). Intervals and uptime keep the true monotonic clock."""

    def __init__(self, base: Clock, offset: Callable[[], float]) -> None:
        self._base = base
        self._offset = offset

    def now(self) -> float:
        return self._base.now() + self._offset()

    def monotonic(self) -> float:
        return self._base.monotonic()


@dataclass(slots=True, eq=False)
class SimulatedBox:
    box: Box
    reporter: BoxReporter
    link: BoxLink
    host: SimulatedHostProbe
    gpu: SimulatedGpuProbe
    apps: AppSource
    heartbeats_sent: int = 0
    # The apps' states its last heartbeat was made with (None before the first): what the agent's glance between
    # heartbeats compares with (``apps_changed``).
    apps_reported: AppStates | None = None

    def heartbeat(self) -> Heartbeat:
        """The box's next heartbeat from fresh samples (its sequence number moves on)."""
        apps = self.apps.read()
        self.apps_reported = app_states(apps)
        return self.reporter.heartbeat(self.host.sample(), self.gpu.sample(), apps)

    def apps_changed(self) -> bool:
        """Whether its apps' states differ from those of its last heartbeat, as the real agent looks between
        heartbeats (``edgefleet.agent.running``: then it sends one at once)."""
        return self.apps_reported is not None and app_states(self.apps.states()) != self.apps_reported


def build_box(
    box: Box,
    *,
    broker: BrokerAddress,
    interval_s: float,
    keepalive_s: int,
    seed: int,
    clock: Clock,
    skew: Callable[[], float],
    overheat: Callable[[], Mapping[int, float]],
    apps: AppSource | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> SimulatedBox:
    """A simulated box; ``apps``: where its agent reads its apps (its node's pods on a simulated cluster), by
    default the releases its site runs, from the seed; ``tls_context``: the one TLS context every box shares on a
    ``mqtts://`` broker."""
    reporter = BoxReporter(box.id, box.site, interval_s=interval_s, clock=OffsetClock(clock, skew))
    return SimulatedBox(
        box=box,
        reporter=reporter,
        link=BoxLink(reporter, broker, keepalive_s=keepalive_s, tls_context=tls_context),
        host=SimulatedHostProbe(box, seed=seed),
        gpu=SimulatedGpuProbe(box, seed=seed, overheat=overheat),
        apps=apps or SimulatedAppSource(box, seed=seed),
    )
