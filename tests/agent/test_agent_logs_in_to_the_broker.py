"""The real agent process logs in to a Mosquitto that refuses anonymous clients: with the login in the broker URL
(percent-encoded) or with ``--username`` and ``--password-file``. A wrong password is one error line and the agent
stops (exit 3) instead of knocking again; the password shows nowhere in its output."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from edgefleet.agent.running import EXIT_CREDENTIALS_REFUSED
from tests.agent.conftest import AgentProcess, Listener
from tests.agent.test_agent_over_mqtt import status_where
from tests.support.peers import Mosquitto, mosquitto, mosquitto_password_file, wait_for
from tests.support.secrets import BROKER_PASSWORD, WRONG_BROKER_PASSWORD, assert_no_secret

Listen = Callable[..., Listener]
StartAgent = Callable[..., AgentProcess]

BOX = "box-login"
# A password with every character a URL must have percent-encoded, for a second box.
ODD_BOX, ODD_PASSWORD = "box-odd", "od/d?p#w@rd:1%"
LISTENER = ("listener", "listener-pw-4b1d")


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that takes only these logins."""
    passwords = mosquitto_password_file(
        tmp_path, {BOX: BROKER_PASSWORD, ODD_BOX: ODD_PASSWORD, LISTENER[0]: LISTENER[1]}
    )
    with mosquitto(tmp_path, password_file=passwords) as broker:
        yield broker


def _beats_and_stops(agent: AgentProcess, listener: Listener) -> str:
    wait_for(status_where(listener, agent.box, state="online"), what="online")
    wait_for(lambda: len(listener.heartbeats(agent.box)) >= 2, what="heartbeats")
    agent.signal(signal.SIGTERM)
    assert agent.wait() == 0
    log = agent.log()
    assert_no_secret(log, where="the agent's log")
    assert "Traceback" not in log
    return log


@pytest.mark.parametrize(("box", "password"), [(BOX, BROKER_PASSWORD), (ODD_BOX, ODD_PASSWORD)])
def test_logs_in_with_the_login_in_the_url(
    locked_broker: Mosquitto, listen: Listen, start_agent: StartAgent, box: str, password: str
) -> None:
    listener = listen(locked_broker.port, login=LISTENER)
    port = locked_broker.port
    agent = start_agent(box, f"mqtt://{box}:{quote(password, safe='')}@127.0.0.1:{port}")

    log = _beats_and_stops(agent, listener)

    assert f"Connected box to broker box={box} broker=mqtt://{box}:***@127.0.0.1:{port}" in log
    assert password not in log


def test_logs_in_with_a_username_and_a_password_file(
    locked_broker: Mosquitto, listen: Listen, start_agent: StartAgent, tmp_path: Path
) -> None:
    listener = listen(locked_broker.port, login=LISTENER)
    password_file = tmp_path / "broker-password"
    password_file.write_text(BROKER_PASSWORD + "\n")
    agent = start_agent(BOX, locked_broker.url, "--username", BOX, "--password-file", str(password_file))

    _beats_and_stops(agent, listener)


def test_a_wrong_password_is_one_error_line_and_the_agent_stops(
    locked_broker: Mosquitto, start_agent: StartAgent, tmp_path: Path
) -> None:
    password_file = tmp_path / "broker-password"
    password_file.write_text(WRONG_BROKER_PASSWORD)
    agent = start_agent(BOX, f"mqtt://{BOX}@127.0.0.1:{locked_broker.port}", "--password-file", str(password_file))

    # It stops rather than retrying: knocking again with the same password only fills both logs.
    assert agent.wait() == EXIT_CREDENTIALS_REFUSED
    log = agent.log()
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert len(refusals) == 1, log
    assert f"ERROR edgefleet.agent.running: Broker refused the box's login; stopped box={BOX}" in refusals[0]
    assert f"broker=mqtt://{BOX}:***@127.0.0.1:{locked_broker.port}" in refusals[0]
    assert "--password-file" in refusals[0]  # what to check
    assert "Lost connection" not in log  # it never had one
    assert_no_secret(log, where="the agent's log")
    assert "Traceback" not in log
