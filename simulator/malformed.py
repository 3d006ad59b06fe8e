"""Invalid heartbeat payloads for the ``malformed`` fault: what a buggy, outdated or hostile agent might send.

Pure: each variant is made from the heartbeat the box would have sent and a seeded random stream. Every
variant must be refused or caught by the controller's ingest: ``random-bytes`` and ``wrong-shape`` fail
decoding (cause "malformed"), ``wrong-schema`` carries another schema number (cause "schema"), and
``other-box`` is a valid heartbeat that claims another box than its topic's. Called by ``simulator.running``.
"""

from __future__ import annotations

import json
import random
from typing import Final

import msgspec

from edgefleet.messages import SCHEMA_VERSION, Heartbeat, encode
from simulator.faults import MalformedVariant

# Whatever the draw, a payload that starts with 0xFF is neither UTF-8 nor JSON.
NOT_JSON_PREFIX: Final = b"\xff"
RANDOM_BYTES_RANGE: Final = (16, 256)


def malformed_payload(variant: MalformedVariant, heartbeat: Heartbeat, *, rng: random.Random, other_box: str) -> bytes:
    """``heartbeat`` spoiled as ``variant``; ``other_box`` is the id an ``other-box`` payload claims."""
    if variant == "random-bytes":
        return NOT_JSON_PREFIX + rng.randbytes(rng.randint(*RANDOM_BYTES_RANGE))
    if variant == "wrong-shape":
        shapes: list[object] = [
            # Right keys, wrong types: a sequence number as text, sections as the wrong containers.
            {
                "schema": SCHEMA_VERSION,
                "box": heartbeat.box,
                "site": heartbeat.site,
                "seq": str(heartbeat.seq),
                "host": [],
                "gpu": "none",
                "apps": None,
            },
            # A list where an object belongs.
            [heartbeat.box, heartbeat.seq, heartbeat.sent_at],
            # An object missing everything but the envelope.
            {"schema": SCHEMA_VERSION, "box": heartbeat.box},
        ]
        return json.dumps(rng.choice(shapes)).encode()
    if variant == "wrong-schema":
        return encode(msgspec.structs.replace(heartbeat, schema=SCHEMA_VERSION + 1))
    return encode(msgspec.structs.replace(heartbeat, box=other_box))
