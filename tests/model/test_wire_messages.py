"""Wire messages validate once, at the edge: good ones round-trip, bad ones are refused with a stable cause."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from edgefleet import topics
from edgefleet.errors import MessageRejected
from edgefleet.messages import (
    MAX_FIGURE_VALUE,
    MAX_FIGURES,
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


# --- app health figures ------------------------------------------------------------------------------------------

FIGURE_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True)
FIGURE_VALUES = st.floats(min_value=-MAX_FIGURE_VALUE, max_value=MAX_FIGURE_VALUE, allow_nan=False)


def _with_figures(figures: object) -> bytes:
    raw = json.loads(encode(heartbeat()))
    raw["apps"]["apps"][0]["figures"] = figures
    return json.dumps(raw).encode()


@given(figures=st.none() | st.dictionaries(FIGURE_NAMES, FIGURE_VALUES, max_size=MAX_FIGURES))
def test_app_figures_round_trip(figures: dict[str, float] | None) -> None:
    app = AppState(name="sorting-recognition", version="2.3.1", state="running", figures=figures)
    sent = heartbeat(apps=AppReport(source="none", apps=[app]))
    assert decode_heartbeat(encode(sent)) == sent


def test_a_heartbeat_without_figures_from_an_older_agent_decodes_with_none() -> None:
    raw = json.loads(encode(heartbeat()))
    del raw["apps"]["apps"][0]["figures"]
    assert decode_heartbeat(json.dumps(raw).encode()).apps.apps[0].figures is None


@pytest.mark.parametrize(
    ("figures", "detail"),
    [
        ({"Fps": 25.0}, "Expected `str` matching regex '^[a-z][a-z0-9_]*$' - at `key` in `$.apps.apps[0].figures`"),
        ({"": 1.0}, "at `key` in `$.apps.apps[0].figures`"),
        ({"x" * 41: 1.0}, "length <= 40"),
        ({"fps-now": 1.0}, "matching regex"),
        (
            {f"f{i}": 1.0 for i in range(MAX_FIGURES + 1)},
            "Expected `object` of length <= 8 - at `$.apps.apps[0].figures`",
        ),
        ({"fps": 1e16}, "Expected `float` <= 1000000000000000.0 - at `$.apps.apps[0].figures[...]`"),
        ({"fps": -1e16}, "Expected `float` >= -1000000000000000.0"),
        ({"fps": "25"}, "Expected `float`, got `str`"),
        ({"fps": [25]}, "Expected `float`, got `array`"),
        ([25], "Expected `object | null`, got `array` - at `$.apps.apps[0].figures`"),
    ],
)
def test_bad_figures_are_refused_at_decode_naming_the_field(figures: object, detail: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        decode_heartbeat(_with_figures(figures))
    assert caught.value.cause == "malformed"
    assert detail in str(caught.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e999"])
def test_json_without_finite_numbers_is_refused(literal: str) -> None:
    """JSON has no NaN or infinity, and a number past a double's range is refused rather than read as infinity."""
    payload = _with_figures({"fps": 0.0}).replace(b'"fps": 0.0', b'"fps": ' + literal.encode())
    assert literal.encode() in payload
    with pytest.raises(MessageRejected) as caught:
        decode_heartbeat(payload)
    assert caught.value.cause == "malformed"


def test_64_apps_with_every_figure_at_its_bounds_fit_the_limit() -> None:
    """The figures' bounds keep 64 apps of a real box (pod-length details), each with 8 figures of the longest
    names and widest numbers, under MAX_MESSAGE_BYTES. (64 apps with every text at 256 characters exceed it even
    without figures: the agent then leaves the apps list out, edgefleet.agent.running.)"""
    figures = {f"{'f' * 38}{i:02d}": -MAX_FIGURE_VALUE / 3 for i in range(MAX_FIGURES)}
    apps = [
        AppState(
            name=f"sorting-recognition-{i:02d}",
            version="3.5.0-rc.1",
            state="running",
            detail=f"pod edgefleet/sorting-recognition-{i:02d}-5c6b7d8f9-abcde: restarts 12",
            figures=figures,
        )
        for i in range(64)
    ]
    payload = encode(heartbeat(apps=AppReport(source="metaserver:http://127.0.0.1:10550", apps=apps)))
    without = encode(heartbeat(apps=AppReport(source="none", apps=[replace(a, figures=None) for a in apps])))
    assert len(payload) - len(without) > 30_000, "the figures are at their bounds"
    assert len(payload) < MAX_MESSAGE_BYTES, len(payload)
