"""A simulated box glances at its node's pods between heartbeats and sends its heartbeat at once when its apps'
states change, as the real agent does (``edgefleet.agent.running.APP_CHECK_S``): with heartbeats an hour apart,
only that early heartbeat can bring the new version that ``kubectl set image`` rolled out to the box's node."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from edgefleet.messages import Heartbeat
from simulator.cluster.releases import APPS_NAMESPACE
from simulator.running import SimulatorOptions, start_in_background
from tests.simulator.conftest import EDGE_A, SITE_A
from tests.simulator.fleets import Watcher, write_inventory
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

AN_HOUR = 3600.0
# A version the simulated registry serves (releases/scan-upload-1.14.0.yaml) and no site is seeded with: an image
# the registry lacks would never run (ErrImagePull), as on a real node.
NEW_VERSION = "1.14.0"
NEW = f"registry.local:5000/edgefleet/scan-upload:{NEW_VERSION}"


@pytest.fixture
def sites_dir(tmp_path: Path) -> Path:
    """One site of one edge node: the first box of the fleet, whose first heartbeat goes out at once (the others'
    are spread over the interval)."""
    directory = tmp_path / "sites"
    write_inventory(directory, sites=1, boxes_per_site=1)
    return directory


def test_a_new_version_on_the_node_goes_out_before_the_next_heartbeat(
    options: SimulatorOptions, watcher: Watcher, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    running = start_in_background(dataclasses.replace(options, interval_override_s=AN_HOUR, kubeconfig=kubeconfig))
    try:
        watcher.wait_online([EDGE_A])
        first = wait_for(lambda: watcher.heartbeats(EDGE_A), timeout=30, what="the edge node's first heartbeat")[0]
        assert [a.name for a in first.apps.apps] == ["scan-upload"]
        assert first.apps.apps[0].version != NEW_VERSION
        subprocess.run(
            [
                *("kubectl", "--kubeconfig", str(kubeconfig), "-n", APPS_NAMESPACE),
                *("set", "image", f"deployment/scan-upload-{SITE_A}", f"scan-upload={NEW}"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def reported() -> Heartbeat | None:
            for beat in watcher.heartbeats(EDGE_A):
                if (NEW_VERSION, "running") in {(a.version, a.state) for a in beat.apps.apps}:
                    return beat
            return None

        beat = wait_for(reported, timeout=60, what=f"a heartbeat of the edge node reporting {NEW_VERSION} running")
    finally:
        running.stop()
    assert beat.seq > first.seq
    assert beat.boot == first.boot
