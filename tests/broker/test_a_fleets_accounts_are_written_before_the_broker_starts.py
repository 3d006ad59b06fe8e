"""A whole fleet's box accounts written into the plugin's first file (``edgefleet broker config --boxes-from``):
once Mosquitto starts from it, each box logs in with its own password and client id and sends its heartbeat, the
accounts list as box accounts, and a wrong password or another box's client id is refused. The CLI writes the
logins file 0600, never overwrites one, and refuses to add boxes to an account file that already exists.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgefleet import topics
from edgefleet.box_logins import read_box_logins
from edgefleet.cli.app import run
from edgefleet.cloud.broker import configuring, pki
from edgefleet.cloud.broker.accounts import BoxAccount
from tests.simulator.fleets import write_inventory
from tests.support.secured_broker import Peer, SecuredBroker, box, secured_broker

BOXES = ["site-01-edge-01", "site-01-gpu-01", "site-02-gpu-01"]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path, boxes=BOXES) as made:
        for name in BOXES:
            pki.issue(made.pki_dir, "box", name, now=datetime.now(UTC))
        yield made


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def test_each_box_logs_in_with_its_own_written_account(secured: SecuredBroker, peers: list[Peer]) -> None:
    for name in BOXES:
        peer = box(secured, secured.box_accounts[name])
        peers.append(peer)
        assert peer.connected, peer.refusal
        # Accepted (nobody listens here); another box's topic is not, as for an account made at run time.
        assert peer.publish(topics.heartbeat_topic(name), b"{}") == "No matching subscribers"
        other = BOXES[0] if name != BOXES[0] else BOXES[1]
        assert peer.publish(topics.heartbeat_topic(other), b"{}") == "Not authorized"
    with secured.accounts() as accounts:
        assert [entry.box for entry in accounts.list_boxes()] == sorted(BOXES)


def test_a_wrong_password_or_another_boxs_client_id_is_refused(secured: SecuredBroker, peers: list[Peer]) -> None:
    account = secured.box_accounts[BOXES[0]]
    wrong = box(secured, BoxAccount(account.box, account.username, account.clientid, account.password + "x"))
    peers.append(wrong)
    assert wrong.connected is False
    taken = box(secured, account, client_id=BOXES[1])
    peers.append(taken)
    assert taken.connected is False


def test_the_cli_writes_the_logins_file_once_and_only_into_a_new_account_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = tmp_path / "sites"
    write_inventory(sites, sites=2, boxes_per_site=2)
    pki_dir = tmp_path / "pki"
    now = datetime.now(UTC)
    pki.init_ca(pki_dir, now=now)
    pki.issue(pki_dir, "broker", "broker", now=now)
    pki.issue(pki_dir, "controller", "controller", now=now)
    logins = tmp_path / "logins.json"
    args = ["broker", "config", "--dir", str(tmp_path / "broker"), "--pki", str(pki_dir), "--port", "18883"]

    def invoke(*more: str) -> tuple[int, str]:
        code = run([*args, *more])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, output = invoke("--boxes-from", str(sites), "--box-logins", str(logins))
    assert code == 0, output
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600
    read = read_box_logins(logins)
    stored = json.loads((tmp_path / "broker" / configuring.DYNSEC).read_text())
    assert {c["username"] for c in stored["clients"]} >= set(read)
    assert len(read) == 4
    assert all(login.username == name for name, login in read.items())
    assert all(login.password not in output for login in read.values())

    code, output = invoke("--boxes-from", str(sites), "--box-logins", str(logins))
    assert code != 0
    assert "exists; name a new file" in output
    code, output = invoke("--boxes-from", str(sites), "--box-logins", str(tmp_path / "new.json"))
    assert code != 0
    assert "box accounts can no longer be written into it" in output
    assert not (tmp_path / "new.json").exists()
    code, output = invoke("--boxes-from", str(sites))
    assert code != 0
    assert "--boxes-from and --box-logins go together" in output
