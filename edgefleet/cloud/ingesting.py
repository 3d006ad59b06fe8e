"""Takes every box's heartbeats and status messages from the broker into the live fleet state.

One paho-mqtt 2.x client (MQTT 5, paho's own network thread via ``loop_start``) subscribes, at each connect, to
the heartbeat and status filters with a plain (not shared) subscription of its own: every controller replica,
leader or standby, hears the whole fleet, so a standby's live state is warm the moment it takes over
(``edgefleet.cloud.leading``). A shared group (``share_group``) would split the fleet between the replicas; it
stays an option for the ingest sharding design (docs/reliability.md), not used by the controller. Started and stopped by
the controller; ``handle`` is the whole per-message path and tests call it directly.

Every message is checked before it touches the state: topic, size, JSON and schema (``messages.decode_*``),
that the box is in the inventory, that the payload names the box of its topic and the site the inventory
gives it. A refused message is counted by cause, logged the first time its cause occurs (box and detail
truncated) and then only counted; nothing raises out of paho's callback. A late ("stale") message, or one whose
box time ran too far ahead ("clock-skew-clamped", taken with the time clamped: ``fleet.MAX_CLOCK_SKEW_S``), is
logged once per box per episode: the episode ends when a message of that box is taken as it came. Boxes that are in no site manifest
are listed (id, claimed site, first and last seen) so that ops can add them; nothing else of theirs is kept.

The hot path (paho's ``on_message`` -> msgspec decode -> dict lookup -> compare -> assign, under the fleet lock)
does no database work, no logging and allocates little beyond the decoded message: the topic is looked up in a
table of the inventory's topics, and the health point is written into the box's ring of floats
(``fleet.HealthHistory``). A heartbeat taken is then shown, outside the lock, to ``on_heartbeat`` when one is set
(the controller sets the rollouts' reconciler's filter: a dict lookup for a box no rollout waits on). Its cost, and
the benchmark against a bare paho subscriber: docs/performance.md.

Retained status at start-up (measured with Mosquitto 2.0.11 and paho 2.2, see tests/cloud): Mosquitto does
deliver retained messages to a new *shared* subscriber (MQTT 5 says a server need not, and others do not),
but at QoS 1 they go through the client's queue, and past ``max_queued_messages`` (1,000) plus the in-flight
window it drops the rest silently: 1,100 of 2,000 retained statuses arrived. So the subscriptions ask
for no retained messages (retain handling 2), and at each connect the ingest takes the retained statuses from
a plain QoS 0 subscription to the status filter (QoS 0 is not queued that way: 10,000 of 10,000 arrived),
which it unsubscribes as soon as the broker acknowledges it; what the broker had already queued still
arrives. A live status that comes in that window twice is counted as a duplicate.

Login: the username and password come from the broker URL or the settings (``Settings.broker_login``) and are
set before the first connect. A broker that refuses them (bad user name or password, not authorised) is told
in one error line and not tried again: paho would otherwise retry every few seconds for ever, filling both logs,
and a human must fix the login anyway; ``refused`` then says why for /healthz. The broker is shown only masked
(``credentials.mask_url``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import statistics
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, get_args

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgefleet import topics
from edgefleet.clock import Clock
from edgefleet.cloud.fleet import BoxLive, FleetState, apply_heartbeat, apply_status, note_unknown_box
from edgefleet.cloud.hearing import IngestStats
from edgefleet.cloud.settings import BrokerTls, broker_url_is_tls, broker_url_login, parse_broker_url
from edgefleet.credentials import mask_url
from edgefleet.errors import MessageRejected
from edgefleet.ids import BoxId, is_valid_id
from edgefleet.messages import MAX_MESSAGE_BYTES, Heartbeat, decode_heartbeat, decode_status

log = logging.getLogger(__name__)

Outcome = Literal[
    "accepted",
    "clock-skew-clamped",
    "duplicate",
    "stale",
    "malformed",
    "oversized",
    "schema",
    "unknown-box",
    "topic-mismatch",
    "rate-limited",
    "site-mismatch",
    "bad-topic",
    "internal-error",
]
# What ``Ingest.on_heartbeat`` is called with: the box, its heartbeat before this one (None: its first), this one.
HeartbeatListener = Callable[[BoxId, Heartbeat | None, Heartbeat], None]
# Outcomes of a message that was taken into the state.
_TAKEN: Final = frozenset({"accepted", "clock-skew-clamped"})
# Every outcome, in the order above: counters and /metrics list them all, zeros included.
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

QOS: Final = 1
# The broker notices a dead controller within 1.5 x this; the controller's own traffic keeps it alive anyway.
KEEPALIVE_S: Final = 30
# paho's reconnect backoff: quick after a broker restart, and a down broker is tried twice a minute.
RECONNECT_MIN_S: Final = 1
RECONNECT_MAX_S: Final = 30
# Enough of a bad payload or topic to recognise it in the log, not enough to flood it.
DETAIL_CHARS: Final = 200
# seq and session are stored as PostgreSQL BIGINT; JSON allows larger integers, which would fail every flush.
MAX_COUNTER: Final = 2**63 - 1
CLIENT_ID_PREFIX: Final = "edgefleet-cloud"
# Every box's status topic, spelt otherwise than ``topics.STATUS_FILTER`` (``edgefleet/v1/+/+/status``).
SNAPSHOT_FILTER: Final = f"{topics.PREFIX.rsplit('/', 1)[0]}/+/+/status"

_SUBACK_FAILURE: Final = 0x80
# CONNACK reason codes that say the login itself was refused: bad user name or password, not authorised, bad
# authentication method. MQTT 3.1.1's codes 4 and 5 reach paho's MQTT 5 callback as 0x86 and 0x87.
LOGIN_REFUSED_CODES: Final = frozenset({0x86, 0x87, 0x8C})


class _Claim(msgspec.Struct):
    """Just what an unknown box says it is, read leniently (any types, anything else ignored)."""

    box: Any = None
    site: Any = None


_claim_decoder = msgspec.json.Decoder(_Claim)


class Ingest:
    """The controller's MQTT subscriber. ``counters`` and ``connected`` may be read from any thread."""

    def __init__(
        self,
        state: FleetState,
        broker_url: str,
        *,
        clock: Clock,
        login: tuple[str, str | None] | None = None,
        tls: BrokerTls | None = None,
        client_id: str | None = None,
        share_group: str | None = None,
        keepalive_s: int = KEEPALIVE_S,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        on_heartbeat: HeartbeatListener | None = None,
    ) -> None:
        self.state = state
        # Told of every heartbeat taken, with the box's one before it (the rollouts' reconciler wakes on a change
        # of the apps a rollout waits for). Called on paho's thread, outside the fleet lock, ~200 times a second:
        # it must be cheap and must not block.
        self.on_heartbeat = on_heartbeat
        # Only the masked URL is kept: it goes into log lines and /healthz.
        self.broker_shown = mask_url(broker_url)
        self.host, self.port = parse_broker_url(broker_url)
        if login is None:
            url_username, url_password = broker_url_login(broker_url)
            login = (url_username, url_password) if url_username is not None else None
        self.username = login[0] if login is not None else None
        self.clock = clock
        self.keepalive_s = keepalive_s
        # Stable prefix for the broker's log, random suffix: two controllers (or a restart racing the old
        # process) must never take each other's session.
        self.client_id = client_id or f"{CLIENT_ID_PREFIX}-{socket.gethostname()[:24]}-{uuid.uuid4().hex[:8]}"
        self._filters = (
            (topics.HEARTBEAT_FILTER, topics.STATUS_FILTER)
            if share_group is None
            else (topics.shared(topics.HEARTBEAT_FILTER, share_group), topics.shared(topics.STATUS_FILTER, share_group))
        )
        # The retained statuses' one-off subscription: a filter other than the live one's, or subscribing it would
        # replace the live subscription and unsubscribing it would end it (MQTT keys a client's subscriptions by
        # their filter). It matches the same topics; a live status in the window arrives twice (a duplicate).
        self._snapshot_filter = SNAPSHOT_FILTER if share_group is None else topics.STATUS_FILTER
        self._boxes = state.boxes
        # Topic -> (box, channel) for every box of the inventory: one dict lookup instead of a split and a
        # regular expression per message. Other topics (unknown boxes, garbage) are parsed, never added here.
        self._routes = _topic_routes(state.boxes)
        self._lock = state.lock
        self._counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._logged_causes: set[str] = set()
        # Boxes whose latest stale drop or clamped clock was logged and not yet followed by a message taken as it
        # came: one line per box per episode. Bounded by the inventory (unknown boxes never get this far).
        self._stale_episodes: set[BoxId] = set()
        self._skew_episodes: set[BoxId] = set()
        self._unknown_overflow_logged = False
        self._connected = False
        self._subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._snapshot_mid: int | None = None
        self.snapshots_taken = 0
        self._failed_attempts = 0
        self.refused: str | None = None
        self._meter = _Meter(clock.monotonic())
        # What one publisher can make the controller do: a box's topics and made-up boxes have a budget each.
        self._box_budgets: dict[BoxId, _Budget] = {}
        self._unknown_budget = _Budget(UNKNOWN_BURST, UNKNOWN_RATE_PER_S, clock.monotonic())
        self.login_refused = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if login is not None:
            self._client.username_pw_set(login[0], login[1])
        if tls is None and broker_url_is_tls(broker_url):
            tls = BrokerTls(None, None, None)  # mqtts:// alone: the system's trust store, no client certificate
        if tls is not None:
            # Built once: every reconnect reuses it, and a file that cannot be used fails the start.
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.cert_file is not None:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
            self._client.tls_set_context(context)
        self.reconnect_max_s = reconnect_max_s
        self._client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)  # type: ignore[arg-type]
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False

    # --- public surface -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the controller holds a connection to the broker now."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Whether the broker has acknowledged the subscriptions of the current connection."""
        return self._subscribed.is_set()

    @property
    def counters(self) -> dict[str, int]:
        """Messages taken so far, by outcome (a copy; every outcome is present, zero or not)."""
        return dict(self._counts)

    @property
    def failed_attempts(self) -> int:
        """Connection attempts that failed since the last successful one."""
        return self._failed_attempts

    def stats(self) -> IngestStats:
        """What the ingest measured of its own hearing (``hearing.assess`` judges it); any thread."""
        return self._meter.stats(self.clock.monotonic(), subscribed=self.subscribed)

    def inventory_changed(self) -> None:
        """The fleet state took a new inventory (``fleet.replace_inventory``): route the new boxes' topics. The
        table is swapped whole, so the network thread reads either the old one or the new one; a removed box's
        topic, still routed in the old one, finds no box and counts as unknown."""
        with self._lock:
            routes = _topic_routes(self.state.boxes)
        self._routes = routes

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def start(self) -> None:
        """Connect in paho's network thread; an unreachable broker is retried with backoff, never raised."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._subscribed.clear()

    def handle(self, topic: str, payload: bytes) -> Outcome:
        """Check one message and apply it to the fleet state; returns its outcome (also counted).

        Called from one thread at a time (paho's network thread, or a test). Raises only on a bug.
        """
        parsed = self._routes.get(topic) or topics.parse_box_topic(topic)
        if parsed is None:
            return self._reject(
                "bad-topic", None, f"topic {topic[:DETAIL_CHARS]!r} is not {topics.PREFIX}/<box>/<channel>"
            )
        box, channel = parsed
        live = self._boxes.get(box)
        now = self.clock.monotonic()
        if live is None:
            if not self._unknown_budget.take(now):  # past the budget, a made-up box costs a count, nothing more
                self._counts["unknown-box"] += 1
                return "unknown-box"
            return self._unknown_box(box, payload)
        budget = self._box_budgets.get(box)
        if budget is not None and not budget.available(now):
            return self._reject(
                "rate-limited", box, f"more than {BOX_BAD_BURST} refused messages at once on the topics of {box!r}"
            )
        outcome = self._take_known(box, live, channel, payload)
        if outcome not in _TAKEN:
            if budget is None:
                budget = self._box_budgets[box] = _Budget(BOX_BAD_BURST, BOX_BAD_RATE_PER_S, now)
            budget.take(now)
        return outcome

    def _take_known(self, box: BoxId, live: BoxLive, channel: topics.Channel, payload: bytes) -> Outcome:
        outcome: Outcome
        try:
            if channel == "heartbeat":
                heartbeat = decode_heartbeat(payload)
                # The common case tested inline; ``_mismatch`` only says which check failed.
                if heartbeat.box != box or heartbeat.site != live.site or heartbeat.seq > MAX_COUNTER:
                    problem = _mismatch(box, live.site, heartbeat.box, heartbeat.site, heartbeat.seq)
                    if problem is not None:
                        return self._reject(problem[0], box, problem[1])
                received_at = self.clock.now()
                with self._lock:
                    before = live.heartbeat
                    outcome = apply_heartbeat(live, heartbeat, received_at=received_at)
                if outcome == "accepted":
                    self._meter.heartbeat(box, received_at - heartbeat.sent_at)
                if outcome in _TAKEN and self.on_heartbeat is not None:
                    # Outside the fleet lock: the listener may wake a reconciler, never wait for one.
                    self.on_heartbeat(box, before, heartbeat)
            else:
                status = decode_status(payload)
                problem = _mismatch(box, live.site, status.box, status.site, status.session)
                if problem is not None:
                    return self._reject(problem[0], box, problem[1])
                received_at = self.clock.now()
                with self._lock:
                    outcome = apply_status(live, status, received_at=received_at)
        except MessageRejected as exc:
            return self._reject(exc.cause, box, exc.detail)  # type: ignore[arg-type]
        self._counts[outcome] += 1
        # The common case (taken, no episode open) costs one test.
        if outcome != "duplicate" and (outcome != "accepted" or self._stale_episodes or self._skew_episodes):
            self._note_episode(box, channel, outcome)
        return outcome

    def _note_episode(self, box: BoxId, channel: str, outcome: Outcome) -> None:
        """Log a box's stale drops and clamped clock once per episode; a message taken as it came ends both."""
        if outcome == "accepted":
            self._stale_episodes.discard(box)
            self._skew_episodes.discard(box)
        elif outcome == "stale" and box not in self._stale_episodes:
            self._stale_episodes.add(box)
            log.warning(
                "Dropped late message of box; later ones are only counted until the box's messages are taken again",
                extra={"cause": outcome, "box": box, "channel": channel},
            )
        elif outcome == "clock-skew-clamped":
            self._stale_episodes.discard(box)
            if box in self._skew_episodes:
                return
            self._skew_episodes.add(box)
            log.warning(
                "Clamped the time of a message of box: its clock runs ahead of the controller's; "
                "later ones are only counted until its clock is back within bounds",
                extra={"cause": outcome, "box": box, "channel": channel},
            )

    # --- checks -------------------------------------------------------------------------------------------

    def _reject(self, cause: Outcome, box: str | None, detail: str) -> Outcome:
        self._counts[cause] = self._counts.get(cause, 0) + 1
        if cause not in self._logged_causes:
            self._logged_causes.add(cause)
            log.warning(
                "Dropped %s message from box; later ones of this cause are only counted",
                cause,
                extra={"cause": cause, "box": box, "detail": detail[:DETAIL_CHARS]},
            )
        return cause

    def _unknown_box(self, box: str, payload: bytes) -> Outcome:
        claimed = _claimed_site(payload)
        received_at = self.clock.now()
        with self._lock:
            listed = note_unknown_box(self.state, box, claimed, received_at=received_at)
        if not listed and not self._unknown_overflow_logged:
            self._unknown_overflow_logged = True
            log.warning("Stopped listing unknown boxes: the list is full", extra={"box": box})
        return self._reject(
            "unknown-box", box, f"box {box!r} (claims site {claimed!r}) is in no site manifest; add it to sites/"
        )

    # --- paho callbacks: never raise out of them ------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        started = self.clock.monotonic()
        try:
            self._take(message)
        finally:
            self._meter.message(started, self.clock.monotonic())

    def _take(self, message: mqtt.MQTTMessage) -> None:
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                self._reject("bad-topic", None, f"topic is not UTF-8: {message._topic[:DETAIL_CHARS]!r}")
                return
            payload = message.payload
            self.handle(topic, payload if isinstance(payload, bytes) else bytes(payload))
        except Exception as exc:  # a bug must cost one message, never the ingest
            self._counts["internal-error"] += 1
            if "internal-error" not in self._logged_causes:
                self._logged_causes.add("internal-error")
                log.exception("Failed to handle message", extra={"error": str(exc)[:DETAIL_CHARS]})

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value in LOGIN_REFUSED_CODES:
                # Retrying a refused login only fills both logs; a human must fix it. One line says so.
                self.login_refused = True
                self.refused = (
                    f"the broker refused the controller's login ({reason_code}) as "
                    f"{self.username or 'an anonymous client'}; fix the username or password "
                    "(broker URL, EDGEFLEET_BROKER_USERNAME, EDGEFLEET_BROKER_PASSWORD[_FILE]) and restart"
                )
                log.error(
                    "Broker refused the controller's login; stopped connecting until it is fixed and the "
                    "controller restarted",
                    extra={
                        "broker": self.broker_shown,
                        "reason": str(reason_code),
                        "username": self.username,
                        "hint": "check EDGEFLEET_BROKER_USERNAME and the password setting, or the broker's "
                        "password file",
                    },
                )
                client.disconnect()
                return
            self.refused = f"the broker refused the connection ({reason_code})"
            log.error(
                "Broker refused controller connection",
                extra={"broker": self.broker_shown, "reason": str(reason_code), "client_id": self.client_id},
            )
            return
        self.refused = None
        self._connected = True
        if self._failed_attempts:
            log.info(
                "Connected to broker after failed attempts",
                extra={"broker": self.broker_shown, "failed_attempts": self._failed_attempts},
            )
        else:
            log.info("Connected to broker", extra={"broker": self.broker_shown, "client_id": self.client_id})
        self._failed_attempts = 0
        # Subscribing here, not once at start, renews the subscriptions after every reconnect.
        no_retained = SubscribeOptions(qos=QOS, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        _, self._subscribe_mid = client.subscribe([(f, no_retained) for f in self._filters])
        _, self._snapshot_mid = client.subscribe(self._snapshot_filter, options=SubscribeOptions(qos=0))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode], properties: Any
    ) -> None:
        if mid == self._snapshot_mid:
            client.unsubscribe(self._snapshot_filter)
            self.snapshots_taken += 1
            return
        if mid != self._subscribe_mid:
            return
        refused = [str(code) for code in reason_codes if code.value >= _SUBACK_FAILURE]
        if refused:
            # A broker without shared subscriptions: one controller can still take every message itself.
            log.error(
                "Broker refused shared subscriptions; subscribed without sharing",
                extra={"broker": self.broker_shown, "reasons": refused},
            )
            options = SubscribeOptions(qos=QOS, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            _, self._subscribe_mid = client.subscribe(
                [(topics.HEARTBEAT_FILTER, options), (topics.STATUS_FILTER, options)]
            )
            return
        self._subscribed.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._failed_attempts += 1
        if self._failed_attempts == 1:
            log.warning(
                "Could not reach broker; retrying every %s s at most until it answers",
                self.reconnect_max_s,
                extra={"broker": self.broker_shown, "hint": "check that the broker runs (EDGEFLEET_BROKER_URL)"},
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        was_connected = self._connected
        self._connected = False
        self._subscribed.clear()
        if was_connected and self._started:
            log.warning(
                "Lost connection to broker; reconnecting",
                extra={"broker": self.broker_shown, "reason": str(reason_code)},
            )


def _mismatch(box: str, site: str, message_box: str, message_site: str, counter: int) -> tuple[Outcome, str] | None:
    if message_box != box:
        return "topic-mismatch", f"message of box {message_box!r} on the topic of box {box!r}"
    if message_site != site:
        return "site-mismatch", f"box {box!r} says it is at site {message_site!r}; the inventory says {site!r}"
    if counter > MAX_COUNTER:
        return "malformed", f"sequence {counter} is above {MAX_COUNTER}"
    return None


def _claimed_site(payload: bytes) -> str | None:
    """The site an unknown box says it is at, if its payload says so plainly; None otherwise."""
    if len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        claim = _claim_decoder.decode(payload)
    except msgspec.DecodeError:
        return None
    return claim.site if isinstance(claim.site, str) and is_valid_id(claim.site) else None


def _topic_routes(boxes: Iterable[BoxId]) -> dict[str, tuple[BoxId, topics.Channel]]:
    """Topic -> (box, channel) for every box: one dict lookup per message instead of a split and a regex."""
    routes: dict[str, tuple[BoxId, topics.Channel]] = {}
    for box in boxes:
        routes[topics.heartbeat_topic(box)] = (box, "heartbeat")
        routes[topics.status_topic(box)] = (box, "status")
    return routes


# A box's own agent sends next to nothing that is refused (a QoS 1 duplicate after a reconnect). Past this burst and
# rate of refused messages on one box's topics, every message on them is dropped before it is decoded (counted as
# rate-limited) until the budget refills: a garbage flood on one topic then costs a dict lookup a message.
BOX_BAD_BURST: Final = 100
BOX_BAD_RATE_PER_S: Final = 10.0
# Made-up boxes are listed for ops (a decode and the fleet lock each); past this they are only counted.
UNKNOWN_BURST: Final = 1000
UNKNOWN_RATE_PER_S: Final = 50.0


class _Budget:
    """A token bucket: ``burst`` at once, refilled at ``rate_per_s``."""

    __slots__ = ("_at", "_rate", "_size", "_tokens")

    def __init__(self, burst: float, rate_per_s: float, now: float) -> None:
        self._size = burst
        self._rate = rate_per_s
        self._tokens = burst
        self._at = now

    def available(self, now: float) -> bool:
        if now > self._at:
            self._tokens = min(self._size, self._tokens + (now - self._at) * self._rate)
            self._at = now
        return self._tokens >= 1.0

    def take(self, now: float) -> bool:
        if not self.available(now):
            return False
        self._tokens -= 1.0
        return True


# The ingest's own hearing, measured over windows of this length: long enough to smooth a burst, short enough
# that a flood is seen within seconds.
METER_WINDOW_S: Final = 5.0
# A pause between two messages longer than this is breathing room; shorter ones are a thread kept busy.
IDLE_GAP_S: Final = 0.002
# A box's usual offset (receive time - its send time) is the least of its last few: a box whose clock is
# corrected counts as late for this many heartbeats at most.
OFFSETS_KEPT: Final = 6


class _Meter:
    """Measures the ingest's lag, saturation and receive gaps (``Ingest.stats``). Written by paho's network thread
    (or a test calling ``handle``), read by the alert loop; a stale read costs nothing."""

    def __init__(self, now: float) -> None:
        self._window_start = now
        self._last_message: float | None = None
        self._idle = 0.0
        self._lags: list[float] = []
        self._previous_lag = 0.0
        self._previous_busy = 0.0
        self._offsets: dict[BoxId, deque[float]] = {}

    def message(self, started: float, ended: float) -> None:
        """One message took the thread from ``started`` to ``ended`` (monotonic)."""
        if self._last_message is not None and started - self._last_message > IDLE_GAP_S:
            self._idle += started - self._last_message
        self._last_message = ended
        self._roll(ended)

    def heartbeat(self, box: BoxId, offset_s: float) -> None:
        """An accepted heartbeat of ``box`` received ``offset_s`` after its own send time (its clock's skew included)."""
        offsets = self._offsets.get(box)
        if offsets is None:
            offsets = self._offsets[box] = deque(maxlen=OFFSETS_KEPT)
        usual = min(offsets) if offsets else offset_s
        offsets.append(offset_s)
        self._lags.append(max(0.0, offset_s - usual))

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed < METER_WINDOW_S:
            return
        self._previous_busy = max(0.0, 1.0 - self._idle / elapsed)
        self._previous_lag = statistics.median(self._lags) if self._lags else 0.0
        self._window_start = now
        self._idle = 0.0
        self._lags = []

    def stats(self, now: float, *, subscribed: bool) -> IngestStats:
        since = None if self._last_message is None else max(0.0, now - self._last_message)
        if since is None or since >= METER_WINDOW_S:
            # Nothing heard lately: not behind on anything (whether that is deafness is the gap's to say).
            return IngestStats(subscribed=subscribed, since_last_message_s=since, lag_s=0.0, busy=0.0)
        busy = self._previous_busy
        elapsed = now - self._window_start
        if elapsed >= 1.0:  # the window so far, the silence since the last message counted as breathing room
            idle = self._idle + (since if since > IDLE_GAP_S else 0.0)
            busy = max(busy, 1.0 - min(1.0, idle / elapsed))
        lags = list(self._lags)
        lag = max(self._previous_lag, statistics.median(lags) if lags else 0.0)
        return IngestStats(subscribed=subscribed, since_last_message_s=since, lag_s=lag, busy=busy)
