"""The simulator logs its boxes in to a Mosquitto that refuses anonymous clients, with the login in its broker URL
(every simulated box gives the same one; real boxes each have their own). The broker is shown masked in its log
and its status; a wrong password is one error line for the whole fleet, and no box knocks again."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.credentials import forget_hidden, mask_secrets
from simulator.running import SimulatorError, SimulatorOptions, start_in_background
from tests.simulator.conftest import ALL_BOXES, INTERVAL_S, KEEPALIVE_S
from tests.support.peers import Mosquitto, mosquitto, mosquitto_password_file, wait_for
from tests.support.secrets import BROKER_PASSWORD, WRONG_BROKER_PASSWORD, assert_no_secret

LOGIN = "sim-boxes"


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwords = mosquitto_password_file(tmp_path, {LOGIN: BROKER_PASSWORD})
    with mosquitto(tmp_path, password_file=passwords) as broker:
        yield broker


def _options(broker: Mosquitto, sites_dir: Path, password: str) -> SimulatorOptions:
    return SimulatorOptions(
        sites_dir=sites_dir,
        broker_url=f"mqtt://{LOGIN}:{password}@127.0.0.1:{broker.port}",
        listen="127.0.0.1:0",
        interval_override_s=INTERVAL_S,
        keepalive_s=KEEPALIVE_S,
        seed=7,
    )


def test_every_box_logs_in_with_the_login_in_the_url(
    locked_broker: Mosquitto, sites_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    shown = f"mqtt://{LOGIN}:***@127.0.0.1:{locked_broker.port}"
    options = _options(locked_broker, sites_dir, BROKER_PASSWORD)
    assert_no_secret(repr(options), where="the options' repr")
    running = start_in_background(options)
    try:

        def all_connected() -> dict[str, object] | None:
            status: dict[str, object] = httpx.get(f"{running.url}/status").json()
            boxes = status["boxes"]
            return status if boxes == {**boxes, "connected": len(ALL_BOXES)} else None  # type: ignore[dict-item]

        status = wait_for(all_connected, what="every simulated box connected to the locked broker")
    finally:
        running.stop()

    assert status["broker"] == shown
    (started,) = [r for r in caplog.records if r.getMessage() == "Started simulator"]
    assert started.__dict__["broker"] == shown


def test_a_wrong_password_is_one_error_line_and_no_box_knocks_again(
    locked_broker: Mosquitto, sites_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    running = start_in_background(_options(locked_broker, sites_dir, WRONG_BROKER_PASSWORD))
    try:
        simulation = running.simulation
        assert simulation is not None
        connections = simulation.driver.connections

        wait_for(
            lambda: all(c.refused_for_good and c.sock is None for c in connections),
            what="the broker to refuse every box",
        )
        assert all(c.retry is None for c in connections)  # none is scheduled to try again
        assert simulation.driver.counters.connects == 0
    finally:
        running.stop()

    refusals = [r for r in caplog.records if r.levelno >= logging.WARNING and "refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert refusals[0].levelno == logging.ERROR
    assert refusals[0].__dict__["broker"] == f"mqtt://{LOGIN}:***@127.0.0.1:{locked_broker.port}"


def test_the_password_is_registered_with_the_log_mask(sites_dir: Path, broker: Mosquitto) -> None:
    # The simulator registers it as it starts; an anonymous broker still lets the boxes in.
    forget_hidden()
    try:
        start_in_background(_options(broker, sites_dir, BROKER_PASSWORD)).stop()
        assert mask_secrets(f"shows {BROKER_PASSWORD}") == "shows ***"
    finally:
        forget_hidden()


def test_a_bad_broker_url_is_refused_masked() -> None:
    options = SimulatorOptions(broker_url=f"mqtt://{LOGIN}:{BROKER_PASSWORD}@broker:port")
    with pytest.raises(SimulatorError) as caught:
        options.check()
    assert f"mqtt://{LOGIN}:***@broker:port" in caught.value.message
    assert_no_secret(str(caught.value), where="the error")
