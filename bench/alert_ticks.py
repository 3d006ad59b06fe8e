"""Alert ticks: does every alert tick finish within its 0.2 s in the shipped 2,000-box setting (issue 13, item 7)?

The demo's setup, measured from inside: Mosquitto (started here on a free loopback port), the simulator playing
every box of ``sites/`` (``edgefleet sim run``, a heartbeat every 10 s), and the real controller (``Controller``
with everything its ``start()`` starts, SQLite in a temporary directory) in this process, so that its parts can
be timed: every tick and pass of the alert loop, every flush of the persister, every database transaction, and
every garbage collection (``gc.callbacks``). The runs APScheduler skipped (``scheduling.FoldedRuns``'s "Skipped a
run" records) are counted. The first ``--settle`` seconds (the simulator's boxes connecting) are left out of the figures.

A tick longer than ``looping.TICK_S`` is printed with what overlapped it. Exit status 1 when a tick overran or
APScheduler skipped one. ``--unfrozen`` undoes ``controller.settle_heap`` after start-up, to see the cause again.

    .venv/bin/python bench/alert_ticks.py [--seconds 80] [--unfrozen]

Results and how to read them: docs/performance.md, section "Alert ticks".
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet.clock import SystemClock  # noqa: E402
from edgefleet.cloud import persisting  # noqa: E402
from edgefleet.cloud import store as store_module  # noqa: E402
from edgefleet.cloud.alerting import looping  # noqa: E402
from edgefleet.cloud.controller import Controller  # noqa: E402
from edgefleet.cloud.settings import Settings  # noqa: E402
from tests.support.peers import free_port, mosquitto  # noqa: E402

# (what, started at, seconds), from every thread.
Event = tuple[str, float, float]


class Timings:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.skipped: list[float] = []
        self._lock = threading.Lock()
        self._gc_started = 0.0

    def note(self, what: str, started: float, seconds: float) -> None:
        with self._lock:
            self.events.append((what, started, seconds))

    def timed(self, what: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.note(what, started, time.perf_counter() - started)

        return wrapper

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.note(f"gc generation {info['generation']}", self._gc_started, time.perf_counter() - self._gc_started)

    def snapshot(self, after: float) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e[1] >= after]


class SkipCounter(logging.Handler):
    def __init__(self, timings: Timings) -> None:
        super().__init__(logging.DEBUG)
        self.timings = timings

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Skipped a run"):
            self.timings.skipped.append(time.perf_counter())


def instrument(timings: Timings) -> None:
    loop, persister, store = looping.AlertLoop, persisting.Persister, store_module.Store
    loop.tick = timings.timed("tick", loop.tick)  # type: ignore[method-assign]
    loop.run_pass = timings.timed("pass", loop.run_pass)  # type: ignore[method-assign]
    persister.flush = timings.timed("flush", persister.flush)  # type: ignore[method-assign]
    transaction = store.transaction

    @contextlib.contextmanager
    def timed_transaction(self: store_module.Store, doing: str) -> Iterator[Any]:
        started = time.perf_counter()
        with transaction(self, doing) as connection:
            yield connection
        timings.note(f"transaction: {doing}", started, time.perf_counter() - started)

    store.transaction = timed_transaction  # type: ignore[method-assign]
    gc.callbacks.append(timings.on_gc)
    # The controller's schedulers tell each skipped run through edgefleet.cloud.scheduling (the first of a streak
    # a warning, the rest at debug), not through APScheduler's own warning.
    scheduler_log = logging.getLogger("edgefleet.cloud.scheduling")
    scheduler_log.setLevel(logging.DEBUG)  # the root logger's level below would hide the records counted
    scheduler_log.addHandler(SkipCounter(timings))


def figures(events: list[Event]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for what in sorted({e[0] for e in events}):
        seconds = sorted(e[2] for e in events if e[0] == what)
        out[what] = {
            "n": len(seconds),
            "p50_ms": round(1000 * seconds[len(seconds) // 2], 1),
            "p99_ms": round(1000 * seconds[int(len(seconds) * 0.99)], 1),
            "max_ms": round(1000 * seconds[-1], 1),
            "over_tick": sum(1 for s in seconds if s > looping.TICK_S),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=80.0, help="how long to run, settling included")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds left out at the start")
    parser.add_argument("--unfrozen", action="store_true", help="undo controller.settle_heap after start-up")
    args = parser.parse_args()
    timings = Timings()
    instrument(timings)
    logging.basicConfig(level=logging.ERROR)
    with (
        tempfile.TemporaryDirectory() as directory,
        mosquitto(Path(directory), extra_config="max_connections -1\n") as broker,
    ):
        sim_log = (Path(directory) / "simulator.log").open("wb")
        sim_args = ["sim", "run", "--sites", str(REPO / "sites"), "--broker", broker.url]
        sim_args += ["--listen", f"127.0.0.1:{free_port()}"]
        simulator = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", *sim_args],
            cwd=REPO,
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        settings = Settings(
            broker_url=broker.url, database_url=f"sqlite:///{directory}/edgefleet.db", sites_dir=REPO / "sites"
        )
        controller = Controller(settings, clock=SystemClock())
        # The passes must judge the fleet while measured. A fresh database remembers no box online, so the
        # controller's start-up hold (``hearing``: recovering until the boxes seen before are heard again) ends as
        # soon as the ingest is subscribed; whether it did is printed (``hearing`` and ``evaluating``).
        controller.start()
        if args.unfrozen:
            gc.unfreeze()
        started = time.perf_counter()
        judging: list[float] = []
        try:
            deadline = started + args.seconds
            while (left := deadline - time.perf_counter()) > 0:
                time.sleep(min(1.0, left))
                if controller.alert_loop.evaluating:
                    judging.append(time.perf_counter())
            hearing = controller.alert_loop.hearing
        finally:
            controller.stop()
            simulator.terminate()
            simulator.wait(30)
        online = sum(1 for live in controller.state.boxes.values() if live.last_seen is not None)
    after = started + args.settle
    events = timings.snapshot(after)
    result = figures(events)
    for what, figure in result.items():
        print(f"{what:>50}: {figure}")
    skipped = sum(1 for at in timings.skipped if at >= after)
    for what, at, seconds in events:
        if what == "tick" and seconds > looping.TICK_S:
            overlapping = [
                f"{other} +{1000 * (start - at):.0f} ms for {1000 * took:.0f} ms"
                for other, start, took in events
                if other != "tick" and start < at + seconds and start + took > at and took > 0.01
            ]
            print(f"tick at {at - started:.1f} s took {1000 * seconds:.0f} ms; overlapping: {overlapping}")
    measured = args.seconds - args.settle
    print(f"boxes online {online} of {len(controller.state.boxes)}; {skipped} skipped ticks in {measured:.0f} s")
    evaluating_from = round(min(judging) - started, 1) if judging else None
    print(f"hearing at the end: {hearing.state} ({hearing.reason}); passes judged the fleet from {evaluating_from} s")
    print(
        json.dumps(
            {
                "unfrozen": args.unfrozen,
                "seconds": measured,
                "skipped": skipped,
                "evaluating_from_s": evaluating_from,
                "figures": result,
            }
        )
    )
    overran = result.get("tick", {}).get("over_tick", 0)
    return 1 if skipped or overran else 0


if __name__ == "__main__":
    sys.exit(main())
