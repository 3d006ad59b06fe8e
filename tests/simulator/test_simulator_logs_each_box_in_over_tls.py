"""On the secured broker (a real Mosquitto run from what ``edgefleet broker config`` writes: TLS, client
certificates of our CA, no anonymous clients, per-box accounts in the dynamic-security plugin), the simulator
connects over mqtts:// and logs each box in with its own account from a box logins file; the controller's account
hears their heartbeats. A box whose password is wrong is refused, and the others are not held back by it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from edgefleet import topics
from edgefleet.cloud.broker import pki
from edgefleet.messages import decode_heartbeat
from simulator.running import SimulatorError, SimulatorOptions, start_in_background
from tests.simulator.conftest import ALL_BOXES, INTERVAL_S, KEEPALIVE_S
from tests.simulator.fleets import write_inventory
from tests.support.peers import wait_for
from tests.support.secured_broker import Peer, SecuredBroker, controller, secured_broker

SITE = "site-01"
BOXES = [b for b in ALL_BOXES if b.startswith(SITE)]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path) as made:
        yield made


@pytest.fixture
def listener(secured: SecuredBroker) -> Iterator[Peer]:
    peer = controller(secured)
    assert peer.connected, peer.refusal
    assert peer.subscribe(topics.HEARTBEAT_FILTER) == ["Granted QoS 1"]
    yield peer
    peer.close()


def _logins_file(secured: SecuredBroker, tmp_path: Path, *, wrong: str | None = None) -> Path:
    """Every box of the site gets an account; ``wrong``'s password in the file is not the one the broker has."""
    with secured.accounts() as accounts:
        made = accounts.add_boxes(BOXES)
    path = tmp_path / "box-logins.json"
    boxes = {a.box: {"username": a.username, "password": a.password + ("x" if a.box == wrong else "")} for a in made}
    path.write_text(json.dumps({"boxes": boxes}))
    path.chmod(0o600)
    return path


def _options(secured: SecuredBroker, tmp_path: Path, logins: Path) -> SimulatorOptions:
    sites_dir = tmp_path / "sites"
    write_inventory(sites_dir, sites=1, boxes_per_site=3)
    pki.issue(secured.pki_dir, "box", "simulator", now=datetime.now(UTC))
    return SimulatorOptions(
        sites_dir=sites_dir,
        broker_url=f"mqtts://localhost:{secured.port}",
        ca_file=secured.ca_file,
        cert_file=pki.cert_path(secured.pki_dir, "box", "simulator"),
        key_file=pki.key_path(secured.pki_dir, "box", "simulator"),
        box_logins=logins,
        listen="127.0.0.1:0",
        interval_override_s=INTERVAL_S,
        keepalive_s=KEEPALIVE_S,
        seed=7,
    )


def _heard_from(listener: Peer) -> set[str]:
    heard = set()
    for box in BOXES:
        for payload in listener.received(topics.heartbeat_topic(box)):
            assert decode_heartbeat(payload).box == box
            heard.add(box)
    return heard


def test_each_box_logs_in_over_tls_with_its_own_account(
    secured: SecuredBroker, listener: Peer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logins = _logins_file(secured, tmp_path)
    running = start_in_background(_options(secured, tmp_path, logins))
    try:
        wait_for(lambda: _heard_from(listener) == set(BOXES) or None, what="a heartbeat from every box over TLS")
        simulation = running.simulation
        assert simulation is not None
        # Each box gave its own login, bound to its own client id (grants: username = client id = box id).
        assert {c.box: c.link.broker.username for c in simulation.driver.connections} == {b: b for b in BOXES}
        assert all(str(c.link.broker).startswith("mqtts://") for c in simulation.driver.connections)
        status = httpx.get(f"{running.url}/status").json()
    finally:
        running.stop()
    passwords = [entry["password"] for entry in json.loads(logins.read_text())["boxes"].values()]
    shown = caplog.text + json.dumps(status)
    assert not [p for p in passwords if p in shown], "a box's password reached the log or the status"


def test_a_box_with_a_wrong_password_is_refused_and_the_others_beat(
    secured: SecuredBroker, listener: Peer, tmp_path: Path
) -> None:
    wrong = BOXES[0]
    running = start_in_background(_options(secured, tmp_path, _logins_file(secured, tmp_path, wrong=wrong)))
    try:
        simulation = running.simulation
        assert simulation is not None
        (refused,) = [c for c in simulation.driver.connections if c.box == wrong]
        wait_for(lambda: refused.refused_for_good or None, what="the broker to refuse the box's wrong password")
        wait_for(lambda: _heard_from(listener) == set(BOXES[1:]) or None, what="heartbeats of the other boxes")
        assert refused.link.refused is not None
        assert "not authorized" in refused.link.refused.lower()
        assert not listener.received(topics.heartbeat_topic(wrong))
    finally:
        running.stop()


def test_a_logins_file_others_may_read_or_that_lacks_a_box_is_refused(secured: SecuredBroker, tmp_path: Path) -> None:
    logins = _logins_file(secured, tmp_path)
    options = _options(secured, tmp_path, logins)
    logins.chmod(0o644)
    with pytest.raises(SimulatorError, match="may be read by others"):
        start_in_background(options)
    logins.chmod(0o600)
    raw = json.loads(logins.read_text())
    del raw["boxes"][BOXES[1]]
    logins.write_text(json.dumps(raw))
    assert os.stat(logins).st_mode & 0o077 == 0
    with pytest.raises(SimulatorError, match=f"no login for 1 of the boxes played \\({BOXES[1]}\\)"):
        start_in_background(options)


def test_tls_files_with_a_plain_broker_url_are_refused(tmp_path: Path) -> None:
    options = SimulatorOptions(broker_url="mqtt://127.0.0.1:1883", ca_file=tmp_path / "ca.crt")
    with pytest.raises(
        SimulatorError, match=re.escape("are for TLS, but the broker URL mqtt://127.0.0.1:1883 is plain")
    ):
        options.check()
