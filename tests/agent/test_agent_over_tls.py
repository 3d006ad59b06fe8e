"""The real agent process on the secured broker (``edgefleet broker config``): over TLS (``mqtts://``) with the CA
and its box certificate from ``edgefleet pki``, logged in with the account ``edgefleet broker box add`` made.
Its heartbeats and "online" reach the controller's account; its password shows nowhere in its output. Without
its certificate the broker refuses it, and the agent says so instead of pretending to run."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgefleet import topics
from edgefleet.agent.cli import AgentSettings, UsageError, build_parser, resolve_settings
from edgefleet.agent.link import BrokerAddress, TlsFiles
from edgefleet.cloud.broker import pki
from edgefleet.cloud.broker.pki import write_atomically
from tests.agent.conftest import AgentProcess
from tests.support.peers import wait_for
from tests.support.secrets import secrets_in
from tests.support.secured_broker import Peer, SecuredBroker, controller, secured_broker

StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path) as made:
        yield made


@pytest.fixture
def listening(secured: SecuredBroker) -> Iterator[Peer]:
    ctl = controller(secured)
    ctl.subscribe(topics.HEARTBEAT_FILTER)
    ctl.subscribe(topics.STATUS_FILTER)
    yield ctl
    ctl.close()


def test_the_agent_reports_over_tls_with_its_own_account(
    secured: SecuredBroker, listening: Peer, start_agent: StartAgent, tmp_path: Path
) -> None:
    account = secured.add_box("box-tls")
    password_file = tmp_path / "box-tls.password"
    write_atomically(password_file, account.password.encode() + b"\n", mode=0o600)
    cert, key = secured.box_cert("box-tls")

    agent = start_agent(
        "box-tls",
        f"mqtts://127.0.0.1:{secured.port}",
        "--username=box-tls",
        f"--password-file={password_file}",
        f"--ca-file={secured.ca_file}",
        f"--cert-file={cert}",
        f"--key-file={key}",
    )

    wait_for(lambda: len(listening.received(topics.heartbeat_topic("box-tls"))) >= 2, what="heartbeats over TLS")
    wait_for(lambda: listening.received(topics.status_topic("box-tls")), what="the box's online status")
    agent.signal(signal.SIGTERM)
    assert agent.wait() == 0
    log = agent.log()
    assert f"broker=mqtts://box-tls:***@127.0.0.1:{secured.port}" in log
    assert secrets_in(log, [account.password]) == []
    assert "Traceback" not in log


def test_without_its_certificate_the_agent_is_refused(
    secured: SecuredBroker, listening: Peer, start_agent: StartAgent, tmp_path: Path
) -> None:
    account = secured.add_box("box-nocert")
    password_file = tmp_path / "box-nocert.password"
    write_atomically(password_file, account.password.encode() + b"\n", mode=0o600)

    agent = start_agent(
        "box-nocert",
        f"mqtts://box-nocert@127.0.0.1:{secured.port}",
        f"--password-file={password_file}",
        f"--ca-file={secured.ca_file}",
    )

    # The broker ends the TLS session that shows no certificate (TLS 1.3: right after the handshake); the agent
    # keeps trying, as for any broker that may come back, and never gets a session.
    agent.wait_log("Lost connection to broker")
    agent.kill()
    log = agent.log()
    assert "Connected box to broker" not in log
    assert listening.received(topics.status_topic("box-nocert")) == []
    assert secrets_in(log, [account.password]) == []


def test_a_tls_broker_url_parses_to_the_tls_port() -> None:
    assert BrokerAddress.parse("mqtts://broker.example").port == 8883
    assert BrokerAddress.parse("mqtts://box-1:pw@127.0.0.1:9883").tls is not None
    assert BrokerAddress.parse("mqtt://127.0.0.1").tls is None
    assert str(BrokerAddress.parse("mqtts://box-1:pw@127.0.0.1:9883")) == "mqtts://box-1:***@127.0.0.1:9883"


RUN = ["run", "--box", "box-1", "--site", "site-1"]


def _settings(argv: list[str], env: dict[str, str] | None = None) -> AgentSettings:
    return resolve_settings(build_parser().parse_args(RUN + argv), env or {})


@pytest.fixture
def pki_files(tmp_path: Path) -> Path:
    pki.init_ca(tmp_path, now=datetime.now(UTC))
    pki.issue(tmp_path, "box", "box-1", now=datetime.now(UTC))
    return tmp_path


def test_tls_files_come_from_options_or_the_environment(pki_files: Path) -> None:
    ca, cert, key = pki_files / "ca.crt", pki_files / "box-box-1.crt", pki_files / "box-box-1.key"
    by_option = _settings(["--broker", "mqtts://h:9", f"--ca-file={ca}", f"--cert-file={cert}", f"--key-file={key}"])
    by_env = _settings(
        ["--broker", "mqtts://h:9"],
        {"EDGEFLEET_MQTT_CA_FILE": str(ca), "EDGEFLEET_MQTT_CERT_FILE": str(cert), "EDGEFLEET_MQTT_KEY_FILE": str(key)},
    )
    assert by_option.broker.tls == by_env.broker.tls == TlsFiles(str(ca), str(cert), str(key))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["--broker", "mqtt://h:1883", "--ca-file={ca}"],
            "--ca-file is for TLS, but --broker='mqtt://h:1883' is plain",
        ),
        (
            ["--broker", "mqtts://h:1", "--cert-file={cert}"],
            "--key-file is missing: a client certificate needs its key",
        ),
        (["--broker", "mqtts://h:1", "--ca-file={dir}/nope.crt"], "--ca-file: '{dir}/nope.crt' is not a readable file"),
        (["--broker", "mqtts://h:1", "--ca-file={key}"], "--ca-file: the TLS files cannot be used"),
        (
            ["--broker", "mqtts://h:1", "--cert-file={ca}", "--key-file={key}"],
            "--cert-file: the TLS files cannot be used",
        ),
        (["--broker", "http://h:1"], "scheme must be mqtt:// or mqtts:// (TLS)"),
    ],
)
def test_bad_tls_options_are_one_clear_error(pki_files: Path, argv: list[str], words: str) -> None:
    names = {"ca": pki_files / "ca.crt", "cert": pki_files / "box-box-1.crt", "key": pki_files / "box-box-1.key"}
    fill = {**{k: str(v) for k, v in names.items()}, "dir": str(pki_files)}
    with pytest.raises(UsageError) as caught:
        _settings([a.format(**fill) for a in argv])
    assert words.format(**fill) in str(caught.value)
