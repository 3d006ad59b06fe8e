"""Leader takeover (issue 19): how long the hot standby takes to lead after its leader is killed, frozen or stopped.

Everything real, each in a process of its own, on one machine: Mosquitto (started here on a free loopback port), a
PostgreSQL database of the bench's own (created on the server at ``--database-url`` and dropped afterwards), the
simulator playing a small inventory (``edgefleet sim run``, so the replicas hear a fleet) and two ``edgefleet cloud
serve`` replicas on that database. Each round applies every fault once, in turn, to whichever replica leads then:

- ``kill``: SIGKILL. The standby takes over once the lease runs out (the killed one is started again afterwards);
- ``freeze``: SIGSTOP. As a kill, but the frozen one is woken with SIGCONT afterwards and must stand by;
- ``stop``: SIGTERM, a clean stop: the leader ends its lease, the standby takes over at its next try. The
  baseline: what a takeover costs when nothing has to run out (the other faults' ratios are against it).

A takeover is timed from just before the signal to the first /healthz of the standby that says ``"role":
"leader"`` (polled every ``--poll`` seconds). Between two faults the bench waits until exactly one replica leads
and both name it. Prints the median and maximum per fault, the ratios of the medians against the clean stop's, the
bound the code computes (``leading.takeover_within``: the lease plus one try, from the leader's last renewal) and a
JSON line; exit status 1 when a takeover missed the 15 s target.

    .venv/bin/python bench/takeover.py                 # 5 rounds, about 3 minutes
    .venv/bin/python bench/takeover.py --rounds 10 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Results and how to read them: docs/performance.md, section "Leader takeover".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from edgefleet.cloud import leading  # noqa: E402
from tests.cloud.api.memory import write_inventory  # noqa: E402
from tests.support.peers import Mosquitto, free_port, mosquitto, postgres_database  # noqa: E402

# The target for a takeover after the leader dies.
TARGET_S: Final = 15.0
# How long the bench waits for anything (a replica to start, one leader to settle) before giving up.
WAIT_S: Final = 90.0
DEFAULT_DATABASE: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FAULTS: Final = ("kill", "freeze", "stop")
BASELINE: Final = "stop"


class Replica:
    """One ``edgefleet cloud serve`` process on a fresh port, its output appended to ``<name>.log``."""

    def __init__(self, name: str, *, broker: Mosquitto, sites: Path, database: str, directory: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"{name}.log"
        # The bench's own EDGEFLEET_* variables are never inherited: the command line says it all.
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
        args = [sys.executable, "-m", "edgefleet.cli", "cloud", "serve", "--listen", f"127.0.0.1:{self.port}"]
        args += ["--broker", broker.url, "--sites", str(sites), "--database", database]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=2, trust_env=False)

    def role(self) -> str | None:
        """``leader`` or ``standby`` as its /healthz says, None while it does not answer."""
        if self.process.poll() is not None:
            raise SystemExit(f"{self.name} exited ({self.process.returncode}); see {self.log}")
        try:
            body: dict[str, Any] = self.client.get("/healthz").json()
        except (httpx.TransportError, ValueError):
            return None
        return str(body["leadership"]["role"])

    def leadership(self) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.client.get("/healthz").json()
        except (httpx.TransportError, ValueError):
            return None
        shown: dict[str, Any] = body["leadership"]
        return shown

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(30)
        self.client.close()


def wait(check: Callable[[], Any], *, what: str, timeout: float = WAIT_S, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def settled(replicas: list[Replica]) -> tuple[Replica, Replica] | None:
    """(the leader, the standby) once exactly one leads and both name the same leader and epoch."""
    shown = [r.leadership() for r in replicas]
    if any(s is None for s in shown):
        return None
    views = [s for s in shown if s is not None]
    roles = [v["role"] for v in views]
    if sorted(roles) != ["leader", "standby"]:
        return None
    if len({(v["leader"], v["leader_address"], v["epoch"]) for v in views}) != 1:
        return None
    return replicas[roles.index("leader")], replicas[roles.index("standby")]


class Bench:
    def __init__(self, *, broker: Mosquitto, sites: Path, database: str, directory: Path, poll_s: float) -> None:
        self._start: Callable[[str], Replica] = lambda name: Replica(
            name, broker=broker, sites=sites, database=database, directory=directory
        )
        self.poll_s = poll_s
        self.replicas = [self._start("first"), self._start("second")]

    def end(self) -> None:
        for replica in self.replicas:
            replica.end()

    def pair(self) -> tuple[Replica, Replica]:
        return wait(lambda: settled(self.replicas), what="exactly one leader, named by both replicas")  # type: ignore[no-any-return]

    def one(self, fault: str) -> float:
        """Apply ``fault`` to the leader; seconds until the standby's /healthz says it leads. Leaves a settled pair."""
        leader, standby = self.pair()
        sent = {"kill": signal.SIGKILL, "freeze": signal.SIGSTOP, "stop": signal.SIGTERM}[fault]
        started = time.monotonic()
        leader.process.send_signal(sent)
        wait(lambda: standby.role() == "leader", what=f"the takeover after {fault}", interval=self.poll_s)
        took = time.monotonic() - started
        if fault == "freeze":
            leader.process.send_signal(signal.SIGCONT)
            # Its lease ran out while it was frozen: it must find its epoch superseded and stand by.
            wait(lambda: leader.role() == "standby", what="the woken leader to stand by")
        else:
            leader.process.wait(30 if fault == "stop" else 5)
            leader.client.close()
            self.replicas[self.replicas.index(leader)] = self._start(leader.name)
        self.pair()
        return took


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 2),
        "max_s": round(max(values), 2),
        "min_s": round(min(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="takeovers per fault")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("EDGEFLEET_BENCH_DATABASE_URL", DEFAULT_DATABASE),
        help="a PostgreSQL server the bench may create a database on (EDGEFLEET_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between two /healthz of the standby")
    parser.add_argument("--keep-logs", type=Path, help="copy the replicas' and simulator's logs here at the end")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    bound = leading.takeover_within()
    results: dict[str, list[float]] = {fault: [] for fault in FAULTS}
    with tempfile.TemporaryDirectory(prefix="edgefleet-takeover-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        sites = write_inventory(directory / "sites")
        broker = stack.enter_context(mosquitto(directory))
        database = stack.enter_context(postgres_database(args.database_url))
        with (directory / "simulator.log").open("wb") as out:
            sim = subprocess.Popen(
                [sys.executable, "-m", "edgefleet.cli", "sim", "run", "--sites", str(sites), "--broker", broker.url],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack.callback(sim.wait, 30)
        stack.callback(sim.terminate)
        if args.keep_logs is not None:
            stack.callback(lambda: shutil.copytree(directory, args.keep_logs, dirs_exist_ok=True))
        bench = Bench(broker=broker, sites=sites, database=database, directory=directory, poll_s=args.poll)
        stack.callback(bench.end)
        print(f"starting two replicas on {database.rsplit('/', 1)[-1]} ...", flush=True)
        bench.pair()
        for number in range(1, args.rounds + 1):
            for fault in FAULTS:
                took = bench.one(fault)
                results[fault].append(took)
                print(f"round {number}: {fault:6s} -> standby leads after {took:.2f} s", flush=True)

    base = statistics.median(results[BASELINE])
    print()
    print(f"bound (leading.takeover_within: LEASE_S {leading.LEASE_S:g} + CONTEND_EVERY_S {leading.CONTEND_EVERY_S:g},")
    print(f"       from the leader's last renewal, which comes every {leading.RENEW_EVERY_S:g} s): {bound:.1f} s")
    print(f"{'fault':8s} {'median':>8s} {'max':>8s} {'min':>8s} {'x stop':>8s} {'/ bound':>8s}")
    report: dict[str, Any] = {"rounds": args.rounds, "bound_s": bound, "target_s": TARGET_S, "faults": {}}
    for fault in FAULTS:
        figures = summary(results[fault])
        ratio = figures["median_s"] / base if base > 0 else float("inf")
        print(
            f"{fault:8s} {figures['median_s']:7.2f}s {figures['max_s']:7.2f}s {figures['min_s']:7.2f}s "
            f"{ratio:7.1f}x {figures['median_s'] / bound:8.2f}"
        )
        report["faults"][fault] = figures | {"vs_stop": round(ratio, 1), "all_s": [round(v, 2) for v in results[fault]]}
    print(json.dumps(report))
    missed = [fault for fault in FAULTS if max(results[fault]) > TARGET_S]
    if missed:
        print(f"missed the {TARGET_S:g} s target: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
