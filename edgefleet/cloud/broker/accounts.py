"""Box accounts on a running broker: created, listed and revoked through Mosquitto's dynamic-security plugin.

The plugin takes commands as JSON on ``$CONTROL/dynamic-security/v1`` and answers on ``.../response``; only the
admin account may use that topic (``grants.admin_acls``). A box added here can log in at once, and a box revoked
here is disconnected by the broker at once (the plugin kicks every connection of a deleted client) and cannot
log in again: no restart, no file to reload.

Called by ``edgefleet broker box ...``; the enrollment of boxes (issue 17, item 4) will call it too. A box's
password is returned once, by ``add_box``, and never logged: the log lines name the box only.

Errors: a broker that cannot be reached or refuses the admin login raises ``UnreachableError`` (what to check);
a command the plugin refuses raises ``BrokerAccountError`` with its reason.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.cloud.broker import grants
from edgefleet.cloud.broker.configuring import BrokerSettings, new_password
from edgefleet.credentials import SecretFileError, read_secret_file
from edgefleet.errors import EdgefleetError, UnreachableError

log = logging.getLogger(__name__)

# A loopback broker answers a control command in milliseconds; this bounds a broker that hangs.
DEFAULT_TIMEOUT_S: Final = 10.0
# listClients pages; a fleet of a few thousand boxes is a few pages.
LIST_PAGE: Final = 1000
# Boxes whose accounts go in one control message (three commands each): the plugin takes a list of commands per
# message and answers them in one message, so a fleet costs a few dozen round trips instead of thousands.
ADD_BATCH: Final = 100


class BrokerAccountError(EdgefleetError):
    """The plugin refused a command (the message carries its reason)."""


@dataclass(frozen=True, slots=True)
class BoxAccount:
    """A box's login on the broker. The password is here once, when the account is made."""

    box: str
    username: str
    clientid: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BoxEntry:
    """A box account as listed (no secret)."""

    box: str
    clientid: str | None
    disabled: bool


class BrokerAccounts:
    """An admin connection to the broker's account plugin. Use as a context manager::

    with BrokerAccounts.connect(settings) as accounts:
        account = accounts.add_box("box-001")
    """

    def __init__(self, client: mqtt.Client, *, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._answers: dict[str, dict[str, Any]] = {}

    @classmethod
    def connect(
        cls, settings: BrokerSettings, *, password: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> BrokerAccounts:
        """Log in as the admin account (``password``, else the file ``broker.json`` names) and subscribe to the
        plugin's answers; raises ``UnreachableError`` saying what to check."""
        where = f"mqtts://{settings.host}:{settings.port}"
        if password is None:
            try:
                password = read_secret_file(settings.admin_password_file)
            except SecretFileError as exc:
                raise BrokerAccountError(f"the admin account's password: {exc}") from None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgefleet-admin-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.username_pw_set(settings.admin_username, password)
        try:
            client.tls_set(
                ca_certs=str(settings.cafile),
                certfile=str(settings.certfile) if settings.certfile else None,
                keyfile=str(settings.keyfile) if settings.keyfile else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError) as exc:
            raise BrokerAccountError(f"cannot load the TLS files broker.json names: {exc}") from None
        accounts = cls(client, timeout_s=timeout_s)
        connected = threading.Event()
        outcome: list[str] = []

        def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
            if reason.is_failure:
                outcome.append(str(reason))
                connected.set()
                return
            c.subscribe(grants.CONTROL_RESPONSE_TOPIC, qos=1)

        def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
            if any(r.is_failure for r in reasons):
                outcome.append(f"subscribing to the plugin's answers was refused ({reasons[0]})")
            connected.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = accounts._on_message
        try:
            client.connect(settings.host, settings.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise UnreachableError(
                "broker",
                where,
                hint=f"is Mosquitto running with the configuration 'edgefleet broker config' wrote? ({exc})",
            ) from None
        client.loop_start()
        if not connected.wait(timeout_s) or outcome:
            client.loop_stop()
            client.disconnect()
            reason = outcome[0] if outcome else f"no answer within {timeout_s:g} s"
            raise UnreachableError(
                "broker",
                where,
                hint=f"the admin login failed: {reason}; check {settings.admin_password_file} and the TLS files",
            )
        return accounts

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> BrokerAccounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what callers use ---------------------------------------------------------------------------------------

    def add_box(self, box: str) -> BoxAccount:
        """A new account for ``box``: its own role, its client id fixed to its box id, a new random password.
        Refused when the box has one already (revoke it first: a second add must not silently change a live
        box's password)."""
        grants.check_box(box)
        role = grants.box_role(box)
        password = new_password()
        entry = grants.client(box, role_name=role, clientid=box, textname=f"box {box}")
        # Refused before anything changes: a live box's grants and password must not be touched by a second add,
        # and deleting a role that an account still holds crashed Mosquitto 2.0.11 (SIGSEGV at the next command,
        # reproduced here), so a role is only ever deleted when no account holds it.
        if self._run({"command": "getClient", "username": box}, missing_ok=True):
            raise BrokerAccountError(
                f"box {box} already has a broker account; revoke it first ('edgefleet broker box revoke {box}')"
            )
        # The role before the client: a client naming a role that does not exist is refused. A role left over
        # from an add that failed half-way (no client holds it) is replaced.
        self._run({"command": "deleteRole", "rolename": role}, missing_ok=True)
        self._run({"command": "createRole", "rolename": role, "acls": grants.box_acls(box)})
        self._run({"command": "createClient", **entry, "password": password})
        log.info("Created broker account for box", extra={"box": box})
        return BoxAccount(box=box, username=box, clientid=box, password=password)

    def add_boxes(self, boxes: list[str]) -> list[BoxAccount]:
        """New accounts for every box of ``boxes`` (as ``add_box`` makes one), ``ADD_BATCH`` boxes per control
        message. Refused before anything changes when one of them has an account already."""
        for box in boxes:
            grants.check_box(box)
        if len(set(boxes)) != len(boxes):
            raise BrokerAccountError("a box is named twice; each box gets one account")
        taken = sorted({entry.box for entry in self.list_boxes()} & set(boxes))
        if taken:
            raise BrokerAccountError(
                f"{len(taken)} of the boxes have a broker account already ({', '.join(taken[:3])}"
                f"{', ...' if len(taken) > 3 else ''}); revoke them first ('edgefleet broker box revoke BOX')"
            )
        made: list[BoxAccount] = []
        for start in range(0, len(boxes), ADD_BATCH):
            batch = [BoxAccount(box, box, box, new_password()) for box in boxes[start : start + ADD_BATCH]]
            commands: list[tuple[dict[str, Any], bool]] = []
            for account in batch:
                role = grants.box_role(account.box)
                entry = grants.client(account.box, role_name=role, clientid=account.box, textname=f"box {account.box}")
                # As in add_box: a role left over from a failed add is replaced; no account holds it (checked above).
                commands += [
                    ({"command": "deleteRole", "rolename": role}, True),
                    ({"command": "createRole", "rolename": role, "acls": grants.box_acls(account.box)}, False),
                    ({"command": "createClient", **entry, "password": account.password}, False),
                ]
            self._run_all(commands)
            made += batch
        log.info("Created broker accounts for boxes", extra={"boxes": len(made)})
        return made

    def revoke_box(self, box: str) -> None:
        """Delete ``box``'s account and role; the broker disconnects the box at once. Unknown box: an error."""
        grants.check_box(box)
        try:
            self._run({"command": "deleteClient", "username": box})
        except BrokerAccountError as exc:
            if "not found" in str(exc).lower():
                raise BrokerAccountError(f"box {box} has no broker account") from None
            raise
        self._run({"command": "deleteRole", "rolename": grants.box_role(box)}, missing_ok=True)
        log.info("Revoked broker account of box", extra={"box": box})

    def list_boxes(self) -> list[BoxEntry]:
        """Every box account (the service accounts left out), by box id."""
        found: list[BoxEntry] = []
        offset = 0
        while True:
            data = self._run({"command": "listClients", "verbose": True, "count": LIST_PAGE, "offset": offset})
            clients = data.get("clients", []) if isinstance(data, dict) else []
            for entry in clients:
                username = str(entry.get("username", ""))
                roles = {str(r.get("rolename")) for r in entry.get("roles", []) if isinstance(r, dict)}
                if grants.box_role(username) in roles:
                    found.append(BoxEntry(username, entry.get("clientid"), bool(entry.get("disabled", False))))
            total = int(data.get("totalCount", 0)) if isinstance(data, dict) else 0
            # By what came back, not by what was asked: a broker may send a shorter page.
            offset += len(clients)
            if offset >= total or not clients:
                return sorted(found, key=lambda e: e.box)

    # --- the control topic --------------------------------------------------------------------------------------

    def _run(self, command: dict[str, Any], *, missing_ok: bool = False) -> dict[str, Any]:
        """Send one command and wait for its answer; returns its ``data``."""
        return self._run_all([(command, missing_ok)])[0]

    def _run_all(self, commands: list[tuple[dict[str, Any], bool]]) -> list[dict[str, Any]]:
        """Send ``(command, missing_ok)`` pairs in one message (the plugin runs them in order) and wait for every
        answer; returns their ``data``, or raises on the first refused one. Never logs a command: a createClient
        carries a password."""
        correlations = [uuid.uuid4().hex for _ in commands]
        events = [threading.Event() for _ in commands]
        with self._lock:
            self._waiting.update(zip(correlations, events, strict=True))
        payload = json.dumps(
            {"commands": [{**c, "correlationData": k} for (c, _), k in zip(commands, correlations, strict=True)]}
        )
        self._client.publish(grants.CONTROL_TOPIC, payload, qos=1)
        # The plugin answers a message's commands together: one wait bounds them all.
        answered = events[-1].wait(self._timeout_s) and all(e.wait(self._timeout_s) for e in events)
        with self._lock:
            for correlation in correlations:
                self._waiting.pop(correlation, None)
            answers = [self._answers.pop(correlation, None) for correlation in correlations]
        results: list[dict[str, Any]] = []
        for (command, missing_ok), answer in zip(commands, answers, strict=True):
            if not answered or answer is None:
                raise BrokerAccountError(
                    f"the broker did not answer {command['command']} within {self._timeout_s:g} s; is the "
                    "dynamic-security plugin loaded (mosquitto.conf from 'edgefleet broker config')?"
                )
            error = answer.get("error")
            if error:
                if missing_ok and "not found" in str(error).lower():
                    results.append({})
                    continue
                raise BrokerAccountError(f"the broker refused {command['command']}: {error}")
            data = answer.get("data", {})
            results.append(data if isinstance(data, dict) else {})
        return results

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload).get("responses", [])
        except (ValueError, AttributeError):
            log.warning(
                "Ignored unreadable answer from the broker's account plugin", extra={"bytes": len(message.payload)}
            )
            return
        for response in responses:
            if not isinstance(response, dict):
                continue
            correlation = response.get("correlationData")
            with self._lock:
                done = self._waiting.get(str(correlation))
                if done is None:
                    continue  # another admin connection's answer: the response topic is shared
                self._answers[str(correlation)] = response
            done.set()
