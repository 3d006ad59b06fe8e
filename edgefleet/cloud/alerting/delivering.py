"""The delivery worker: sends what the outbox holds, in a thread of its own, built and started by the controller.

The alert loop (``looping.AlertLoop``) puts planned messages in the outbox and calls ``wake``; the worker then
sends what is due (``outbox.Outbox.deliver_due``), and looks again every ``DELIVERY_POLL_S`` for retries. A thread
of its own, so that a receiver that takes its 5 s to time out never holds up evaluation. Without a notification
file the worker does nothing: nothing is ever planned.

It also trims the outbox (``Outbox.prune``) every ``PRUNE_INTERVAL_S``, by its clock's monotonic time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Final

import httpx

from edgefleet.clock import Clock
from edgefleet.cloud.alerting.config import NotificationConfig
from edgefleet.cloud.alerting.delivery import Sender, build_senders, http_client
from edgefleet.cloud.alerting.looping import FailureLog
from edgefleet.cloud.alerting.outbox import DeliveryReport, Outbox

log = logging.getLogger(__name__)

# The worker looks for retries due this often when no pass wakes it.
DELIVERY_POLL_S: Final = 1.0
# Delivered messages are kept a day and failed ones a week (outbox.py); trimming them hourly is plenty.
PRUNE_INTERVAL_S: Final = 3600.0
# How long stop() waits for a delivery in flight (a receiver's 5 s timeout, and a margin).
DELIVERY_STOP_TIMEOUT_S: Final = 10.0


class DeliveryWorker:
    """Delivers ``outbox``'s due messages to the channels of ``config``. ``senders`` replaces the real HTTP
    senders (tests); ``start`` builds them and the thread, ``stop`` ends both."""

    def __init__(
        self,
        outbox: Outbox,
        config: NotificationConfig | None,
        *,
        clock: Clock,
        senders: Mapping[str, Sender] | None = None,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.clock = clock
        self._senders: Mapping[str, Sender] = senders or {}
        self._client: httpx.Client | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_prune = clock.monotonic()
        self._failures = FailureLog(log)

    def start(self) -> None:
        if self.config is None or self._worker is not None:
            return
        if not self._senders:
            self._client = http_client()
            self._senders = dict(build_senders(self._client, clock=self.clock).items())
        self._stopping.clear()
        self._worker = threading.Thread(target=self._deliver_forever, name="edgefleet-alert-delivery", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker, waiting for a delivery in flight; what waits in the outbox is delivered after the next
        start. Safe to call twice."""
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(DELIVERY_STOP_TIMEOUT_S)
            self._worker = None
        if self._client is not None:
            self._client.close()
            self._client = None
            self._senders = {}

    def wake(self) -> None:
        """Messages were planned: deliver now rather than at the next poll."""
        self._wake.set()

    def _deliver_forever(self) -> None:
        while True:
            self._wake.wait(DELIVERY_POLL_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.deliver()

    def deliver(self) -> DeliveryReport | None:
        """Send what is due in the outbox now (the worker's step). Never raises."""
        if self.config is None:
            return None
        try:
            report = self.outbox.deliver_due(self._senders, self.config.targets, now=self.clock.now())
            if self.clock.monotonic() - self._last_prune >= PRUNE_INTERVAL_S:
                self._last_prune = self.clock.monotonic()
                self.outbox.prune(now=self.clock.now())
        except Exception as exc:  # the database is away: the messages wait in the outbox
            self._failures.failed("deliver", "Failed to read the outbox; trying again", exc)
            return None
        self._failures.recovered("deliver", "Read the outbox again after failures")
        return report
