"""Central seeding: what seeding the central clusters' own workloads (``simulator.cluster.central``) adds to the
start of ``edgefleet sim run`` (issue 18, item 7). Builds the simulator's clusters for the shipped ``sites/`` as
``Simulation`` does (``SimulatedClusters(..., seed=7)``: nodes, leases, the fleet's apps) ``--rounds`` times with the
central workloads and as many times without them (the seeding replaced by a no-op, which is the code before
it), alternating, and prints the median and the fastest of each. With ``--sim-rounds N`` it then times the
whole start the same way: ``sim run``'s simulator started in-process (``start_in_background``) against a private
Mosquitto, from the call until every shipped box is connected, N rounds alternating with and without.

    .venv/bin/python bench/central_seeding.py [--rounds 7] [--sim-rounds 6]

Results: docs/performance.md, section "Simulator".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet.clock import SystemClock  # noqa: E402
from edgefleet.inventory import load_inventory  # noqa: E402
from simulator.cluster import playing  # noqa: E402
from simulator.running import SPARE_FDS, SimulatorOptions, raise_open_file_limit, start_in_background  # noqa: E402
from tests.support.peers import mosquitto, wait_for  # noqa: E402


def _connected_after(sites: Path, boxes: int) -> float:
    """Seconds from starting the simulator until all ``boxes`` are connected to a fresh Mosquitto."""
    import httpx

    config = "log_type error\nmax_connections -1\n"
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp), extra_config=config) as broker:
        started = time.monotonic()
        sim = start_in_background(SimulatorOptions(sites_dir=sites, broker_url=broker.url, listen="127.0.0.1:0"))
        try:
            wait_for(
                lambda: httpx.get(f"{sim.url}/status").json()["boxes"]["connected"] == boxes,
                timeout=60,
                interval=0.1,
                what=f"{boxes} boxes connected",
            )
            return time.monotonic() - started
        finally:
            sim.stop()


def _alternate(rounds: int, measure: Callable[[], float]) -> dict[str, list[float]]:
    # The name ``SimulatedClusters`` calls, replaced in the module it reads it from.
    module = vars(playing)
    seeding = module["deploy_central_workloads"]
    took: dict[str, list[float]] = {"without": [], "with": []}
    try:
        for _ in range(rounds):
            for name, runs in took.items():
                module["deploy_central_workloads"] = seeding if name == "with" else (lambda *a, **k: 0)
                runs.append(measure())
    finally:
        module["deploy_central_workloads"] = seeding
    return took


def _report(what: str, took: dict[str, list[float]], unit: float, suffix: str) -> None:
    print(what)
    for name, runs in took.items():
        median, fastest = statistics.median(runs) * unit, min(runs) * unit
        print(f"  {name:8} central workloads: median {median:.2f} {suffix}, fastest {fastest:.2f} {suffix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sim-rounds", type=int, default=0)
    args = parser.parse_args()
    sites = REPO / "sites"
    fleet = load_inventory(sites)

    def build() -> float:
        started = time.perf_counter()
        playing.SimulatedClusters(fleet, clock=SystemClock(), seed=7)
        return time.perf_counter() - started

    print(f"{len(fleet.boxes)} boxes, {len(fleet.clusters)} clusters")
    _report(f"building the clusters, {args.rounds} rounds:", _alternate(args.rounds, build), 1000.0, "ms")
    if args.sim_rounds:
        boxes = len(fleet.boxes)
        raise_open_file_limit(2 * boxes + SPARE_FDS)
        took = _alternate(args.sim_rounds, lambda: _connected_after(sites, boxes))
        _report(f"simulator start to {boxes} boxes connected, {args.sim_rounds} rounds:", took, 1.0, "s")


if __name__ == "__main__":
    main()
