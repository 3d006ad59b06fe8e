"""Secrets planted in every place the controller takes one - a DingTalk robot's signing secret and token, a
webhook token in a URL's query, the broker's password and the database's - appear in no answer of any GET route of
the API (walked from the app's own OpenAPI, so a new route is walked too), and in no log record (the suite's
guard, ``tests/support/secrets.py``, fails the test on either)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import write_inventory
from tests.cloud.api.serving import serving
from tests.support.peers import Mosquitto, postgres_database, wait_for
from tests.support.secrets import (
    BROKER_PASSWORD,
    DATABASE_PASSWORD,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    WATCHED,
    SecretWatch,
)

WEBHOOK_TOKEN = "tok3f9a0c1d2e"  # one of the suite's watched values
assert WEBHOOK_TOKEN in WATCHED

NOTIFICATIONS = f"""\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {{name: planted}}
spec:
  channels:
    - name: ops
      kind: dingtalk
      url: http://127.0.0.1:9/robot/send?access_token={DINGTALK_TOKEN}
      secret: {DINGTALK_SECRET}
    - name: tickets
      kind: webhook
      url: http://127.0.0.1:9/hooks?token={WEBHOOK_TOKEN}
  defaultChannels: [ops, tickets]
"""
IDS = {
    "site": "sh-pudong",
    "box": "sh-pudong-gpu-01",
    "alert": "an-alert",
    "silence": "a-silence",
    "cluster": "test-edge",
    "rollout_id": "r-20261201-abcdef",
    "restart_id": "0123456789ab",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_with_password(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database URL, with the planted password on PostgreSQL (trust auth here takes it as a real login
    would); SQLite has no password to plant."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edgefleet.db'}"
        return
    server = os.environ.get("EDGEFLEET_TEST_DATABASE_URL")
    if not server:
        pytest.skip("EDGEFLEET_TEST_DATABASE_URL is not set (CI sets it)")
    with postgres_database(server) as url:
        yield make_url(url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)


def test_no_get_route_answers_a_planted_secret(
    database_with_password: str,
    broker: Mosquitto,
    tmp_path: Path,
    secret_watch: SecretWatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Records below a logger's level are never made: INFO, so the controller's start and connection lines are seen.
    caplog.set_level(logging.INFO, logger="edgefleet")
    notifications = tmp_path / "notifications.yaml"
    notifications.write_text(NOTIFICATIONS)
    broker_url = broker.url.replace("mqtt://", f"mqtt://edgefleet:{BROKER_PASSWORD}@")
    settings = Settings.from_env(
        {},
        broker_url=broker_url,
        database_url=database_with_password,
        sites_dir=write_inventory(tmp_path / "sites"),
        notifications_file=notifications,
    )
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/livez").status_code == 200, what="the controller to start")
        paths = client.get("/openapi.json").json()["paths"]
        answers = {
            path: client.get(path.format(**IDS), params={"limit": 5})
            for path, methods in paths.items()
            if "get" in methods and path != "/api/v1/events"  # the live stream never ends
        }
        # With the broker gone, /healthz and /readyz name it (and what they say of it must hold no password).
        broker.stop()
        wait_for(lambda: client.get("/healthz").status_code == 503, what="/healthz to say the broker is gone")
        answers["/healthz"] = client.get("/healthz")
        answers["/readyz"] = client.get("/readyz")

    assert len(answers) > 20
    assert "not connected to the broker at mqtt://edgefleet:***@" in answers["/healthz"].text
    for path, answer in answers.items():
        for secret in (DINGTALK_SECRET, DINGTALK_TOKEN, WEBHOOK_TOKEN, BROKER_PASSWORD, DATABASE_PASSWORD):
            assert secret not in answer.text, f"{path} answered a planted secret"
    # The guard watched every answer above and every log record of the controller's start.
    assert secret_watch.leaks() == []
