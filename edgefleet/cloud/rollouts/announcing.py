"""Rollout notifications into the alert outbox: the shell over ``notifying.plan_rollout_notifications``.

The reconciler (``reconciling.Reconciler``) calls ``RolloutAnnouncer.announce`` with a tick's ``Notify`` actions
before it writes the rollout's new status; the announcer plans the messages with the routes of the notification
file in force and accepts them into the alert outbox (``Outbox.accept``) in one transaction, then wakes the
delivery worker, which sends them like alert messages (retries, Retry-After, DingTalk's rate, kept until
delivered or given up). A failure to accept raises (``StoreError``): the reconciler then writes no status, the
next tick decides the same events again, and the same message ids keep each message once. Built by the
controller (``edgefleet.cloud.controller``), which runs the reconciler only while it leads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from edgefleet.cloud.alerting.config import NotificationConfig
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.rollouts.deciding import Notify
from edgefleet.cloud.rollouts.notifying import RolloutAbout, plan_rollout_notifications, unrouted_events
from edgefleet.cloud.rollouts.store import StoredRollout
from edgefleet.inventory import Inventory

log = logging.getLogger(__name__)


class RolloutAnnouncer:
    """Puts rollout notifications in ``outbox`` for the channels of ``config()`` (None: no notification file,
    nothing is sent); ``on_accepted`` wakes the delivery worker."""

    def __init__(
        self,
        outbox: Outbox,
        config: Callable[[], NotificationConfig | None],
        *,
        on_accepted: Callable[[], None] = lambda: None,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self._on_accepted = on_accepted

    def announce(self, rollout: StoredRollout, notes: Sequence[Notify], inventory: Inventory, *, now: float) -> int:
        """Accept the messages for one rollout's tick; how many. Raises ``StoreError`` when the database is away."""
        config = self.config()
        if config is None or not notes:
            return 0
        regions = {s: inventory.sites[s].region for n in notes for s in n.sites if s in inventory.sites}
        about = RolloutAbout(rollout.id, rollout.release_name, rollout.app, rollout.updated_at)
        messages = plan_rollout_notifications(about, notes, config.routes, regions=regions, now=now)
        unrouted = unrouted_events(notes, config.routes, regions=regions)
        if unrouted:
            log.info(
                "Sent a rollout's events nowhere: no route takes them and no default channel is a DingTalk robot "
                "or webhook",
                extra={"rollout": rollout.id, "events": unrouted, "notification_file": config.source},
            )
        if messages:
            self.outbox.accept(messages)
            self._on_accepted()
        return len(messages)
