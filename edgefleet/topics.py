"""MQTT topic layout shared by the agent, the controller and the simulator.

Every topic a box publishes or reads carries the box id as its own segment
(``edgefleet/v1/boxes/<box>/<channel>``) so that the broker can confine each box to its own topics with one
pattern ACL (``pattern readwrite edgefleet/v1/boxes/%u/#``) once boxes log in with their id.
"""

from __future__ import annotations

from typing import Final, Literal

from edgefleet.ids import BoxId, is_valid_id

PREFIX: Final = "edgefleet/v1/boxes"

Channel = Literal["heartbeat", "status"]
CHANNELS: Final[frozenset[str]] = frozenset({"heartbeat", "status"})

HEARTBEAT_FILTER: Final = f"{PREFIX}/+/heartbeat"
STATUS_FILTER: Final = f"{PREFIX}/+/status"
# What the controller sends a box: reserved (nothing is sent yet). The broker lets each box read its own command
# topic and no other (edgefleet.cloud.broker.grants), so the channel is confined before it carries anything.
COMMANDS_CHANNEL: Final = "commands"

# Controller replicas subscribe through this MQTT 5 shared-subscription group so the broker spreads boxes'
# messages over them instead of sending every message to each.
CONTROLLER_SHARE_GROUP: Final = "edgefleet-cloud"


def heartbeat_topic(box: str) -> str:
    return f"{PREFIX}/{box}/heartbeat"


def status_topic(box: str) -> str:
    return f"{PREFIX}/{box}/status"


def command_topic(box: str) -> str:
    return f"{PREFIX}/{box}/{COMMANDS_CHANNEL}"


def shared(topic_filter: str, group: str = CONTROLLER_SHARE_GROUP) -> str:
    """The MQTT 5 shared-subscription form of ``topic_filter``."""
    return f"$share/{group}/{topic_filter}"


def parse_box_topic(topic: str) -> tuple[BoxId, Channel] | None:
    """The box and channel a topic belongs to, or None when the topic is not one of ours."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}/{parts[2]}" != PREFIX:
        return None
    box, channel = parts[3], parts[4]
    if channel not in CHANNELS or not is_valid_id(box):
        return None
    return BoxId(box), channel  # type: ignore[return-value]
