"""The agent process: every ``interval_s`` seconds it samples the box (host, GPUs, apps) and sends a heartbeat,
until SIGTERM/SIGINT, when it says "offline" (reason shutdown) and exits 0.

``cli run`` builds an ``Agent`` from the options and calls ``run()``; ``cli sample`` uses ``make_heartbeat`` alone.
The MQTT side is ``BoxLink`` on paho's own network thread (``loop_start()``: one connection, so paho's ``select``
is fine here); this module's thread only samples and schedules.

- Schedule: heartbeats are due at fixed points of monotonic time (start + k x interval), so the time spent sampling
  never adds up into drift; points missed while the box was suspended are skipped, not sent in a burst. Between
  them the agent looks at its apps' states every ``APP_CHECK_S`` (``AppSource.states``: no figures scraped) and
  sends a heartbeat at once when an app's version or state changed; the grid stays where it was.
- Broker unreachable: paho retries with backoff (1 s doubling to 60 s) from the first attempt on; heartbeats made
  meanwhile wait in the reporter's bounded buffer (newest kept) and go out after the next "online". One log line
  says where the agent tried and what to check, repeated every ``UNREACHABLE_REMINDER_S`` while it lasts.
- Bad credentials (the broker refuses the login): paho stops, and so does the agent, with exit status
  ``EXIT_CREDENTIALS_REFUSED`` and a line that says what to fix.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec

from edgefleet import messages
from edgefleet.agent.link import BoxLink
from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.sources import AppSource, GpuProbe, HostProbe
from edgefleet.clock import Clock, SystemClock
from edgefleet.messages import AppReport, GpuReport, Heartbeat, HostSample

log = logging.getLogger(__name__)
_T = TypeVar("_T")

EXIT_OK: Final = 0
# Distinct from a crash (1) and a usage error (2), so a unit file can say RestartPreventExitStatus=3: restarting
# with the same refused credentials would only fill the broker's log.
EXIT_CREDENTIALS_REFUSED: Final = 3
# How long a stop waits for the broker to acknowledge "offline" (QoS 1): a broker on the same LAN answers in
# milliseconds; longer would hold up a box's shutdown for a broker that is gone anyway (the will covers that case).
SHUTDOWN_PUBLISH_WAIT_S: Final = 2.0
# While the broker stays unreachable the log line is repeated this often, so it is in the last page of a journal.
UNREACHABLE_REMINDER_S: Final = 600.0
# Sampling slower than this share of the interval is logged: it is the agent's own delay, not the box's.
SLOW_SAMPLE_SHARE: Final = 0.5


# Between heartbeats the agent looks at its apps' states this often (no figures: one local read), and sends a
# heartbeat at once when one changed: a rollout's gates then hear of a new version within seconds, not an interval.
# A crash-looping app sends at most one extra heartbeat per look.
APP_CHECK_S: Final = 2.0
# What an early heartbeat is sent for: each app's name, version and state, and the source's error.
AppStates = tuple[str | None, tuple[tuple[str, str, str], ...]]


def app_states(report: AppReport) -> AppStates:
    """What of an apps report makes an early heartbeat worth sending when it changes (figures move all the time)."""
    return report.error, tuple((app.name, app.version, app.state) for app in report.apps)


def next_beat_at(scheduled: float, now: float, interval_s: float) -> float:
    """When the heartbeat after the one due at ``scheduled`` is due, seen at monotonic time ``now``: the next point
    on the grid ``scheduled + k x interval_s`` (k >= 1) that is not already past."""
    due = scheduled + interval_s
    if due < now:
        due += math.ceil((now - due) / interval_s) * interval_s
    return due


def _sample(what: str, read: Callable[[], _T], fallback: Callable[[str], _T]) -> _T:
    # The probes promise not to raise; this guard keeps a probe's bug from costing the heartbeat.
    try:
        return read()
    except Exception as exc:
        log.exception("Failed to sample box", extra={"source": what})
        return fallback(f"{what} probe failed: {exc}"[:256])


def make_heartbeat(reporter: BoxReporter, host: HostProbe, gpu: GpuProbe, apps: AppSource) -> Heartbeat:
    """Sample every source and let the reporter number the heartbeat; it always fits ``MAX_MESSAGE_BYTES``."""
    return _sampled_heartbeat(reporter, host, gpu, apps)[0]


def _sampled_heartbeat(
    reporter: BoxReporter, host: HostProbe, gpu: GpuProbe, apps: AppSource
) -> tuple[Heartbeat, AppReport]:
    """The heartbeat, and the apps as read (before ``fit_heartbeat`` may have left them out)."""
    host_sample = _sample("host", host.sample, lambda _why: HostSample())
    gpu_report = _sample("GPU", gpu.sample, lambda why: GpuReport(available=False, reason=why))
    app_report = _sample("apps", apps.read, _apps_failed)
    heartbeat = reporter.heartbeat(host_sample, gpu_report, app_report)
    return fit_heartbeat(heartbeat), app_report


def _apps_failed(why: str) -> AppReport:
    return AppReport(source="none", error=why)


def fit_heartbeat(heartbeat: Heartbeat) -> Heartbeat:
    """The heartbeat, with its unbounded parts (apps, then GPUs) cut when it is larger than the controller takes."""
    if len(messages.encode(heartbeat)) <= messages.MAX_MESSAGE_BYTES:
        return heartbeat
    log.warning("Cut heartbeat that was too large", extra={"seq": heartbeat.seq, "limit": messages.MAX_MESSAGE_BYTES})
    heartbeat = msgspec.structs.replace(
        heartbeat,
        apps=AppReport(
            source=heartbeat.apps.source,
            error=f"the apps list made the heartbeat larger than {messages.MAX_MESSAGE_BYTES} bytes; left out",
        ),
    )
    if len(messages.encode(heartbeat)) <= messages.MAX_MESSAGE_BYTES:
        return heartbeat
    return msgspec.structs.replace(
        heartbeat,
        gpu=GpuReport(
            available=heartbeat.gpu.available,
            reason=f"the GPU list made the heartbeat larger than {messages.MAX_MESSAGE_BYTES} bytes; left out",
            driver_version=heartbeat.gpu.driver_version,
        ),
    )


class Agent:
    """One box's agent: samples, schedules and sends heartbeats over ``link`` until ``request_stop()``."""

    def __init__(
        self,
        link: BoxLink,
        host: HostProbe,
        gpu: GpuProbe,
        apps: AppSource,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.link = link
        self.reporter = link.reporter
        self.host = host
        self.gpu = gpu
        self.apps = apps
        self.clock = clock or SystemClock()
        self._stop = threading.Event()
        self._unreachable_logged_at: float | None = None
        self._slow_logged = False

    def request_stop(self) -> None:
        """Ask ``run()`` to stop after saying "offline"; safe to call from a signal handler or another thread."""
        self._stop.set()

    def run(self) -> int:
        """Connect (in the background), then send heartbeats on schedule until stopped; returns the exit status."""
        client = self.link.client
        client.on_connect_fail = self._on_connect_fail
        self.link.connect_async()
        client.loop_start()
        try:
            return self._beat_until_stopped()
        finally:
            client.loop_stop()
            close = getattr(self.gpu, "close", None)
            if callable(close):
                close()

    def _beat_until_stopped(self) -> int:
        interval = self.reporter.interval_s
        scheduled = self.clock.monotonic()
        while not self._stop.is_set():
            if self.link.credentials_refused:
                log.error(
                    "Broker refused the box's login; stopped",
                    extra={
                        "box": self.reporter.box,
                        "broker": str(self.link.broker),
                        "reason": self.link.refused,
                        "check": "the login in --broker (mqtt://USER:PASSWORD@HOST:PORT) or --username with "
                        "--password-file / --password (EDGEFLEET_MQTT_*), and the broker's password file and ACL",
                    },
                )
                return EXIT_CREDENTIALS_REFUSED
            if self.link.connected:
                self._unreachable_logged_at = None
            started = self.clock.monotonic()
            heartbeat, apps_read = _sampled_heartbeat(self.reporter, self.host, self.gpu, self.apps)
            self.link.send(heartbeat)
            now = self.clock.monotonic()
            self._check_slow(now - started, interval)
            if now >= scheduled:  # a heartbeat of the grid, not an early one: the next point of the grid
                scheduled = next_beat_at(scheduled, now, interval)
            self._wait_for_beat_or_change(scheduled, app_states(apps_read))
        return self._say_offline()

    def _wait_for_beat_or_change(self, scheduled: float, sent: AppStates) -> None:
        """Until the heartbeat due at ``scheduled`` (monotonic), stopped, or the apps' states differ from ``sent``
        (looked at every ``APP_CHECK_S``, figures not read): then the next heartbeat goes out at once."""
        while True:
            now = self.clock.monotonic()
            if now >= scheduled or self._stop.wait(min(APP_CHECK_S, scheduled - now)):
                return
            if self.clock.monotonic() >= scheduled:
                return
            glance = _sample("apps", self.apps.states, _apps_failed)
            if app_states(glance) != sent:
                return

    def _say_offline(self) -> int:
        info = self.link.stop()
        if info is not None:
            try:
                info.wait_for_publish(SHUTDOWN_PUBLISH_WAIT_S)
            except (RuntimeError, ValueError) as exc:
                log.debug("Failed to wait for offline status", extra={"error": str(exc)})
            if not info.is_published():
                log.warning(
                    "Broker did not confirm box's offline status before exit",
                    extra={"box": self.reporter.box, "waited_s": SHUTDOWN_PUBLISH_WAIT_S},
                )
        lost = len(self.reporter.buffer)
        self.link.disconnect()
        log.info(
            "Stopped box agent",
            extra={"box": self.reporter.box, "seq": self.reporter.seq, "unsent_heartbeats": lost},
        )
        return EXIT_OK

    def _check_slow(self, took_s: float, interval_s: float) -> None:
        if took_s > interval_s * SLOW_SAMPLE_SHARE and not self._slow_logged:
            self._slow_logged = True
            log.warning(
                "Sampled box slowly; heartbeats may come late",
                extra={"box": self.reporter.box, "took_s": round(took_s, 3), "interval_s": interval_s},
            )

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # Called on paho's thread whenever a connection attempt fails before the broker answered.
        now = self.clock.monotonic()
        if self._unreachable_logged_at is None or now - self._unreachable_logged_at >= UNREACHABLE_REMINDER_S:
            self._unreachable_logged_at = now
            log.warning(
                "Could not reach broker; retrying with backoff, heartbeats are kept meanwhile",
                extra={
                    "box": self.reporter.box,
                    "broker": str(self.link.broker),
                    "check": "that the broker runs there and --broker / EDGEFLEET_BROKER_URL names it, and that "
                    "this box's network lets it through",
                    "buffered": len(self.reporter.buffer),
                },
            )
