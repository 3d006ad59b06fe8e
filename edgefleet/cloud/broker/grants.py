"""What each broker account may do, as Mosquitto's dynamic-security plugin writes it: roles made of ACLs.

Pure: the configuration writer (``configuring``) puts these into the plugin's first file, and the account
service (``accounts``) sends the same ones over the control topic, so a box added at run time gets exactly
what one written at configuration time would.

- Everything not granted is refused (``DEFAULT_ACL_ACCESS``): no publishing, no subscribing, no receiving.
- A box publishes to its own heartbeat and status topics only, and subscribes to and receives its own command
  topic only (``edgefleet/v1/boxes/<box>/...``, ``edgefleet.topics``). Its account is bound to the client id
  that is its box id, so no logged-in box can take another's client id and knock it off.
- The controller reads every box's topics (its shared subscription included) and may send commands.
- The admin account only reaches the plugin's control topic: it changes accounts, and reads no box's data.
"""

from __future__ import annotations

from typing import Any, Final

from edgefleet import topics
from edgefleet.errors import EdgefleetError
from edgefleet.ids import id_problem

# Service account names hold '_', which no box id may (edgefleet.ids), so no box can be named like them.
ADMIN_USERNAME: Final = "edgefleet_admin"
CONTROLLER_USERNAME: Final = "edgefleet_controller"
ADMIN_ROLE: Final = "edgefleet-admin"
CONTROLLER_ROLE: Final = "edgefleet-controller"
# A box's role is named after it: "box:<id>". ':' appears in no box id, so the prefix cannot be faked either.
BOX_ROLE_PREFIX: Final = "box:"
CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"

Acl = dict[str, Any]

DEFAULT_ACL_ACCESS: Final[list[dict[str, Any]]] = [
    {"acltype": "publishClientSend", "allow": False},
    {"acltype": "publishClientReceive", "allow": False},
    {"acltype": "subscribe", "allow": False},
    # Unsubscribing from what one could not subscribe to harms nobody; refusing it only confuses clients.
    {"acltype": "unsubscribe", "allow": True},
]


class BadBoxName(EdgefleetError):
    """A box id that cannot be an account (the message says why)."""


def box_role(box: str) -> str:
    return f"{BOX_ROLE_PREFIX}{box}"


def check_box(box: str) -> str:
    problem = id_problem(box)
    if problem:
        raise BadBoxName(f"box id: {problem}")
    return box


def _allow(acltype: str, topic: str) -> Acl:
    return {"acltype": acltype, "topic": topic, "allow": True}


def box_acls(box: str) -> list[Acl]:
    """The ACLs of ``box``'s own role. The id is checked first: a '+' or '#' in it would widen the grant."""
    check_box(box)
    commands = topics.command_topic(box)
    return [
        _allow("publishClientSend", topics.heartbeat_topic(box)),
        _allow("publishClientSend", topics.status_topic(box)),
        _allow("subscribePattern", commands),
        _allow("publishClientReceive", commands),
    ]


def controller_acls() -> list[Acl]:
    every_box = f"{topics.PREFIX}/#"
    return [
        _allow("subscribePattern", every_box),
        # The controller's replicas subscribe through a shared group (edgefleet.topics.shared): Mosquitto 2.0
        # checks the filter as sent, with its $share/<group>/ prefix.
        _allow("subscribePattern", topics.shared(every_box, "+")),
        _allow("publishClientReceive", every_box),
        _allow("publishClientSend", f"{topics.PREFIX}/+/{topics.COMMANDS_CHANNEL}"),
    ]


def admin_acls() -> list[Acl]:
    control = "$CONTROL/dynamic-security/#"
    return [
        _allow("publishClientSend", control),
        _allow("publishClientReceive", control),
        _allow("subscribePattern", control),
    ]


def role(name: str, acls: list[Acl]) -> dict[str, Any]:
    return {"rolename": name, "acls": acls}


def client(username: str, *, role_name: str, clientid: str | None = None, textname: str = "") -> dict[str, Any]:
    """A client as the plugin's createClient command takes it (the password added by the caller)."""
    entry: dict[str, Any] = {"username": username, "roles": [{"rolename": role_name}]}
    if clientid is not None:
        entry["clientid"] = clientid
    if textname:
        entry["textname"] = textname
    return entry
