"""The demo's fleet on the secured broker: how long making every box's account takes, and how long the simulated
fleet takes to come online over TLS, each box with its own login (what scripts/demo does at start).

Makes a CA and certificates in a temporary directory, then:
1. writes the broker's configuration with an account for every box of ``--sites`` in the plugin's first file
   (``edgefleet broker config --boxes-from``) and times it;
2. starts Mosquitto from it and the simulator (mqtts://, one client certificate, ``--box-logins``), and times
   from the simulator's start until every box is connected (its /status);
3. with ``--online N``: on a fresh broker, adds N accounts over the control topic in batches
   (``BrokerAccounts.add_boxes``), for comparison with step 1.

    scripts/bench secured_fleet [--sites sites] [--online 2000]

Results: docs/performance.md, section "Broker accounts".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgefleet.cloud.broker import configuring, pki  # noqa: E402
from edgefleet.cloud.broker.accounts import BrokerAccounts  # noqa: E402
from edgefleet.inventory import load_inventory  # noqa: E402
from simulator.running import SimulatorOptions, start_in_background  # noqa: E402
from tests.support.peers import free_port, mosquitto_from  # noqa: E402

RUN_AS = "root" if os.geteuid() == 0 else None
ONLINE_TIMEOUT_S = 300.0


def _pki(directory: Path) -> Path:
    now = datetime.now(UTC)
    pki_dir = directory / "pki"
    pki.init_ca(pki_dir, now=now)
    for kind, name in (("broker", "broker"), ("controller", "controller"), ("box", "simulator")):
        pki.issue(pki_dir, kind, name, now=now)  # type: ignore[arg-type]
    return pki_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=Path, default=REPO / "sites", help="the site inventory")
    parser.add_argument("--online", type=int, default=0, help="also add this many accounts over the control topic")
    args = parser.parse_args()
    boxes = list(load_inventory(args.sites).boxes)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki_dir = _pki(directory)
        port = free_port()
        before = time.perf_counter()
        written = configuring.write_config(directory / "broker", pki_dir=pki_dir, port=port, run_as=RUN_AS, boxes=boxes)
        logins = directory / "logins.json"
        boxes_json = {b: {"username": b, "password": p} for b, p in written.box_passwords.items()}
        logins.write_text(json.dumps({"boxes": boxes_json}))
        logins.chmod(0o600)
        config_s = time.perf_counter() - before
        with mosquitto_from(written.conf, port):
            options = SimulatorOptions(
                sites_dir=args.sites,
                broker_url=f"mqtts://127.0.0.1:{port}",
                ca_file=pki_dir / pki.CA_CERT,
                cert_file=pki.cert_path(pki_dir, "box", "simulator"),
                key_file=pki.key_path(pki_dir, "box", "simulator"),
                box_logins=logins,
                listen="127.0.0.1:0",
                kubeconfig=directory / "kubeconfig",
                registry_hosts=directory / "registries",
            )
            started = time.perf_counter()
            running = start_in_background(options, timeout_s=ONLINE_TIMEOUT_S)
            try:
                connected = 0
                while time.perf_counter() - started < ONLINE_TIMEOUT_S:
                    connected = httpx.get(f"{running.url}/status").json()["boxes"]["connected"]
                    if connected == len(boxes):
                        break
                    time.sleep(0.1)
                online_s = time.perf_counter() - started
            finally:
                running.stop()
    print(f"accounts written into the plugin's first file: {len(boxes)} in {config_s:.2f} s")
    print(
        f"simulator start -> {connected}/{len(boxes)} boxes connected over TLS with their own logins: {online_s:.1f} s"
    )

    if args.online:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            pki_dir = _pki(directory)
            port = free_port()
            written = configuring.write_config(directory / "broker", pki_dir=pki_dir, port=port, run_as=RUN_AS)
            with mosquitto_from(written.conf, port), BrokerAccounts.connect(written.settings, timeout_s=600) as admin:
                before = time.perf_counter()
                admin.add_boxes([f"box-{n:05d}" for n in range(args.online)])
                online_add_s = time.perf_counter() - before
        print(f"accounts added over the control topic, batched: {args.online} in {online_add_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
