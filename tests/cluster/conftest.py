"""A simulated cluster served from a thread of its own, seeded with one inventory site's boxes, and kubectls that
talk to it through a written kubeconfig with a HOME of their own (so nothing is cached outside tmp_path).

``kubectl`` is the one on PATH; ``each_kubectl`` runs a test once with it and once with the wheel's newer one
(``tests.support.kubectls``): use it for the representative tests, not for every slow one."""

from __future__ import annotations

import os
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
from tests.support.kubectls import KUBECTLS, ON_PATH, kubectl_binary

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


def kubectl_runner(which: str, kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Runs one of ``KUBECTLS`` against ``kubeconfig`` with a HOME of its own (skips the test if it is missing)."""
    binary, missing = kubectl_binary(which)
    if binary is None:
        pytest.skip(missing)
    home = tmp_path / f"home-{which}"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def run(
        *args: str, check: bool = True, timeout: float = 30, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(binary), "--kubeconfig", str(kubeconfig), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} ({binary}) failed: {done.stderr}")
        return done

    return run


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """The kubectl on PATH."""
    return kubectl_runner(ON_PATH, kubeconfig, tmp_path)


@pytest.fixture(params=KUBECTLS)
def each_kubectl(request: pytest.FixtureRequest, kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """The kubectl on PATH, then the wheel's."""
    return kubectl_runner(str(request.param), kubeconfig, tmp_path)
