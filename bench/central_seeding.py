"""Central seeding: what seeding the central clusters' own workloads (``simulator.cluster.central``) adds to the
start of ``edgefleet sim run`` (issue 18, item 7). Builds the simulator's clusters for the shipped ``sites/`` as
``Simulation`` does (``SimulatedClusters(..., seed=7)``: nodes, leases, the fleet's apps) ``--rounds`` times with the
central workloads and as many times without them (the seeding replaced by a no-op, which is the code before
it), alternating, and prints the median and the fastest of each.

    .venv/bin/python bench/central_seeding.py [--rounds 7]

Results: docs/performance.md, section "Simulator".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet.clock import SystemClock  # noqa: E402
from edgefleet.inventory import load_inventory  # noqa: E402
from simulator.cluster import playing  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    fleet = load_inventory(REPO / "sites")
    seeding = playing.deploy_central_workloads
    took: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for name, runs in took.items():
            playing.deploy_central_workloads = seeding if name == "with" else (lambda *a, **k: 0)  # type: ignore[assignment]
            started = time.perf_counter()
            playing.SimulatedClusters(fleet, clock=SystemClock(), seed=7)
            runs.append(time.perf_counter() - started)
    print(f"{len(fleet.boxes)} boxes, {len(fleet.clusters)} clusters, {args.rounds} rounds")
    for name, runs in took.items():
        print(
            f"  {name:8} central workloads: median {statistics.median(runs) * 1000:.0f} ms, fastest {min(runs) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
