"""On a real Mosquitto run from the configuration ``edgefleet broker config`` writes, with box accounts made at
run time through the dynamic-security plugin (``edgefleet.cloud.broker.accounts``): a box publishes and reads
only its own topics, cannot take another box's client id, anonymous clients and clients without a certificate
of our CA are refused, a revoked box is cut off at once and stays out, and a box added while the broker runs
logs in without a restart.

"Nothing arrived" is never judged by waiting: after the forbidden message the same client sends an allowed one
on the same subscription, and MQTT delivers one client's messages in order, so once the allowed one is in, the
forbidden one would have been in before it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgefleet import topics
from edgefleet.cloud.broker import grants, pki
from edgefleet.cloud.broker.accounts import BoxAccount, BrokerAccountError, BrokerAccounts
from edgefleet.errors import UnreachableError
from tests.support.peers import wait_for
from tests.support.secured_broker import Peer, SecuredBroker, box, connect, controller, secured_broker

NOT_AUTHORIZED = "Not authorized"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path) as made:
        yield made


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def _listening_controller(secured: SecuredBroker, peers: list[Peer]) -> Peer:
    ctl = controller(secured)
    peers.append(ctl)
    assert ctl.connected, ctl.refusal
    # The controller's own subscriptions: its replicas' shared group, and the plain filter.
    assert ctl.subscribe(topics.shared(topics.HEARTBEAT_FILTER)) == ["Granted QoS 1"]
    assert ctl.subscribe(topics.STATUS_FILTER) == ["Granted QoS 1"]
    return ctl


def _box(secured: SecuredBroker, peers: list[Peer], account: BoxAccount, **kwargs: str) -> Peer:
    peer = box(secured, account, **kwargs)
    peers.append(peer)
    return peer


def test_a_box_cannot_publish_as_another(secured: SecuredBroker, peers: list[Peer]) -> None:
    a = secured.add_box("box-a")
    secured.add_box("box-b")
    ctl = _listening_controller(secured, peers)
    box_a = _box(secured, peers, a)
    assert box_a.connected, box_a.refusal

    assert box_a.publish(topics.heartbeat_topic("box-b"), b"forged heartbeat") == NOT_AUTHORIZED
    assert box_a.publish(topics.status_topic("box-b"), b"forged status", retain=True) == NOT_AUTHORIZED
    assert box_a.publish(topics.heartbeat_topic("box-a"), b"own heartbeat") == "Success"
    assert box_a.publish(topics.status_topic("box-a"), b"own status", retain=True) == "Success"

    wait_for(lambda: ctl.received(topics.heartbeat_topic("box-a")), what="box-a's own heartbeat")
    wait_for(lambda: ctl.received(topics.status_topic("box-a")), what="box-a's own status")
    assert ctl.received(topics.heartbeat_topic("box-b")) == []
    assert ctl.received(topics.status_topic("box-b")) == []
    # Nor was the forged status kept as box-b's retained one for the next subscriber.
    late = controller(secured)
    peers.append(late)
    # Retained messages come with the SUBACK of each subscription, in order: box-b's first.
    late.subscribe(topics.status_topic("box-b"))
    late.subscribe(topics.status_topic("box-a"))
    wait_for(lambda: late.received(topics.status_topic("box-a")), what="box-a's retained status")
    assert late.received(topics.status_topic("box-b")) == []


def test_a_box_cannot_read_another_boxs_commands(secured: SecuredBroker, peers: list[Peer]) -> None:
    a, b = secured.add_box("box-a"), secured.add_box("box-b")
    ctl = _listening_controller(secured, peers)
    box_a, box_b = _box(secured, peers, a), _box(secured, peers, b)

    assert box_a.subscribe(topics.command_topic("box-b")) == [NOT_AUTHORIZED]
    assert box_a.subscribe(f"{topics.PREFIX}/+/{topics.COMMANDS_CHANNEL}") == [NOT_AUTHORIZED]
    assert box_a.subscribe("#") == [NOT_AUTHORIZED]
    assert box_a.subscribe(topics.HEARTBEAT_FILTER) == [NOT_AUTHORIZED]
    assert box_a.subscribe(topics.command_topic("box-a")) == ["Granted QoS 1"]
    assert box_b.subscribe(topics.command_topic("box-b")) == ["Granted QoS 1"]

    assert ctl.publish(topics.command_topic("box-b"), b"for b") == "Success"
    assert ctl.publish(topics.command_topic("box-a"), b"for a") == "Success"

    wait_for(lambda: box_a.received(topics.command_topic("box-a")), what="box-a's own command")
    wait_for(lambda: box_b.received(topics.command_topic("box-b")), what="box-b's command, at box-b")
    assert [m.topic for m in box_a.messages] == [topics.command_topic("box-a")]
    # Nor may a box send commands, to itself or others.
    assert box_a.publish(topics.command_topic("box-b"), b"from a") == NOT_AUTHORIZED


def test_a_box_cannot_take_another_boxs_client_id(secured: SecuredBroker, peers: list[Peer]) -> None:
    a, b = secured.add_box("box-a"), secured.add_box("box-b")
    ctl = _listening_controller(secured, peers)
    box_b = _box(secured, peers, b)
    assert box_b.connected, box_b.refusal

    impostor = _box(secured, peers, a, client_id="box-b")

    assert impostor.connected is False
    assert impostor.refusal == NOT_AUTHORIZED
    # box-b was not knocked off: it is still connected, and what it sends still arrives.
    assert box_b.publish(topics.heartbeat_topic("box-b"), b"still here") == "Success"
    wait_for(lambda: ctl.received(topics.heartbeat_topic("box-b")), what="box-b's heartbeat after the attempt")
    assert box_b.disconnects == []


def test_anonymous_clients_and_wrong_passwords_are_refused(secured: SecuredBroker, peers: list[Peer]) -> None:
    a = secured.add_box("box-a")
    cert = secured.box_cert("box-a")

    anonymous = connect(
        secured.port, ca_file=secured.ca_file, client_id="box-a", username=None, password=None, cert=cert
    )
    wrong = connect(
        secured.port,
        ca_file=secured.ca_file,
        client_id="box-a",
        username="box-a",
        password="not-" + a.password,
        cert=cert,
    )
    unknown = connect(
        secured.port, ca_file=secured.ca_file, client_id="box-z", username="box-z", password=a.password, cert=cert
    )
    peers.extend([anonymous, wrong, unknown])

    for peer in (anonymous, wrong, unknown):
        assert peer.connected is False
        assert peer.refusal == NOT_AUTHORIZED


def test_clients_without_a_certificate_of_our_ca_are_refused(
    secured: SecuredBroker, peers: list[Peer], tmp_path: Path
) -> None:
    a = secured.add_box("box-a")
    # A CA of someone else's, and a box certificate it signed.
    other = tmp_path / "other-pki"
    pki.init_ca(other, now=datetime.now(UTC))
    pki.issue(other, "box", "box-a", now=datetime.now(UTC))
    login: dict[str, Any] = {"client_id": "box-a", "username": "box-a", "password": a.password}

    foreign_cert = connect(
        secured.port,
        ca_file=secured.ca_file,
        cert=(pki.cert_path(other, "box", "box-a"), pki.key_path(other, "box", "box-a")),
        **login,
    )
    no_cert = connect(secured.port, ca_file=secured.ca_file, cert=None, **login)
    # And a client that trusts another CA does not accept our broker (the broker's certificate chain is checked).
    foreign_trust = connect(secured.port, ca_file=other / pki.CA_CERT, cert=secured.box_cert("box-a"), **login)
    peers.extend([foreign_cert, no_cert, foreign_trust])

    for peer in (foreign_cert, no_cert, foreign_trust):
        assert peer.connected is False, "connected without a certificate chain of our CA"
    # The login was right all along: with our CA's certificate, the same box gets in.
    good = _box(secured, peers, a)
    assert good.connected, good.refusal


def test_a_revoked_box_is_cut_off_at_once_and_stays_out(secured: SecuredBroker, peers: list[Peer]) -> None:
    a, b = secured.add_box("box-a"), secured.add_box("box-b")
    ctl = _listening_controller(secured, peers)
    box_a, box_b = _box(secured, peers, a), _box(secured, peers, b)
    assert box_a.connected
    assert box_b.connected

    with secured.accounts() as accounts:
        accounts.revoke_box("box-a")
        assert [entry.box for entry in accounts.list_boxes()] == ["box-b"]
        with pytest.raises(BrokerAccountError, match="box-a has no broker account"):
            accounts.revoke_box("box-a")

    wait_for(lambda: box_a.disconnects, what="box-a disconnected by the broker")
    assert box_a.disconnects == ["Administrative action"]
    again = _box(secured, peers, a)
    assert again.connected is False
    assert again.refusal == NOT_AUTHORIZED
    # The other box was left alone.
    assert box_b.disconnects == []
    assert box_b.publish(topics.heartbeat_topic("box-b"), b"b") == "Success"
    wait_for(lambda: ctl.received(topics.heartbeat_topic("box-b")), what="box-b's heartbeat after the revocation")


def test_a_box_added_while_the_broker_runs_logs_in_at_once(secured: SecuredBroker, peers: list[Peer]) -> None:
    ctl = _listening_controller(secured, peers)
    broker_process = secured.broker.process.pid

    c = secured.add_box("box-c")
    box_c = _box(secured, peers, c)

    assert box_c.connected, box_c.refusal
    assert box_c.publish(topics.heartbeat_topic("box-c"), b"hello") == "Success"
    wait_for(lambda: ctl.received(topics.heartbeat_topic("box-c")), what="the new box's heartbeat")
    assert secured.broker.process.pid == broker_process
    assert secured.broker.process.poll() is None
    with secured.accounts() as accounts, pytest.raises(BrokerAccountError, match="already has a broker account"):
        accounts.add_box("box-c")
    # The refused second add changed nothing: the box is still connected and heard, with its first password.
    assert box_c.disconnects == []
    assert box_c.publish(topics.heartbeat_topic("box-c"), b"again") == "Success"
    wait_for(lambda: len(ctl.received(topics.heartbeat_topic("box-c"))) == 2, what="the box's second heartbeat")
    assert secured.broker.process.poll() is None


def test_only_the_admin_account_changes_accounts(secured: SecuredBroker) -> None:
    as_controller = dataclasses.replace(secured.settings, admin_username=grants.CONTROLLER_USERNAME)
    with pytest.raises(UnreachableError, match="subscribing to the plugin's answers was refused"):
        BrokerAccounts.connect(as_controller, password=secured.controller_password())
    with pytest.raises(UnreachableError, match="the admin login failed: Not authorized"):
        BrokerAccounts.connect(secured.settings, password="not-the-admin-password")
