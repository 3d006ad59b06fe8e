"""A real Mosquitto run from what ``edgefleet pki`` and ``edgefleet broker config`` write, and MQTT clients that
record what the broker did to them (CONNACK, SUBACK and PUBACK reasons, disconnects, messages).

Everything is made in the test's own directory: a CA, the broker's and the controller's certificates, box
certificates, the configuration (TLS listener on a free loopback port, no anonymous clients, the
dynamic-security plugin), then the broker itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.cloud.broker import configuring, grants, pki
from edgefleet.cloud.broker.accounts import BoxAccount, BrokerAccounts
from tests.support.peers import Mosquitto, free_port, mosquitto_from, wait_for


@dataclass
class SecuredBroker:
    broker: Mosquitto
    pki_dir: Path
    config_dir: Path
    settings: configuring.BrokerSettings
    # Accounts written into the plugin's first file (``secured_broker(boxes=...)``), by box id.
    box_accounts: dict[str, BoxAccount] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / pki.CA_CERT

    def controller_password(self) -> str:
        return (self.config_dir / configuring.CONTROLLER_PASSWORD).read_text().strip()

    def accounts(self) -> BrokerAccounts:
        return BrokerAccounts.connect(self.settings)

    def add_box(self, box: str) -> BoxAccount:
        """A box account made at run time, and a certificate for the box."""
        if not pki.cert_path(self.pki_dir, "box", box).exists():
            pki.issue(self.pki_dir, "box", box, now=datetime.now(UTC))
        with self.accounts() as accounts:
            return accounts.add_box(box)

    def box_cert(self, box: str) -> tuple[Path, Path]:
        return pki.cert_path(self.pki_dir, "box", box), pki.key_path(self.pki_dir, "box", box)

    def controller_cert(self) -> tuple[Path, Path]:
        return pki.cert_path(self.pki_dir, "controller", "controller"), pki.key_path(
            self.pki_dir, "controller", "controller"
        )


@contextlib.contextmanager
def secured_broker(directory: Path, *, boxes: Sequence[str] = ()) -> Iterator[SecuredBroker]:
    now = datetime.now(UTC)
    pki_dir = directory / "pki"
    pki.init_ca(pki_dir, now=now)
    pki.issue(pki_dir, "broker", "broker", now=now)
    pki.issue(pki_dir, "controller", "controller", now=now)
    port = free_port()
    # Mosquitto started as root drops to its own user, which cannot enter pytest's private directories.
    written = configuring.write_config(
        directory / "broker", pki_dir=pki_dir, port=port, run_as="root" if os.geteuid() == 0 else None, boxes=boxes
    )
    accounts = {b: BoxAccount(b, b, b, p) for b, p in written.box_passwords.items()}
    with mosquitto_from(written.conf, port) as broker:
        yield SecuredBroker(broker, pki_dir, directory / "broker", written.settings, accounts)


@dataclass
class Received:
    topic: str
    payload: bytes


@dataclass
class Peer:
    """One MQTT 5 client over TLS that records what happens to it. ``connected`` is None until the broker has
    answered (or the connection failed), then True or False."""

    client: mqtt.Client
    connected: bool | None = None
    refusal: str | None = None
    disconnects: list[str] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    subacks: dict[int, list[str]] = field(default_factory=dict)
    pubacks: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.messages if m.topic == topic]

    def subscribe(self, topic: str) -> list[str]:
        """Subscribe and wait for the broker's answer: its reason codes."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None, f"paho did not send the SUBSCRIBE for {topic}"
        return wait_for(lambda: self.subacks.get(mid), what=f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> str:
        """Publish at QoS 1 and wait for the broker's PUBACK: its reason."""
        mid = self.client.publish(topic, payload, qos=1, retain=retain).mid
        return wait_for(lambda: self.pubacks.get(mid), what=f"PUBACK for {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    *,
    ca_file: Path,
    client_id: str,
    username: str | None,
    password: str | None,
    cert: tuple[Path, Path] | None,
    wait: bool = True,
) -> Peer:
    """A peer that connects over TLS; with ``wait``, returns once the broker accepted or refused it. A TLS
    handshake the broker refuses shows as ``connected`` False, whether the refusal comes during the handshake
    (TLS 1.2) or on the first read after it (TLS 1.3 sends the client's certificate after the handshake)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    peer = Peer(client)
    if username is not None:
        client.username_pw_set(username, password)
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    client.tls_set_context(context)
    # One attempt only: a refused peer must not knock again while the test looks.
    client.reconnect_delay_set(min_delay=60, max_delay=60)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        peer.connected = not reason.is_failure
        if reason.is_failure:
            peer.refusal = str(reason)

    def on_disconnect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        with peer.lock:
            peer.disconnects.append(str(reason))
        if peer.connected is None:
            peer.connected = False
            peer.refusal = f"disconnected before CONNACK ({reason})"

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        with peer.lock:
            peer.messages.append(Received(message.topic, bytes(message.payload)))

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        peer.subacks[mid] = [str(r) for r in reasons]

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        peer.pubacks[mid] = str(reason)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    try:
        client.connect("127.0.0.1", port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        peer.connected = False
        peer.refusal = f"TLS handshake failed ({type(exc).__name__}: {exc})"
        _close_sockets_left_in(exc)
        return peer
    client.loop_start()
    if wait:
        wait_for(lambda: peer.connected is not None, what=f"the broker's answer to {client_id}")
    return peer


def _close_sockets_left_in(exc: BaseException) -> None:
    """paho 2.2 leaves the socket of a failed TLS handshake open (``Client._ssl_wrap_socket``); close it, or
    its ResourceWarning fails the test that made it."""
    frame = exc.__traceback__
    while frame is not None:
        for value in frame.tb_frame.f_locals.values():
            if isinstance(value, socket.socket):
                value.close()
        frame = frame.tb_next


def controller(secured: SecuredBroker) -> Peer:
    """A client logged in with the controller's account and certificate, as the controller's ingest is."""
    return connect(
        secured.port,
        ca_file=secured.ca_file,
        client_id=f"edgefleet-cloud-test-{uuid.uuid4().hex[:6]}",
        username=grants.CONTROLLER_USERNAME,
        password=secured.controller_password(),
        cert=secured.controller_cert(),
    )


def box(secured: SecuredBroker, account: BoxAccount, *, client_id: str | None = None) -> Peer:
    return connect(
        secured.port,
        ca_file=secured.ca_file,
        client_id=client_id or account.clientid,
        username=account.username,
        password=account.password,
        cert=secured.box_cert(account.box),
    )
