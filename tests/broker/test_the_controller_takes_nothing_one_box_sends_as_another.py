"""Issue 17's "done when": a box of one center cannot publish a single message that the controller accepts as
another box's. The controller's real ingest logs in to the secured broker over TLS with its own account and
certificate (``Settings`` from the environment, as ``cloud serve`` reads it); a box of Shanghai sends well-formed
heartbeats and statuses in the name of a Beijing box and of its Shanghai neighbour, then its own. Only its own
are taken: the forged ones never reach the controller, so nothing of theirs shows in the fleet or the counters.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.broker import grants
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.settings import Settings
from tests.cli.entry import spawn
from tests.cloud.api.memory import write_inventory
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, T0, heartbeat, inventory, status, wire
from tests.support.peers import free_port, wait_for
from tests.support.secured_broker import Peer, SecuredBroker, box, secured_broker


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path) as made:
        yield made


def test_forged_messages_never_reach_the_controller(secured: SecuredBroker) -> None:
    cert, key = secured.controller_cert()
    settings = Settings.from_env(
        {
            "EDGEFLEET_BROKER_URL": f"mqtts://edgefleet_controller@127.0.0.1:{secured.port}",
            "EDGEFLEET_BROKER_PASSWORD_FILE": str(secured.config_dir / "controller.password"),
            "EDGEFLEET_BROKER_CA_FILE": str(secured.ca_file),
            "EDGEFLEET_BROKER_CERT_FILE": str(cert),
            "EDGEFLEET_BROKER_KEY_FILE": str(key),
        }
    )
    state = FleetState.for_inventory(inventory())
    ingest = Ingest(
        state, settings.broker_url, clock=FakeClock(T0 + 100_000), login=settings.broker_login, tls=settings.broker_tls
    )
    ingest.start()
    shanghai: Peer | None = None
    try:
        assert ingest.wait_subscribed(10), ingest.refused
        shanghai = box(secured, secured.add_box(BOX))
        assert shanghai.connected, shanghai.refusal

        for victim in (OTHER_BOX, BOX_2):
            forged_beat = wire(heartbeat(1, box=victim, site=inventory().boxes[victim].site))
            forged_status = wire(status("offline", box=victim, site=inventory().boxes[victim].site))
            assert shanghai.publish(topics.heartbeat_topic(victim), forged_beat) == "Not authorized"
            assert shanghai.publish(topics.status_topic(victim), forged_status, retain=True) == "Not authorized"
        # Its own, last: the broker delivers one client's messages in order, so once these are in, anything
        # forged before them would have been too.
        assert shanghai.publish(topics.heartbeat_topic(BOX), wire(heartbeat(1))) == "Success"
        assert shanghai.publish(topics.status_topic(BOX), wire(status("online"))) == "Success"

        wait_for(lambda: ingest.counters["accepted"] >= 2, what="the box's own heartbeat and status")
        counts = {outcome: n for outcome, n in ingest.counters.items() if n}
        assert counts == {"accepted": 2}
        with state.lock:
            assert state.boxes[BOX].heartbeat is not None
            for victim in (OTHER_BOX, BOX_2):
                assert state.boxes[victim].heartbeat is None
                assert state.boxes[victim].status_state is None
    finally:
        if shanghai is not None:
            shanghai.close()
        ingest.stop()


def test_cloud_serve_connects_over_tls_with_its_account(secured: SecuredBroker, tmp_path: Path) -> None:
    """``edgefleet cloud serve`` with its command-line options for the secured broker: /healthz says connected."""
    port = free_port()
    cert, key = secured.controller_cert()
    with spawn(
        "cloud", "serve", "--listen", f"127.0.0.1:{port}",
        "--broker", f"mqtts://{grants.CONTROLLER_USERNAME}@127.0.0.1:{secured.port}",
        "--broker-password-file", str(secured.config_dir / "controller.password"),
        "--broker-ca-file", str(secured.ca_file), "--broker-cert-file", str(cert), "--broker-key-file", str(key),
        "--sites", str(write_inventory(tmp_path / "sites")), "--database", f"sqlite:///{tmp_path / 'edgefleet.db'}",
    ) as process:  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

                def connected() -> dict[str, object] | None:
                    assert process.poll() is None, "the controller exited"
                    try:
                        body: dict[str, object] = client.get("/healthz").json()
                    except httpx.TransportError:
                        return None
                    return body if body.get("broker_connected") else None

                health = wait_for(connected, timeout=20, what="/healthz to say the broker is connected")
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=20)
        except BaseException:
            process.kill()
            print(process.communicate()[0])
            raise

    assert health["broker_connected"] is True
    assert f"broker=mqtts://{grants.CONTROLLER_USERNAME}@127.0.0.1:{secured.port}" in output
    assert secured.controller_password() not in output
