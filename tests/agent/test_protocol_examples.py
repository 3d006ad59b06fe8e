"""The payload examples in docs/protocol.md are valid messages, and the texts they show are the agent's own."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from edgefleet.agent.apps import FileAppSource
from edgefleet.agent.gpu import NVML_ERROR_LIBRARY_NOT_FOUND, NvmlProbe
from edgefleet.messages import MAX_MESSAGE_BYTES, AppReport, GpuReport, decode_heartbeat, decode_status

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", re.DOTALL)


def examples() -> dict[str, bytes]:
    return {name: body.encode() for name, body in _EXAMPLE.findall(DOC.read_text())}


def test_every_example_is_there() -> None:
    assert sorted(examples()) == ["apps", "gpu", "heartbeat", "online", "shutdown", "will"]


def test_heartbeat_example_decodes() -> None:
    payload = examples()["heartbeat"]
    heartbeat = decode_heartbeat(payload)
    assert heartbeat.gpu.gpus[0].throttle_reasons == ["sw-power-cap"]
    assert len(payload) < MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [("online", "online", "connected"), ("will", "offline", "connection-lost"), ("shutdown", "offline", "shutdown")],
)
def test_status_examples_decode(name: str, state: str, reason: str) -> None:
    status = decode_status(examples()[name])
    assert (status.state, status.reason) == (state, reason)


class _NoLibrary:
    class NVMLError(Exception):
        value = NVML_ERROR_LIBRARY_NOT_FOUND

    def nvmlInit(self) -> None:
        raise self.NVMLError


def test_section_examples_are_what_the_agent_says() -> None:
    assert msgspec.json.decode(examples()["gpu"], type=GpuReport) == NvmlProbe(nvml=_NoLibrary()).sample()
    apps = msgspec.json.decode(examples()["apps"], type=AppReport)
    assert apps == FileAppSource("/etc/edgefleet/apps.json").read() or Path("/etc/edgefleet/apps.json").exists()
