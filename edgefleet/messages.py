"""Wire messages between boxes and the controller (schema version 1), validated once, at the edge.

Messages are JSON encoded and decoded with msgspec: it validates types and bounds while decoding, costs a few
microseconds per heartbeat on the controller's hot path, and adds about 1 MB to the agent, where pydantic would
add ten times that (see docs/decisions.md). Unknown fields are ignored so that a newer agent can add fields
without breaking an older controller; a message with another ``schema`` number is refused by the ingest.

Ordering: every message carries the agent's ``boot`` id (new at each agent start) and a per-boot sequence
(``seq`` for heartbeats, ``session`` - the connection counter - for status messages), so the controller can
drop duplicates and stale messages, including a Last Will that the broker delivers after the box's new
"online" (MQTT orders messages per publisher connection only).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from edgefleet.errors import MessageRejected
from edgefleet.ids import ID_PATTERN

SCHEMA_VERSION: Final = 1
# A heartbeat of a box with 8 GPUs and 30 apps is about 6 KB; anything far above is not a heartbeat.
MAX_MESSAGE_BYTES: Final = 64 * 1024

Id = Annotated[str, Meta(pattern=ID_PATTERN, max_length=63)]
BootId = Annotated[str, Meta(min_length=8, max_length=64)]
# Counters and byte sizes fit a signed 64-bit integer: the database column type, and far beyond any real box.
NonNegInt = Annotated[int, Meta(ge=0, le=2**63 - 1)]
# Finite only: JSON has no infinity, but msgspec reads 1e999 as one and it would poison sums and percentages.
NonNegFloat = Annotated[float, Meta(ge=0, le=1e18)]
Percent = Annotated[float, Meta(ge=0, le=100)]
ShortText = Annotated[str, Meta(max_length=256)]
# An app's health figures (docs/protocol.md, "App health figures"): a handful of named, finite numbers. Bounded so
# that 64 apps of a real box with figures still fit a heartbeat (8 x at most ~65 bytes per app); the agent drops
# what would break these bounds and says so in the app's detail, so a box never loses its heartbeat to one figure.
MAX_FIGURES: Final = 8
FIGURE_NAME_PATTERN: Final = "^[a-z][a-z0-9_]*$"
MAX_FIGURE_NAME: Final = 40
# Within what any gauge of an app can mean, so sums and means over a site stay finite. JSON has no NaN or infinity,
# and msgspec refuses a number past a double's range (1e999) rather than reading it as infinity.
MAX_FIGURE_VALUE: Final = 1e15
FigureName = Annotated[str, Meta(pattern=FIGURE_NAME_PATTERN, min_length=1, max_length=MAX_FIGURE_NAME)]
FigureValue = Annotated[float, Meta(ge=-MAX_FIGURE_VALUE, le=MAX_FIGURE_VALUE)]
Figures = Annotated[dict[FigureName, FigureValue], Meta(max_length=MAX_FIGURES)]


class HostSample(Struct, frozen=True, kw_only=True):
    """The box's own health, read from /proc and statvfs."""

    cpu_percent: Percent | None = None
    load1: NonNegFloat | None = None
    load5: NonNegFloat | None = None
    load15: NonNegFloat | None = None
    memory_total_bytes: NonNegInt | None = None
    memory_available_bytes: NonNegInt | None = None
    disk_path: ShortText = "/"
    disk_total_bytes: NonNegInt | None = None
    disk_free_bytes: NonNegInt | None = None
    # Since the box (not the agent) booted, from /proc/uptime; ``Heartbeat.uptime_s`` is the agent's own.
    uptime_s: NonNegFloat | None = None


class GpuSample(Struct, frozen=True, kw_only=True):
    """One GPU as NVML reports it; a reading NVML cannot give is None."""

    index: NonNegInt
    name: ShortText
    uuid: ShortText
    utilization_percent: Percent | None = None
    memory_used_bytes: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None
    temperature_c: float | None = None
    power_w: NonNegFloat | None = None
    throttle_reasons: list[ShortText] = []
    ecc_corrected_errors: NonNegInt | None = None
    ecc_uncorrected_errors: NonNegInt | None = None


class GpuReport(Struct, frozen=True, kw_only=True):
    """The GPU section: either samples, or why there are none (no driver, no NVML, no GPU)."""

    available: bool
    reason: ShortText | None = None
    driver_version: ShortText | None = None
    gpus: list[GpuSample] = []


# "completed": the app ran to success and ended (a Kubernetes Job's pod in phase Succeeded); no fault, unlike
# "stopped", which an app meant to keep running is when it does not.
AppRunState = Literal["running", "completed", "pending", "stopped", "failed", "unknown"]
# The states in which an app is as it should be: not down, not degrading its box.
APP_UP_STATES: Final[frozenset[str]] = frozenset({"running", "completed"})


class AppState(Struct, frozen=True, kw_only=True):
    """One app on the box (scan-upload, sorting-recognition, ...)."""

    name: ShortText
    version: ShortText
    state: AppRunState
    detail: ShortText | None = None
    # Health figures the app reports (``upload_backlog``, ``fps``...); absent when it reports none or they could
    # not be read (then ``detail`` says why). An older controller ignores the field, an older agent omits it.
    figures: Figures | None = None


class AppReport(Struct, frozen=True, kw_only=True):
    """The apps section and where it was read from (``file:<path>``, ``metaserver:<url>``, ``none``, or
    ``simulator`` on the simulator's boxes)."""

    source: ShortText
    error: ShortText | None = None
    apps: list[AppState] = []


class Heartbeat(Struct, frozen=True, kw_only=True):
    """Sent by every box every ``interval_s`` seconds on ``edgefleet/v1/boxes/<box>/heartbeat`` (QoS 1)."""

    schema: int
    box: Id
    site: Id
    boot: BootId
    seq: NonNegInt
    sent_at: float
    agent_version: ShortText
    interval_s: Annotated[float, Meta(gt=0, le=3600)]
    uptime_s: NonNegFloat
    host: HostSample
    gpu: GpuReport
    apps: AppReport


StatusState = Literal["online", "offline"]


class BoxStatus(Struct, frozen=True, kw_only=True):
    """Retained on ``edgefleet/v1/boxes/<box>/status``: "online" at each connect, "offline" as the Last Will
    (``reason`` "connection-lost") or before a clean stop (``reason`` "shutdown")."""

    schema: int
    box: Id
    site: Id
    boot: BootId
    session: NonNegInt
    state: StatusState
    at: float
    reason: ShortText


class _Envelope(Struct):
    schema: int


_encoder = msgspec.json.Encoder()
_heartbeat_decoder = msgspec.json.Decoder(Heartbeat)
_status_decoder = msgspec.json.Decoder(BoxStatus)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode(message: Heartbeat | BoxStatus) -> bytes:
    return _encoder.encode(message)


_T = TypeVar("_T", Heartbeat, BoxStatus)


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes) -> _T:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageRejected("oversized", f"{len(payload)} bytes, at most {MAX_MESSAGE_BYTES} are accepted")
    try:
        message = decoder.decode(payload)
    except msgspec.DecodeError as exc:
        # Tell "a newer or older agent" apart from "garbage": the former needs an upgrade, not a bug hunt.
        try:
            schema = _envelope_decoder.decode(payload).schema
        except msgspec.DecodeError:
            schema = SCHEMA_VERSION
        if schema != SCHEMA_VERSION:
            raise MessageRejected("schema", f"schema version {schema}, this controller reads {SCHEMA_VERSION}") from exc
        raise MessageRejected("malformed", str(exc)) from exc
    if message.schema != SCHEMA_VERSION:
        raise MessageRejected("schema", f"schema version {message.schema}, this controller reads {SCHEMA_VERSION}")
    return message


def decode_heartbeat(payload: bytes) -> Heartbeat:
    """Validate a heartbeat; raises MessageRejected (cause oversized, malformed or schema)."""
    return _decode(_heartbeat_decoder, payload)


def decode_status(payload: bytes) -> BoxStatus:
    """Validate a status message; raises MessageRejected (cause oversized, malformed or schema)."""
    return _decode(_status_decoder, payload)
