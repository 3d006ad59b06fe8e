"""The ingest's table of the inventory's topics is a shortcut only: any topic gets the outcome that parsing it
(``topics.parse_box_topic``) and looking the box up in the inventory would give (edgefleet.cloud.ingesting)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet import topics
from edgefleet.clock import FakeClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.ingesting import Ingest
from edgefleet.inventory import Inventory
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, T0, heartbeat, inventory, status, wire

INVENTORY: Inventory = inventory()

box_segments = st.sampled_from([BOX, BOX_2, OTHER_BOX, "sh-test-gpu-99", "Not_An_Id", "", BOX + "/x", BOX.upper()])
channels = st.sampled_from(["heartbeat", "status", "telemetry", "", "heartbeat/"])
prefixes = st.sampled_from([topics.PREFIX, "edgefleet/v2/boxes", "edgefleet/v1/box", "/edgefleet/v1/boxes"])
built_topics = st.builds(lambda p, b, c: f"{p}/{b}/{c}", prefixes, box_segments, channels)


def expected_outcome(topic: str) -> str:
    """What the rules say, worked out without the ingest: parse, look the box up, decode."""
    parsed = topics.parse_box_topic(topic)
    if parsed is None:
        return "bad-topic"
    if parsed[0] not in INVENTORY.boxes:
        return "unknown-box"
    return "accepted"


@settings(max_examples=300, deadline=None)
@given(topic=st.one_of(built_topics, st.text(max_size=60)))
def test_every_topic_gets_the_outcome_the_parser_gives(topic: str) -> None:
    ingest = Ingest(FleetState.for_inventory(INVENTORY), "mqtt://127.0.0.1:1", clock=FakeClock(T0 + 100))
    parsed = topics.parse_box_topic(topic)
    # A payload that is right for the topic's box and channel, so that only the topic decides the outcome.
    box = parsed[0] if parsed else BOX
    site = INVENTORY.boxes[box].site if box in INVENTORY.boxes else "sh-test"
    payload = (
        wire(status("online", box=box, site=site))
        if parsed and parsed[1] == "status"
        else wire(heartbeat(1, box=box, site=site))
    )
    assert ingest.handle(topic, payload) == expected_outcome(topic)
