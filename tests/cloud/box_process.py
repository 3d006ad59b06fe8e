"""A box in a process of its own, for the tests that kill it: the agent's real BoxReporter and BoxLink (paho's
own thread), static health readings, a heartbeat every ``--interval`` seconds. SIGTERM stops it cleanly
(retained "offline", reason shutdown); SIGKILL leaves the broker to publish its Last Will.

    python -m tests.cloud.box_process --broker mqtt://127.0.0.1:PORT --box BOX --site SITE
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

from edgefleet.agent.link import BoxLink, BrokerAddress
from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import SystemClock
from edgefleet.messages import AppReport, GpuReport, HostSample


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--box", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    reporter = BoxReporter(args.box, args.site, interval_s=args.interval, clock=SystemClock())
    link = BoxLink(reporter, BrokerAddress.parse(args.broker), keepalive_s=5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.connect_async()
    link.client.loop_start()
    host = HostSample(cpu_percent=5.0, memory_total_bytes=100, memory_available_bytes=40)
    gpu = GpuReport(available=False, reason="no NVIDIA driver")
    apps = AppReport(source="none")
    while not stop.wait(args.interval):
        link.send(reporter.heartbeat(host, gpu, apps))
    info = link.stop()
    if info is not None:
        info.wait_for_publish(timeout=5)
    link.disconnect()
    time.sleep(0.1)
    link.client.loop_stop()


if __name__ == "__main__":
    main()
