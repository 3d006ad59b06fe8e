"""Box accounts at fleet scale on the secured broker: how long adding thousands takes, and how fast a revoke
cuts a connected box off.

Makes a CA, certificates and the configuration ``edgefleet broker config`` writes in a temporary directory,
starts Mosquitto from it on a free loopback port, then:
1. adds ``--boxes`` box accounts one after another through the dynamic-security plugin, over one admin connection
   (``edgefleet.cloud.broker.accounts``, what ``edgefleet broker box add`` and a simulator at start would do), and
   reports the time per account for the first and the last hundred: the plugin rewrites its whole account file on
   every change, so the cost per account grows with the number of accounts;
2. connects one of the boxes over TLS, revokes it, and takes the time from the revoke command to the box's
   disconnect (what "cut off at once" means in seconds).

    scripts/bench broker_accounts [--boxes 2000]
    .venv/bin/python bench/broker_accounts.py [--boxes 2000]

Results: docs/performance.md, section "Broker accounts".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet.cloud.broker import configuring, pki  # noqa: E402
from edgefleet.cloud.broker.accounts import BrokerAccounts  # noqa: E402
from tests.support.peers import free_port, mosquitto_from  # noqa: E402
from tests.support.secured_broker import SecuredBroker, box  # noqa: E402

# The window at each end of the run over which the time per account is taken.
WINDOW = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=2000, help="box accounts to add")
    args = parser.parse_args()
    if args.boxes < 2 * WINDOW:
        parser.error(f"--boxes must be at least {2 * WINDOW}")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        now = datetime.now(UTC)
        pki_dir = directory / "pki"
        pki.init_ca(pki_dir, now=now)
        pki.issue(pki_dir, "broker", "broker", now=now)
        pki.issue(pki_dir, "controller", "controller", now=now)
        pki.issue(pki_dir, "box", "box-00000", now=now)
        port = free_port()
        written = configuring.write_config(
            directory / "broker", pki_dir=pki_dir, port=port, run_as="root" if os.geteuid() == 0 else None
        )
        with mosquitto_from(written.conf, port) as broker:
            secured = SecuredBroker(broker, pki_dir, directory / "broker", written.settings)
            times: list[float] = []
            accounts = {}
            started = time.perf_counter()
            with BrokerAccounts.connect(written.settings) as admin:
                for n in range(args.boxes):
                    before = time.perf_counter()
                    account = admin.add_box(f"box-{n:05d}")
                    times.append(time.perf_counter() - before)
                    if n == 0:
                        accounts[account.box] = account
                total = time.perf_counter() - started
                file_size = written.dynsec.stat().st_size

                peer = box(secured, accounts["box-00000"])
                assert peer.connected, peer.refusal
                gone = threading.Event()
                peer.client.on_disconnect = lambda *a: gone.set()
                before = time.perf_counter()
                admin.revoke_box("box-00000")
                assert gone.wait(10), "the revoked box was not disconnected within 10 s"
                cut_off = time.perf_counter() - before
                peer.close()
                listed = len(admin.list_boxes())
                assert listed == args.boxes - 1, f"listed {listed} box accounts, expected {args.boxes - 1}"

    first, last = times[:WINDOW], times[-WINDOW:]
    print(f"box accounts added: {args.boxes} in {total:.1f} s ({args.boxes / total:.0f}/s overall)")
    print(
        f"per account, first {WINDOW}: median {statistics.median(first) * 1000:.1f} ms; "
        f"last {WINDOW}: median {statistics.median(last) * 1000:.1f} ms"
    )
    print(f"account file at the end: {file_size / 1e6:.2f} MB")
    print(f"revoke to disconnect of a connected box: {cut_off * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
