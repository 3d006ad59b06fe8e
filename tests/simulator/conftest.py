"""Fixtures of the simulator's tests: a small fleet in tmp_path, a watcher on the test broker, and a simulator
running in a thread of its own against the test's real Mosquitto (`broker`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from tests.simulator.fleets import Watcher, write_inventory
from tests.support.peers import Mosquitto

# Fast enough that a test sees several heartbeats a second; a keepalive short enough that a cut site's wills
# come within seconds (the broker waits ~1.5-2 x keepalive).
INTERVAL_S = 0.5
KEEPALIVE_S = 2

SITE_A, SITE_B, CENTRAL = "site-01", "site-02", "central-01"
EDGE_A, GPU_A, GPU2_A = "site-01-edge-01", "site-01-gpu-01", "site-01-gpu-02"
SITE_B_BOXES = ["site-02-edge-01", "site-02-gpu-01", "site-02-gpu-02"]
ALL_BOXES = [EDGE_A, GPU_A, GPU2_A, *SITE_B_BOXES, "central-01-cp-01", "central-01-cp-02"]


@pytest.fixture
def sites_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "sites"
    write_inventory(directory, sites=2, boxes_per_site=3, central=True)
    return directory


@pytest.fixture
def watcher(broker: Mosquitto) -> Iterator[Watcher]:
    watching = Watcher(broker.port)
    yield watching
    watching.close()


@pytest.fixture
def options(broker: Mosquitto, sites_dir: Path) -> SimulatorOptions:
    return SimulatorOptions(
        sites_dir=sites_dir,
        broker_url=broker.url,
        listen="127.0.0.1:0",
        interval_override_s=INTERVAL_S,
        keepalive_s=KEEPALIVE_S,
        seed=7,
    )


@pytest.fixture
def sim(options: SimulatorOptions, watcher: Watcher) -> Iterator[BackgroundSimulator]:
    """A running simulator whose every box has said "online"."""
    running = start_in_background(options)
    try:
        watcher.wait_online(ALL_BOXES)
        yield running
    finally:
        running.stop()
