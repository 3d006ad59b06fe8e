"""Every malformed variant is something the controller's ingest must refuse or catch, for the reason it names."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import FakeClock
from edgefleet.errors import MessageRejected
from edgefleet.messages import AppReport, GpuReport, HostSample, decode_heartbeat, encode
from simulator.malformed import malformed_payload

HEARTBEAT = BoxReporter("site-01-gpu-01", "site-01", interval_s=10, clock=FakeClock()).heartbeat(
    HostSample(cpu_percent=10.0), GpuReport(available=False, reason="none"), AppReport(source="none")
)


@pytest.mark.parametrize(
    ("variant", "cause"), [("random-bytes", "malformed"), ("wrong-shape", "malformed"), ("wrong-schema", "schema")]
)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_refused_variants_are_refused_for_their_cause(variant: str, cause: str, seed: int) -> None:
    payload = malformed_payload(variant, HEARTBEAT, rng=random.Random(seed), other_box="x")  # type: ignore[arg-type]
    with pytest.raises(MessageRejected) as caught:
        decode_heartbeat(payload)
    assert caught.value.cause == cause


def test_other_box_is_a_valid_heartbeat_claiming_another_box() -> None:
    payload = malformed_payload("other-box", HEARTBEAT, rng=random.Random(0), other_box="site-01-gpu-02")
    claimed = decode_heartbeat(payload)
    assert claimed.box == "site-01-gpu-02"
    assert (claimed.seq, claimed.boot) == (HEARTBEAT.seq, HEARTBEAT.boot)


def test_the_valid_heartbeat_itself_decodes() -> None:
    assert decode_heartbeat(encode(HEARTBEAT)) == HEARTBEAT
