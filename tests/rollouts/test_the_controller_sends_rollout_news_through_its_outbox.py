"""The controller (the composition root) hands its reconciler an announcer over the alert loop's outbox, with the
notification file in force, and the delivery worker sends from that same outbox: rollout news goes where alerts
go, sent by the one controller that holds the database."""

from __future__ import annotations

from pathlib import Path

from edgefleet.clock import FakeClock
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.settings import Settings
from tests.alerting.wiring.fleets import write_sites

NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {name: test}
spec:
  channels:
    - {name: releases, kind: webhook, url: "http://127.0.0.1:9/hooks/releases"}
  routes:
    - {rollouts: [aborted, rolled-back], channels: [releases]}
"""


def test_the_reconciler_announces_into_the_outbox_the_delivery_worker_sends_from(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites", {"alpha": 2})
    notifications = tmp_path / "notifications.yaml"
    notifications.write_text(NOTIFICATIONS)
    settings = Settings.from_env(
        {"EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}", "EDGEFLEET_SITES_DIR": str(sites)},
        notifications_file=notifications,
    )
    controller = Controller(settings, clock=FakeClock(1_800_000_000.0))
    try:
        announcer = controller.reconciler.announcer
        assert announcer is not None
        assert announcer.outbox is controller.alert_loop.outbox is controller.delivery.outbox
        assert announcer.config() is controller.alert_loop.config is controller.delivery.config
        assert announcer.config() is not None
    finally:
        controller.stop()
