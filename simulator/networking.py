"""Thousands of boxes' MQTT connections (each a real ``BoxLink`` with its paho client) driven from one asyncio
event loop, as aiomqtt does it: paho tells us through its socket callbacks when a socket opens, closes or has
bytes to write, and the loop's epoll selector calls ``loop_read``/``loop_write`` when the socket is ready.
paho's own loops (``loop_start``/``loop_forever``) use ``select()``, which fails past fd 1024, and a thread per
box would not fit 2,000 boxes on two cores (shared/FIELD-NOTES.md).

Also here: connecting in small batches, reconnecting after a loss with jittered exponential backoff, one
timer that runs every client's ``loop_misc`` (keepalive pings) once a second, and the network side of faults:
``drop`` (tear the TCP connection down without a DISCONNECT) and ``freeze``/``thaw`` (a site's cut WAN cable).
Used by ``simulator.running``; nothing else touches the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.agent import link
from edgefleet.agent.link import BoxLink

log = logging.getLogger(__name__)

# paho's loop_misc sends the keepalive pings and notices an unanswered one; once a second is what paho's own
# loop does, and one pass over 2,000 clients costs about 10 ms.
MISC_INTERVAL_S: Final = 1.0
# paho's connect is a blocking TCP connect; on loopback it takes ~0.1 ms, but a burst of 2,000 fills the
# broker's accept backlog (Mosquitto listens with 100) and a dropped SYN stalls the loop a whole second.
CONNECT_BATCH: Final = 50
CONNECT_BATCH_PAUSE_S: Final = 0.025
# paho's TCP connect blocks the whole loop; on loopback or a LAN it takes well under a millisecond, so a connect
# that takes longer is a full accept backlog or a dead broker: give up soon and retry on the backoff (paho's
# default of 5 s would freeze all 2,000 boxes for 5 s per try).
CONNECT_TIMEOUT_S: Final = 0.5
# The same bounds as the agent's own reconnect (BoxLink: paho waits 1 s to 60 s, never less than 1 s), with up to
# 50% added so that the boxes of a site that lost its WAN do not all knock at once when it comes back, but never
# past the agent's 60 s: the controller's hold after an outage is bounded by it (edgefleet.cloud.hearing).
RECONNECT_MIN_S: Final = float(link.RECONNECT_MIN_S)
RECONNECT_MAX_S: Final = float(link.RECONNECT_MAX_S)
RECONNECT_JITTER: Final = 0.5
# One warning per period about boxes that cannot connect, not one per box and try.
FAILURE_LOG_PERIOD_S: Final = 10.0
# MQTT 5 CONNACK codes that retrying cannot fix (bad credentials, not authorised, bad auth method): BoxLink
# stops on them, so do we.
REFUSED_FOR_GOOD: Final = link.CREDENTIALS_REFUSED
# Bytes that may still wait in a socket that is being torn down: read at most this many packets of them.
MAX_DRAIN_READS: Final = 64


def reconnect_delay(attempt: int, rng: random.Random) -> float:
    """Seconds before reconnect attempt ``attempt`` (0 for the first after a loss): doubling, jittered upwards
    only - a real agent never comes back sooner than paho's minimum delay - and capped at the agent's maximum."""
    base = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2.0 ** min(attempt, 16))
    return min(RECONNECT_MAX_S, base * rng.uniform(1.0, 1.0 + RECONNECT_JITTER))


@dataclass(slots=True, eq=False)
class Connection:
    """The driver's state for one box's link."""

    link: BoxLink
    sock: Any = None
    frozen: bool = False
    connecting: bool = False
    refused_for_good: bool = False
    attempts: int = 0
    # A dropped box does not try to reconnect before this (the loop's time): a drop that keeps it away a while.
    away_until: float = 0.0
    retry: asyncio.TimerHandle | None = None

    @property
    def box(self) -> str:
        return self.link.reporter.box


@dataclass(slots=True)
class DriverCounters:
    connects: int = 0
    connect_failures: int = 0
    losses: int = 0
    drops: int = 0


class LinkDriver:
    """Runs every added link's paho client on the running asyncio loop. Not thread-safe: call it from the loop."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._rng = rng or random.Random(0)
        self._connections: list[Connection] = []
        self._closing = False
        self._misc_task: asyncio.Task[None] | None = None
        self.counters = DriverCounters()
        self._failures_unlogged = 0
        self._failure_logged_at = 0.0
        # Every box logs in with the same login, or all with logins from one file: a refusal is said once, not once
        # per box (the others at debug level).
        self._refusal_logged = False

    @property
    def connections(self) -> list[Connection]:
        return self._connections

    def add(self, link: BoxLink) -> Connection:
        conn = Connection(link)
        client = link.client
        client.user_data_set(conn)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        box_on_connect: Callable[..., None] | None = client.on_connect

        # BoxLink's on_connect publishes the birth message and flushes its buffer; we only need to know that
        # the connection is up, to reset the backoff.
        def on_connect(
            client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
        ) -> None:
            if box_on_connect is not None:
                box_on_connect(client, userdata, flags, reason_code, properties)
            if reason_code.is_failure:
                conn.refused_for_good = reason_code.value in REFUSED_FOR_GOOD
                return
            conn.attempts = 0
            self.counters.connects += 1

        client.on_connect = on_connect
        self._connections.append(conn)
        return conn

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every link, a batch at a time, and start the keepalive timer."""
        self._misc_task = asyncio.create_task(self._run_misc(), name="mqtt-loop-misc")
        for number, conn in enumerate(self._connections, start=1):
            conn.link.connect_async()
            self._connect(conn)
            if number % CONNECT_BATCH == 0:
                # Let the loop read the CONNACKs of this batch before the next one knocks.
                await asyncio.sleep(CONNECT_BATCH_PAUSE_S)

    async def close(self, *, timeout_s: float = 3.0) -> None:
        """Stop every box cleanly: retained "offline" (reason shutdown), then DISCONNECT; whatever does not
        finish within ``timeout_s`` is torn down."""
        self._closing = True
        if self._misc_task is not None:
            self._misc_task.cancel()
        for conn in self._connections:
            if conn.retry is not None:
                conn.retry.cancel()
                conn.retry = None
        live = [c for c in self._connections if c.sock is not None and not c.frozen]
        sent = [info for info in (c.link.stop() for c in live) if info is not None]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(info.is_published() for info in sent):
            await asyncio.sleep(0.02)
        for conn in live:
            if conn.sock is not None:
                conn.link.disconnect()
        while time.monotonic() < deadline and any(c.sock is not None for c in live):
            await asyncio.sleep(0.02)
        for conn in self._connections:
            if conn.sock is not None:
                conn.frozen = False
                self._tear_down(conn, drain=True)

    # --- faults ------------------------------------------------------------------------------------------------

    def drop(self, conn: Connection, *, away_s: float | None = None) -> bool:
        """Tear the box's TCP connection down without a DISCONNECT (the broker sends its will at once); paho
        sees the loss as it would a real one and the box reconnects after the usual backoff, or after ``away_s``
        when that is longer (a link down for a while: without it a box is back within 1-1.5 s, which can come
        before the controller judges its will, and then no loss is told, by design). False when the box had no
        connection to drop."""
        if conn.sock is None:
            return False
        self.counters.drops += 1
        if away_s is not None:
            conn.away_until = self._loop.time() + away_s
        self._tear_down(conn, drain=not conn.frozen)
        return True

    def freeze(self, conn: Connection) -> None:
        """Cut the box off the network: its socket is neither read nor written and its keepalive stops, so the
        broker hears nothing and sends the will once 1.5 x keepalive have passed, as for a pulled WAN cable
        (Mosquitto 2.0.11 looks every 5 s, so up to 5 s later)."""
        conn.frozen = True
        if conn.retry is not None:
            conn.retry.cancel()
            conn.retry = None
        if conn.sock is not None:
            self._loop.remove_reader(conn.sock)
            self._loop.remove_writer(conn.sock)

    def thaw(self, conn: Connection) -> None:
        """Give the box its network back: the frozen connection is dropped (the broker gave up on it, or will
        once it sees the FIN) and the box reconnects after the usual short backoff."""
        if not conn.frozen:
            return
        conn.frozen = False
        conn.attempts = 0
        if conn.sock is not None:
            self._tear_down(conn, drain=True)
        else:
            self._schedule_reconnect(conn)

    # --- connecting --------------------------------------------------------------------------------------------

    def _connect(self, conn: Connection) -> None:
        conn.retry = None
        if self._closing or conn.frozen or conn.sock is not None:
            return
        conn.connecting = True
        try:
            conn.link.client.reconnect()
        except (OSError, ValueError) as exc:
            # No socket was registered (the TCP connect itself failed): try again later.
            self._note_failure(conn, exc)
            self._schedule_reconnect(conn)
        finally:
            conn.connecting = False

    def _schedule_reconnect(self, conn: Connection) -> None:
        if self._closing or conn.frozen or conn.retry is not None or conn.refused_for_good:
            return
        delay = max(reconnect_delay(conn.attempts, self._rng), conn.away_until - self._loop.time())
        conn.attempts += 1
        conn.retry = self._loop.call_later(delay, self._connect, conn)

    def _note_failure(self, conn: Connection, exc: BaseException) -> None:
        self.counters.connect_failures += 1
        self._failures_unlogged += 1
        now = time.monotonic()
        if now - self._failure_logged_at >= FAILURE_LOG_PERIOD_S:
            log.warning(
                "Failed to connect boxes to broker; retrying with backoff",
                extra={
                    "box": conn.box,
                    "broker": str(conn.link.broker),
                    "failures": self._failures_unlogged,
                    "error": str(exc),
                },
            )
            self._failure_logged_at = now
            self._failures_unlogged = 0

    # --- paho's socket callbacks: called from inside paho, on the loop; never raise -------------------------

    def _on_socket_open(self, client: mqtt.Client, conn: Connection, sock: Any) -> None:
        conn.sock = sock
        if not conn.frozen:
            self._loop.add_reader(sock, self._readable, conn)

    def _on_socket_close(self, client: mqtt.Client, conn: Connection, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        conn.sock = None
        if conn.connecting or self._closing:
            return
        self.counters.losses += 1
        if conn.refused_for_good:
            if self._refusal_logged:
                log.debug("Stopped reconnecting box: broker refused its login", extra={"box": conn.box})
                return
            self._refusal_logged = True
            log.error(
                "Stopped reconnecting boxes the broker refused: it refused their login",
                extra={
                    "box": conn.box,
                    "broker": str(conn.link.broker),
                    "reason": conn.link.refused,
                    "check": "the login in --broker / EDGEFLEET_BROKER_URL (mqtt://USER:PASSWORD@HOST:PORT) or in "
                    "--box-logins, and the broker's accounts ('edgefleet broker box list')",
                },
            )
            return
        self._schedule_reconnect(conn)

    def _on_register_write(self, client: mqtt.Client, conn: Connection, sock: Any) -> None:
        if not conn.frozen:
            self._loop.add_writer(sock, self._writable, conn)

    def _on_unregister_write(self, client: mqtt.Client, conn: Connection, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _readable(self, conn: Connection) -> None:
        try:
            conn.link.client.loop_read()
        except Exception:
            # paho turns socket errors into a closed connection; anything else is a bug worth a traceback,
            # but one box's bug must not stop the other 1,999.
            log.exception("Failed to read box connection", extra={"box": conn.box})

    def _writable(self, conn: Connection) -> None:
        try:
            conn.link.client.loop_write()
        except Exception:
            log.exception("Failed to write box connection", extra={"box": conn.box})

    async def _run_misc(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL_S)
            for conn in self._connections:
                if conn.sock is not None and not conn.frozen:
                    try:
                        conn.link.client.loop_misc()
                    except Exception:
                        log.exception("Failed to run keepalive of box connection", extra={"box": conn.box})

    def _tear_down(self, conn: Connection, *, drain: bool) -> None:
        """Send FIN both ways on the box's socket and let paho find it dead on its next read, the way it finds
        a connection the broker closed: paho closes it, calls BoxLink's on_disconnect and our close callback,
        which schedules the reconnect. When ``drain`` is false (a frozen box) that read waits for the thaw."""
        sock = conn.sock
        # Already reset by the peer? The read below finds that just the same.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        if not drain:
            return
        for _ in range(MAX_DRAIN_READS):
            if conn.sock is not sock:
                return
            conn.link.client.loop_read()
        if conn.sock is sock:
            # Still open after reading everything it held: leave it to the reader, which sees EOF next.
            self._loop.add_reader(sock, self._readable, conn)
