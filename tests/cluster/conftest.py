"""A simulated cluster served from a thread of its own, seeded with one inventory site's boxes, and a kubectl that
talks to it through a written kubeconfig with a HOME of its own (so nothing is cached outside tmp_path)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefleet.ids import SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import ClusterBox, site_boxes
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.conftest import SITES

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def boxes() -> list[ClusterBox]:
    inventory = load_inventory(SITES)
    site = next(s.id for s in inventory.sites.values() if any(b.gpu for b in inventory.site_boxes(s.id)))
    return site_boxes(inventory, SiteId(site))


@pytest.fixture
def cluster(boxes: list[ClusterBox]) -> Iterator[BackgroundCluster]:
    # A history shorter than the seed (namespaces and nodes), so a watch from version 1 is already too old.
    running = start_cluster_in_background(boxes[0].site, boxes, history=5, bookmark_interval_s=0.2)
    yield running
    running.stop()


@pytest.fixture
def kubeconfig(cluster: BackgroundCluster, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {cluster.api.name: cluster.url})


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not on PATH")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    return run
