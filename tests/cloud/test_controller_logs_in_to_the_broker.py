"""The controller logs in to a Mosquitto that refuses anonymous clients, with the login from the broker URL, a
password file or the environment; a refused login is one clear error line, no more attempts, and /healthz says
why - never showing the password (the suite-wide guard in tests/conftest.py checks every record and answer)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.clock import SystemClock
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.ingesting import Ingest
from edgefleet.cloud.settings import Settings
from tests.cli.entry import spawn
from tests.cloud.api.memory import write_inventory
from tests.cloud.builders import inventory
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, free_port, mosquitto, mosquitto_password_file, wait_for
from tests.support.secrets import (
    BROKER_PASSWORD,
    BROKER_USERNAME,
    WRONG_BROKER_PASSWORD,
    assert_no_secret,
)


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that takes only BROKER_USERNAME with BROKER_PASSWORD."""
    passwords = mosquitto_password_file(tmp_path, {BROKER_USERNAME: BROKER_PASSWORD})
    with mosquitto(tmp_path, password_file=passwords) as broker:
        yield broker


def _ingest(settings: Settings) -> Ingest:
    return Ingest(
        FleetState.for_inventory(inventory()), settings.broker_url, clock=SystemClock(), login=settings.broker_login
    )


def _logged_in(settings: Settings) -> None:
    ingest = _ingest(settings)
    ingest.start()
    try:
        assert ingest.wait_subscribed(10), f"not subscribed; refused: {ingest.refused}"
        assert ingest.refused is None
    finally:
        ingest.stop()


def test_logs_in_with_the_login_in_the_url(locked_broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    url = f"mqtt://{BROKER_USERNAME}:{BROKER_PASSWORD}@127.0.0.1:{locked_broker.port}"

    _logged_in(Settings.from_env({"EDGEFLEET_BROKER_URL": url}))

    (connected,) = [r for r in caplog.records if r.getMessage() == "Connected to broker"]
    assert connected.__dict__["broker"] == f"mqtt://{BROKER_USERNAME}:***@127.0.0.1:{locked_broker.port}"


def test_logs_in_with_a_password_file(locked_broker: Mosquitto, tmp_path: Path) -> None:
    secret = tmp_path / "broker-password"
    secret.write_text(BROKER_PASSWORD + "\n")  # as an editor saves it

    _logged_in(
        Settings.from_env(
            {"EDGEFLEET_BROKER_USERNAME": BROKER_USERNAME, "EDGEFLEET_BROKER_PASSWORD_FILE": str(secret)},
            broker_url=locked_broker.url,
        )
    )


def test_logs_in_with_the_login_in_the_environment(locked_broker: Mosquitto) -> None:
    _logged_in(
        Settings.from_env(
            {
                "EDGEFLEET_BROKER_URL": locked_broker.url,
                "EDGEFLEET_BROKER_USERNAME": BROKER_USERNAME,
                "EDGEFLEET_BROKER_PASSWORD": BROKER_PASSWORD,
            }
        )
    )


def test_a_refused_login_is_one_error_line_and_no_retry(
    locked_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings.from_env(
        {
            "EDGEFLEET_BROKER_URL": locked_broker.url,
            "EDGEFLEET_BROKER_USERNAME": BROKER_USERNAME,
            "EDGEFLEET_BROKER_PASSWORD": WRONG_BROKER_PASSWORD,
        }
    )
    ingest = Ingest(FleetState.for_inventory(inventory()), settings.broker_url, clock=SystemClock(),
                    login=settings.broker_login, reconnect_min_s=0.05, reconnect_max_s=0.05)  # fmt: skip
    ingest.start()
    try:
        wait_for(lambda: ingest.login_refused, what="the broker to refuse the login")
        # paho's network thread ends instead of retrying; with a 50 ms backoff a retry would show at once.
        thread = ingest._client._thread
        wait_for(lambda: thread is None or not thread.is_alive(), what="paho to stop reconnecting")
    finally:
        ingest.stop()

    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert refusals[0].levelno == logging.ERROR
    assert "login" in refusals[0].getMessage()
    assert ingest.refused is not None
    assert BROKER_USERNAME in ingest.refused
    assert not ingest.connected


def test_serve_with_a_wrong_password_says_why_in_healthz_and_log_without_the_password(
    locked_broker: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    password_file = tmp_path / "broker-password"
    password_file.write_text(WRONG_BROKER_PASSWORD)
    url = f"mqtt://{BROKER_USERNAME}@127.0.0.1:{locked_broker.port}"
    with spawn(
        "cloud", "serve", "--listen", f"127.0.0.1:{port}", "--broker", url,
        "--broker-password-file", str(password_file), "--sites", str(write_inventory(tmp_path / "sites")),
        "--database", f"sqlite:///{tmp_path / 'edgefleet.db'}",
    ) as process:  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

                def refused() -> dict[str, object] | None:
                    assert process.poll() is None, "the controller exited"
                    try:
                        body: dict[str, object] = client.get("/healthz").json()
                    except httpx.TransportError:
                        return None
                    return body if "refused" in str(body["problems"]) else None

                health = wait_for(refused, timeout=20, what="/healthz to tell the refused login")
                token = mint_at(f"sqlite:///{tmp_path / 'edgefleet.db'}")
                metrics = client.get("/metrics", headers=bearer(token)).text
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=20)
        except BaseException:
            process.kill()
            print(process.communicate()[0])
            raise

    assert health["broker_connected"] is False
    (problem,) = [p for p in health["problems"] if "broker" in p]  # type: ignore[attr-defined]
    assert problem.startswith(f"not connected to the broker at {url}: the broker refused the controller's login")
    assert "edgefleet_broker_connected 0.0" in metrics
    assert output.count("ERROR edgefleet.cloud.ingesting: Broker refused the controller's login") == 1, output
    assert_no_secret(output, where="cloud serve's log")
    assert_no_secret(metrics, where="/metrics")
