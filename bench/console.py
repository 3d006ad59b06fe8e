"""The console with the whole inventory (issue 16, item 10): how fast the fleet overview is ready in a browser, what
the page weighs, how late a live update reaches it, and what the event stream costs the controller.

Everything real, on one machine: Mosquitto (started here on a free loopback port), the simulator playing every
site of ``sites/`` (``edgefleet sim run``, a process of its own, its clusters too), the controller in this
process (``Controller`` built as ``edgefleet cloud serve`` builds it, served by uvicorn in a thread) and Debian's
headless Chromium driven by Playwright. Phases:

1. the controller's side: building one frame of every box (``live.FleetFeed.frame``: read the fleet under its
   lock, judge it, make the cells), what one stream does with it per batch (``visible`` + ``changed_cells``),
   and the snapshot's JSON, each timed ``--rounds`` times;
2. the overview, loaded ``--rounds`` times in a fresh browser context each: navigation start to the heat map
   drawn (the page's ``heatmap-drawn`` performance mark, set after every cell is in the DOM), and the bytes it
   took (HTML, CSS, scripts and catalogues as the browser counted them, and the snapshot the stream sends first,
   gzipped as the stream sends it);
3. a live update: one site is cut (fault ``cut``); the time from the controller's API calling the site
   unreachable to every cell of the site drawn "unreachable" in the open page, without a reload;
4. the versions matrix: ``GET /api/v1/versions`` over the whole inventory (time and size), the activity tokens'
   database reads (``FleetFeed.activity`` with nothing cached), and the versions page, cold, from navigation start
   to the matrix drawn.

    .venv/bin/python bench/console.py              # about 2 minutes
    scripts/bench console --rounds 10

Prints the figures and a JSON line. Results and how to read them: docs/performance.md, section "Console".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from edgefleet.clock import SystemClock  # noqa: E402
from edgefleet.cloud.access.authorizing import Principal  # noqa: E402
from edgefleet.cloud.api import create_app  # noqa: E402
from edgefleet.cloud.api.console_schemas import overview_public  # noqa: E402
from edgefleet.cloud.api.live import FleetFeed, visible  # noqa: E402
from edgefleet.cloud.api.routes.events import GZIP_LEVEL, GZIP_WBITS  # noqa: E402
from edgefleet.cloud.console.views import changed_cells  # noqa: E402
from edgefleet.cloud.controller import Controller  # noqa: E402
from edgefleet.cloud.settings import Settings  # noqa: E402
from tests.cloud.api.serving import serving  # noqa: E402
from tests.support.peers import free_port, mosquitto, wait_for  # noqa: E402

# The feed's figures as an admin sees them: the whole fleet.
ADMIN = Principal(name="bench", role="admin")

# The targets: the overview ready within 1 s, a live update on the page within 2 s.
READY_TARGET_S: Final = 1.0
UPDATE_TARGET_S: Final = 2.0
# Enough of the fleet online that the map is the fleet's, not a half-started one.
ONLINE_SHARE: Final = 0.95


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds of each of ``rounds`` calls."""
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="page loads and controller-side timings")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds at most for the fleet to come online")
    parser.add_argument("--cut-site", default=None, help="the site to cut (default: the first transfer center)")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        parser.error("Debian's chromium is not installed: apt-get install chromium")
    logging.basicConfig(level=logging.ERROR)
    figures: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    with (
        tempfile.TemporaryDirectory() as name,
        mosquitto(Path(name), extra_config="max_connections -1\n") as broker,
    ):
        directory = Path(name)
        kubeconfig = directory / "sim.kubeconfig"
        control = f"127.0.0.1:{free_port()}"
        sim_log = (directory / "simulator.log").open("wb")
        simulator = subprocess.Popen(
            [
                *(sys.executable, "-m", "edgefleet.cli", "sim", "run", "--sites", str(REPO / "sites")),
                *("--broker", broker.url, "--listen", control, "--kubeconfig", str(kubeconfig)),
            ],
            cwd=REPO,
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        controller: Controller | None = None
        try:
            wait_for(kubeconfig.exists, timeout=120, interval=0.5, what="the simulator's kubeconfig")
            settings = Settings(
                broker_url=broker.url,
                database_url=f"sqlite:///{directory}/edgefleet.db",
                sites_dir=REPO / "sites",
                kubeconfig=kubeconfig,
            )
            controller = Controller(settings, clock=SystemClock())
            controller.start()
            running = controller
            # Every page and API call needs a token (docs/security.md); the browser sends it as a header, as the
            # console's tests do until browser sign-in lands.
            token, _ = controller.tokens.create("bench", "admin", None, now=time.time(), expires_in_s=None)
            bearer = {"Authorization": f"Bearer {token}"}
            with (
                serving(create_app(settings, controller=controller)) as url,
                httpx.Client(base_url=url, headers=bearer) as api,
            ):

                def online_share() -> float | None:
                    counters = api.get("/api/v1/overview", timeout=30).json()["counters"]
                    share: float = counters["boxes_online"] / counters["boxes"]
                    return share if share >= ONLINE_SHARE else None

                figures["online_share"] = round(
                    wait_for(online_share, timeout=args.settle, interval=1.0, what="the fleet online"), 3
                )
                snapshot = api.get("/api/v1/overview", timeout=30)
                cells = snapshot.json()["cells"]
                figures["boxes"] = len(cells)
                figures["sites"] = snapshot.json()["counters"]["sites"]

                # 1. The controller's side.
                feed = FleetFeed(running, coalesce_s=0.0)
                frame = feed.frame()
                layout, sent = visible(frame, ADMIN)
                counters = feed.counters(frame, layout, ADMIN)
                figures["frame_ms"] = summary(timed(feed.frame, args.rounds * 4))

                def one_batch() -> None:
                    _, now = visible(feed.frame(), ADMIN)
                    changed_cells(sent, now)

                figures["frame_and_batch_ms"] = summary(timed(one_batch, args.rounds * 4))
                figures["snapshot_json_ms"] = summary(
                    timed(
                        lambda: overview_public(
                            frame.at, frame.inventory_version, layout, sent, counters
                        ).model_dump_json(),
                        args.rounds * 4,
                    )
                )
                figures["snapshot_bytes"] = len(snapshot.content)
                body = overview_public(frame.at, frame.inventory_version, layout, sent, counters).model_dump_json()

                def gzipped() -> bytes:  # as the stream sends it (events._gzipped): one event, flushed
                    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
                    event = f"event: snapshot\ndata: {body}\n\n".encode()
                    return compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)

                figures["snapshot_gzip_bytes"] = len(gzipped())
                figures["snapshot_gzip_ms"] = summary(timed(gzipped, args.rounds * 4))
                print(
                    "controller:",
                    json.dumps(
                        {
                            k: figures[k]
                            for k in (
                                "frame_ms",
                                "frame_and_batch_ms",
                                "snapshot_json_ms",
                                "snapshot_bytes",
                                "snapshot_gzip_bytes",
                                "snapshot_gzip_ms",
                            )
                        }
                    ),
                    flush=True,
                )

                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=chromium, headless=True)
                    try:
                        # 2. The overview, cold each time (a fresh context: no cache).
                        ready, weights = [], []
                        for _ in range(args.rounds):
                            context = browser.new_context(
                                viewport={"width": 1920, "height": 1080}, extra_http_headers=bearer
                            )
                            page = context.new_page()
                            page.goto(url + "/")
                            page.wait_for_selector("body[data-ready=overview]", state="attached", timeout=30_000)
                            drawn = page.evaluate("performance.getEntriesByName('heatmap-drawn')[0].startTime")
                            assert page.locator("#heatmap .cell").count() == len(cells)
                            ready.append(drawn)
                            weights.append(
                                page.evaluate(
                                    "performance.getEntriesByType('navigation').concat("
                                    "performance.getEntriesByType('resource'))"
                                    ".filter(e => !e.name.endsWith('/api/v1/events'))"
                                    ".reduce((sum, e) => sum + e.encodedBodySize, 0)"
                                )
                            )
                            context.close()
                        figures["ready_ms"] = summary(ready)
                        figures["assets_bytes"] = max(weights)
                        figures["page_bytes"] = max(weights) + figures["snapshot_gzip_bytes"]
                        print(
                            "overview:",
                            json.dumps({k: figures[k] for k in ("ready_ms", "assets_bytes", "page_bytes")}),
                            flush=True,
                        )

                        # 3. A live update: cut a site with the page open.
                        inventory = running.state.inventory
                        site = args.cut_site or next(
                            s.id
                            for s in sorted(inventory.sites.values(), key=lambda s: s.id)
                            if s.kind == "transfer-center"
                        )
                        page = browser.new_page(viewport={"width": 1920, "height": 1080}, extra_http_headers=bearer)
                        page.goto(url + "/")
                        page.wait_for_selector("body[data-ready=overview]", state="attached", timeout=30_000)
                        page.evaluate("window.sameDocument = true")
                        boxes = len(inventory.sites[site].boxes)
                        cut_at = time.perf_counter()
                        httpx.post(
                            f"http://{control}/faults", json={"kind": "cut", "site": site, "seconds": 120}
                        ).raise_for_status()

                        def unreachable() -> float | None:
                            health = api.get(f"/api/v1/sites/{site}").json()["health"]
                            return time.perf_counter() if health == "unreachable" else None

                        api_at = wait_for(unreachable, timeout=60, interval=0.02, what=f"{site} unreachable")
                        page.wait_for_function(
                            "([site, n]) => document.querySelectorAll("
                            "`#heatmap .site[data-site='${site}'] .cell[data-state=unreachable]`).length === n",
                            arg=[site, boxes],
                            polling=20,
                            timeout=30_000,
                        )
                        page_at = time.perf_counter()
                        assert page.evaluate("window.sameDocument") is True, "the page reloaded"
                        figures["update"] = {
                            "site": site,
                            "boxes": boxes,
                            "cut_to_api_s": round(api_at - cut_at, 2),
                            "api_to_page_s": round(page_at - api_at, 2),
                        }
                        print("update:", json.dumps(figures["update"]), flush=True)

                        # 4. The versions matrix: the route, the activity reads, the page.
                        figures["versions_route_ms"] = summary(
                            timed(lambda: api.get("/api/v1/versions", timeout=30).raise_for_status(), args.rounds * 2)
                        )
                        figures["versions_bytes"] = len(api.get("/api/v1/versions", timeout=30).content)
                        # Nothing cached (extras_every_s 0): each call reads the alert tally, the newest alert
                        # and the rollouts, as a feed does once a second however many browsers listen.
                        uncached = FleetFeed(running, coalesce_s=0.0, extras_every_s=0.0)
                        one_frame = uncached.frame()
                        figures["activity_ms"] = summary(
                            timed(lambda: uncached.activity(one_frame, ADMIN), args.rounds * 4)
                        )
                        versions_ready = []
                        for _ in range(args.rounds):
                            context = browser.new_context(
                                viewport={"width": 1920, "height": 1080}, extra_http_headers=bearer
                            )
                            page = context.new_page()
                            page.goto(url + "/versions")
                            page.wait_for_selector("body[data-ready=versions]", state="attached", timeout=30_000)
                            versions_ready.append(
                                page.evaluate("performance.getEntriesByName('versions-drawn')[0].startTime")
                            )
                            context.close()
                        figures["versions_ready_ms"] = summary(versions_ready)
                        print(
                            "versions:",
                            json.dumps(
                                {
                                    k: figures[k]
                                    for k in ("versions_route_ms", "versions_bytes", "activity_ms", "versions_ready_ms")
                                }
                            ),
                            flush=True,
                        )
                    finally:
                        browser.close()
        finally:
            if controller is not None:
                controller.stop()
            simulator.terminate()
            simulator.wait(30)
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures), flush=True)
    missed = figures["ready_ms"]["max"] > READY_TARGET_S * 1000 or figures["update"]["api_to_page_s"] > UPDATE_TARGET_S
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
