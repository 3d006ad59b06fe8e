"""Wire messages validate once, at the edge: good ones round-trip, bad ones are refused with a stable cause."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet import topics
from edgefleet.errors import MessageRejected
from edgefleet.messages import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    AppReport,
    AppState,
    BoxStatus,
    GpuReport,
    GpuSample,
    Heartbeat,
    HostSample,
    decode_heartbeat,
    decode_status,
    encode,
)


def heartbeat(**changes: object) -> Heartbeat:
    fields: dict[str, object] = {
        "schema": SCHEMA_VERSION,
        "box": "sh-pudong-gpu-01",
        "site": "sh-pudong",
        "boot": "0123456789abcdef",
        "seq": 7,
        "sent_at": 1_800_000_000.5,
        "agent_version": "0.1.0",
        "interval_s": 10.0,
        "uptime_s": 70.0,
        "host": HostSample(cpu_percent=12.5, memory_total_bytes=8 << 30, memory_available_bytes=4 << 30),
        "gpu": GpuReport(
            available=True,
            driver_version="535.183.01",
            gpus=[GpuSample(index=0, name="NVIDIA T4", uuid="GPU-1", temperature_c=61.0, throttle_reasons=["idle"])],
        ),
        "apps": AppReport(
            source="file:/etc/edgefleet/apps.json",
            apps=[AppState(name="sorting-recognition", version="2.3.1", state="running")],
        ),
    }
    fields.update(changes)
    return Heartbeat(**fields)  # type: ignore[arg-type]


@given(
    seq=st.integers(min_value=0, max_value=2**53),
    cpu=st.none() | st.floats(min_value=0, max_value=100),
    temps=st.lists(st.floats(min_value=-40, max_value=130), max_size=8),
)
def test_a_heartbeat_round_trips(seq: int, cpu: float | None, temps: list[float]) -> None:
    gpus = [GpuSample(index=i, name="NVIDIA L4", uuid=f"GPU-{i}", temperature_c=t) for i, t in enumerate(temps)]
    message = heartbeat(seq=seq, host=HostSample(cpu_percent=cpu), gpu=GpuReport(available=bool(gpus), gpus=gpus))
    assert decode_heartbeat(encode(message)) == message


def test_a_status_round_trips() -> None:
    status = BoxStatus(
        schema=1, box="a-1", site="a", boot="0123456789", session=3, state="offline", at=1.0, reason="connection-lost"
    )
    assert decode_status(encode(status)) == status


def _raw(**changes: object) -> bytes:
    data = json.loads(encode(heartbeat()))
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("payload", "cause", "detail"),
    [
        (b"\x00\xff garbage", "malformed", ""),
        (b"[1, 2, 3]", "malformed", "Expected `object`"),
        (_raw(seq=-1), "malformed", "`$.seq`"),
        (_raw(box="Not A Box"), "malformed", "`$.box`"),
        (_raw(interval_s=0), "malformed", "`$.interval_s`"),
        (_raw(seq=2**63), "malformed", "`$.seq`"),
        (_raw(host={"memory_total_bytes": 10**400}), "malformed", "`$.host.memory_total_bytes`"),
        (_raw(schema=2), "schema", "schema version 2"),
        (json.dumps({"schema": 99, "whatever": True}).encode(), "schema", "schema version 99"),
        (b"{" + b" " * MAX_MESSAGE_BYTES + b"}", "oversized", "at most"),
    ],
)
def test_bad_payloads_are_refused_with_a_cause(payload: bytes, cause: str, detail: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        decode_heartbeat(payload)
    assert caught.value.cause == cause
    assert detail in caught.value.detail


def test_unknown_fields_from_a_newer_agent_are_ignored() -> None:
    assert decode_heartbeat(_raw(future_field={"x": 1})) == heartbeat()


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("edgefleet/v1/boxes/sh-pudong-gpu-01/heartbeat", ("sh-pudong-gpu-01", "heartbeat")),
        ("edgefleet/v1/boxes/sh-pudong-gpu-01/status", ("sh-pudong-gpu-01", "status")),
        ("edgefleet/v1/boxes/sh-pudong-gpu-01/other", None),
        ("edgefleet/v1/boxes/Bad_Box/heartbeat", None),
        ("edgefleet/v2/boxes/a/heartbeat", None),
        ("edgefleet/v1/boxes/a/heartbeat/extra", None),
        ("", None),
    ],
)
def test_topics_carry_the_box_as_their_own_segment(topic: str, expected: tuple[str, str] | None) -> None:
    assert topics.parse_box_topic(topic) == expected


def test_topic_builders_match_the_parser_and_filters() -> None:
    assert topics.parse_box_topic(topics.heartbeat_topic("a-1")) == ("a-1", "heartbeat")
    assert topics.parse_box_topic(topics.status_topic("a-1")) == ("a-1", "status")
    assert topics.shared(topics.HEARTBEAT_FILTER) == "$share/edgefleet-cloud/edgefleet/v1/boxes/+/heartbeat"
