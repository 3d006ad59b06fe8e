"""One box's MQTT connection (paho-mqtt 2.x, MQTT 5): Last Will, retained online/offline status, heartbeats.

The network loop is not chosen here: the agent process calls ``client.loop_start()`` (one connection, paho's
own thread), the simulator drives thousands of links from one asyncio loop through paho's socket callbacks,
because paho's own loops use ``select()`` and fail past fd 1024 (shared/FIELD-NOTES.md).

The retained status and the will carry the box's boot id and session counter: the will is renewed before
every connection attempt (``on_pre_connect``), and the controller ignores a will older than the box's latest
"online". The birth message is published in ``on_connect`` so a reconnect renews it. The heartbeats buffered while
the broker was away go out with the next heartbeat after a reconnection (``send``), not in ``on_connect``: after
a broker restart (a killed broker forgets every subscription) the controllers reconnect on the same backoff as the
boxes, often in the same millisecond, and a backlog flushed at once reached the broker before a controller had
subscribed again, so that controller never heard it (tests/faults/test_the_broker_is_killed_under_two_replicas.py
saw up to 62 of a box's 75 lost). One beat later every controller that reconnected with the boxes is subscribed.
The first connection flushes at once: the controllers were subscribed before the box started.

The login travels in the ``BrokerAddress`` (from the broker URL or the agent's login options); the address shows
itself masked, so no log line of the link can name the password. ``mqtts://`` connects over TLS: the broker is
verified against the CA file given (else the system's trust store) and, where the broker asks for one, the box
presents its certificate (``edgefleet pki issue box NAME``, docs/security.md).
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet import messages, topics
from edgefleet.agent.reporting import BoxReporter
from edgefleet.credentials import REDACTED, mask_url
from edgefleet.messages import Heartbeat

log = logging.getLogger(__name__)

# The broker sends the will after ~1.5 x keepalive of silence (a frozen box or a pulled cable), so a 10 s
# keepalive bounds "cable pulled" detection at ~15 s, below the 30 s heartbeat timeout.
DEFAULT_KEEPALIVE_S: Final = 10
QOS: Final = 1
# paho's reconnect backoff, 1 s doubling to this: the controller holds its judgement of silence after an outage
# for as long (edgefleet.cloud.hearing.AGENT_RECONNECT_MAX_S; a test keeps the two equal, docs/protocol.md).
RECONNECT_MIN_S: Final = 1
RECONNECT_MAX_S: Final = 60
# MQTT 5 CONNACK reason codes that retrying cannot fix: bad user name or password, not authorised, bad
# authentication method.
CREDENTIALS_REFUSED: Final = frozenset({0x86, 0x87, 0x8C})
DEFAULT_PORT: Final = 1883
DEFAULT_TLS_PORT: Final = 8883


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a TLS connection verifies the broker with and shows of itself. No CA file: the system's trust store;
    no certificate: the box presents none (a broker that requires one refuses the connection)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context that checks the broker's certificate and name; raises OSError/ssl.SSLError on a file
        that cannot be used."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a box connects, and the login it gives (none: anonymous). ``str()`` shows it with the password
    masked: it is what every log line and error names."""

    host: str
    port: int
    username: str | None = None
    # Never in a repr, a log line or a traceback.
    password: str | None = field(default=None, repr=False)
    # None: plain MQTT (mqtt://); else TLS (mqtts://) with these files.
    tls: TlsFiles | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt[s]://[USER[:PASSWORD]@]HOST:PORT`` (or ``HOST:PORT``), the login percent-decoded; raises ValueError
        saying what is wrong, with the URL masked (``credentials.mask_url``). ``mqtts://`` means TLS with the
        system's trust store until ``with_tls`` names files."""
        shown = mask_url(url)
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in {"mqtt", "tcp", "mqtts", "ssl"}:
            raise ValueError(f"broker URL {shown!r}: scheme must be mqtt:// or mqtts:// (TLS)")
        tls = TlsFiles() if parts.scheme in {"mqtts", "ssl"} else None
        if parts.path.strip("/") or parts.query or parts.fragment:
            # Also what a password with a raw '/', '?' or '#' looks like to a URL parser.
            raise ValueError(
                f"broker URL {shown!r}: expected mqtt://[USER:PASSWORD@]HOST:PORT with nothing after the port; "
                "percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40)"
            )
        if not parts.hostname:
            raise ValueError(f"broker URL {shown!r} names no host; expected mqtt://HOST:PORT")
        try:
            port = parts.port or (DEFAULT_TLS_PORT if tls is not None else DEFAULT_PORT)
        except ValueError:
            raise ValueError(f"broker URL {shown!r} has an invalid port") from None
        if parts.username is None:
            return cls(parts.hostname, port, tls=tls)
        username = unquote(parts.username)
        if not username:
            raise ValueError(f"broker URL {shown!r}: the username in the URL is empty")
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, username, password, tls)

    def with_login(self, username: str | None, password: str | None) -> BrokerAddress:
        return replace(self, username=username, password=password)

    def with_tls(self, tls: TlsFiles) -> BrokerAddress:
        return replace(self, tls=tls)

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls is not None else "mqtt"
        if self.username is None:
            return f"{scheme}://{self.host}:{self.port}"
        login = quote(self.username, safe="") + (f":{REDACTED}" if self.password is not None else "")
        return f"{scheme}://{login}@{self.host}:{self.port}"


class BoxLink:
    """The MQTT side of one box. Thread-safe: heartbeats may be sent from another thread than paho's loop."""

    def __init__(
        self,
        reporter: BoxReporter,
        broker: BrokerAddress,
        *,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``tls_context``: for a ``mqtts://`` broker, a context to use instead of one built from ``broker.tls``
        (the simulator shares one among its thousands of links: building one costs ~4 ms)."""
        self.reporter = reporter
        self.broker = broker
        self.keepalive_s = keepalive_s
        self._lock = threading.Lock()
        self._connected = False
        self._ever_connected = False  # the first connection flushes the backlog at once, a reconnection later
        self.refused: str | None = None
        # Set when the broker refused the login itself (bad credentials, not authorised): paho stops retrying.
        self.credentials_refused = False
        # A stable client id (the box id): the broker then drops a stale connection of the same box.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=reporter.box,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls is not None:
            # Built once here: every reconnect reuses it, and a bad file fails the agent's start, not a retry.
            self.client.tls_set_context(tls_context or broker.tls.context())
        self.client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        self.client.on_pre_connect = self._on_pre_connect
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    @property
    def connected(self) -> bool:
        return self._connected

    def connect_async(self) -> None:
        """Prepare the first connection; the network loop (paho's or the caller's) performs it. The will is set
        by ``_on_pre_connect``, which paho calls at the start of every attempt, the first one included."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive_s)

    def send(self, heartbeat: Heartbeat) -> None:
        """Publish now, or keep it for the next connection when the broker is unreachable."""
        with self._lock:
            if not self._connected:
                self.reporter.keep(heartbeat)
                return
            self._flush_backlog()  # first: the controller takes a box's heartbeats in order of sequence
            info = self.client.publish(topics.heartbeat_topic(self.reporter.box), messages.encode(heartbeat), qos=QOS)
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                # paho keeps it in its own queue and resends it on reconnect; nothing more to do.
                log.debug("Queued heartbeat while connection was dropping", extra={"box": self.reporter.box})

    def publish_raw(self, topic: str, payload: bytes) -> None:
        """Publish bytes as they are (the simulator's malformed-payload fault uses it)."""
        self.client.publish(topic, payload, qos=QOS)

    def stop(self) -> mqtt.MQTTMessageInfo | None:
        """Say "offline" (reason shutdown) and disconnect cleanly; a clean DISCONNECT suppresses the will,
        so without this the controller would only notice the stop by the heartbeat timeout."""
        with self._lock:
            info = None
            if self._connected:
                self._flush_backlog()  # a stop before the next beat must not drop what the box kept
                status = self.reporter.status("offline", "shutdown")
                info = self.client.publish(
                    topics.status_topic(self.reporter.box), messages.encode(status), qos=QOS, retain=True
                )
            self._connected = False
        return info

    def _flush_backlog(self) -> None:
        """Publish the heartbeats kept while disconnected, oldest first. Under ``_lock``, connected."""
        for kept in self.reporter.drain():
            self.client.publish(topics.heartbeat_topic(self.reporter.box), messages.encode(kept), qos=QOS)

    def disconnect(self) -> None:
        self.client.disconnect()

    # --- paho callbacks: never raise out of them -------------------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self.reporter.next_session()
        will = self.reporter.status("offline", "connection-lost")
        client.will_set(topics.status_topic(self.reporter.box), messages.encode(will), qos=QOS, retain=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            if reason_code.value in CREDENTIALS_REFUSED:
                # Retrying bad credentials only fills the broker's log; a human must fix them. Whoever drives the
                # link (the agent, the simulator) says so, once: a line here too would say it twice.
                self.credentials_refused = True
                client.disconnect()
                return
            log.warning("Broker refused box connection", extra={"box": self.reporter.box, "reason": str(reason_code)})
            return
        self.refused = None
        with self._lock:
            online = self.reporter.status("online", "connected")
            client.publish(topics.status_topic(self.reporter.box), messages.encode(online), qos=QOS, retain=True)
            if not self._ever_connected:
                # The first connection: controllers have long been subscribed, and the heartbeat the agent made
                # at its start must not wait a whole interval.
                self._flush_backlog()
            # After a reconnection the backlog waits for the next beat (``send``; module docstring).
            self._ever_connected = True
            self._connected = True
        log.info("Connected box to broker", extra={"box": self.reporter.box, "broker": str(self.broker)})

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._lock:
            self._connected = False
        if self.credentials_refused:
            return  # the link hung up itself after the refusal: there was no connection to lose
        log.info("Lost connection to broker", extra={"box": self.reporter.box, "reason": str(reason_code)})
