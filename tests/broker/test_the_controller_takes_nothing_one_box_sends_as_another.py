"""Issue 17's "done when": a box of one center cannot publish a single message that the controller accepts as
another box's. The controller's real ingest logs in to the secured broker over TLS with its own account and
certificate (``Settings`` from the environment, as ``cloud serve`` reads it); a box of Shanghai sends well-formed
heartbeats and statuses in the name of a Beijing box and of its Shanghai neighbour, then its own. Only its own
are taken: the forged ones never reach the controller, so nothing of theirs shows in the fleet or the counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.settings import Settings
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, T0, heartbeat, inventory, status, wire
from tests.support.peers import wait_for
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
