"""``edgefleet pki`` and ``edgefleet broker`` as a person runs them: the files they write, a real Mosquitto started
from that configuration, box accounts added, listed and revoked on it. A box's password is printed once, by
``box add -o json`` (or written to a 0600 file), and nowhere else; bad input is one ``error:`` line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from edgefleet.cloud.broker import configuring
from tests.cli.entry import edgefleet
from tests.support.peers import free_port, mosquitto_from
from tests.support.secured_broker import connect


def _ok(*args: str) -> str:
    done = edgefleet(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_from_nothing_to_a_box_on_the_secured_broker_and_off_again(tmp_path: Path) -> None:
    pki_dir, conf_dir, port = tmp_path / "pki", tmp_path / "broker", free_port()
    _ok("pki", "init", "--dir", str(pki_dir))
    _ok("pki", "issue", "broker", "broker", "--dir", str(pki_dir))
    _ok("pki", "issue", "controller", "controller", "--dir", str(pki_dir))
    _ok("pki", "issue", "box", "box-7", "--dir", str(pki_dir))
    user = ["--user", "root"] if os.geteuid() == 0 else []
    config = ["broker", "config", "--dir", str(conf_dir), "--pki", str(pki_dir), "--port", str(port), *user]
    _ok(*config)
    admin_password = (conf_dir / configuring.ADMIN_PASSWORD).read_text()
    assert stat.S_IMODE((conf_dir / configuring.ADMIN_PASSWORD).stat().st_mode) == 0o600
    assert "allow_anonymous false" in (conf_dir / configuring.CONF).read_text()
    # Written again (a new port, say): the accounts are kept.
    _ok(*config)
    assert (conf_dir / configuring.ADMIN_PASSWORD).read_text() == admin_password

    with mosquitto_from(conf_dir / configuring.CONF, port):
        added = edgefleet("broker", "box", "add", "box-7", "--dir", str(conf_dir), "-o", "json")
        assert added.returncode == 0, added.stderr
        account = json.loads(added.stdout)
        assert account["username"] == account["clientId"] == "box-7"
        password = account["password"]

        peer = connect(
            port,
            ca_file=pki_dir / "ca.crt",
            client_id="box-7",
            username="box-7",
            password=password,
            cert=(pki_dir / "box-box-7.crt", pki_dir / "box-box-7.key"),
        )
        try:
            assert peer.connected, peer.refusal
        finally:
            peer.close()

        to_file = tmp_path / "box-8.password"
        told = _ok(
            "broker", "box", "add", "box-8", "--dir", str(conf_dir), "--password-file", str(to_file),
            "--pki", str(pki_dir),
        )  # fmt: skip
        assert stat.S_IMODE(to_file.stat().st_mode) == 0o600
        # With --pki the box's certificate was issued too, and the line says how the box runs with it all.
        assert f"--broker mqtts://127.0.0.1:{port} --username box-8 --password-file FILE" in told
        assert f"--cert-file {pki_dir / 'box-box-8.crt'} --key-file {pki_dir / 'box-box-8.key'}" in told
        box_8 = connect(
            port,
            ca_file=pki_dir / "ca.crt",
            client_id="box-8",
            username="box-8",
            password=to_file.read_text().strip(),
            cert=(pki_dir / "box-box-8.crt", pki_dir / "box-box-8.key"),
        )
        try:
            assert box_8.connected, box_8.refusal
        finally:
            box_8.close()

        listed = _ok("broker", "box", "list", "--dir", str(conf_dir), "-o", "json")
        assert json.loads(listed) == [
            {"box": "box-7", "clientId": "box-7", "disabled": False},
            {"box": "box-8", "clientId": "box-8", "disabled": False},
        ]
        table = _ok("broker", "box", "list", "--dir", str(conf_dir))
        again = edgefleet("broker", "box", "add", "box-7", "--dir", str(conf_dir), "-o", "json")
        revoked = _ok("broker", "box", "revoke", "box-7", "--dir", str(conf_dir))
        gone = edgefleet("broker", "box", "revoke", "box-7", "--dir", str(conf_dir))

    assert again.returncode == 1
    assert again.stderr.startswith("error: box box-7 already has a broker account; revoke it first")
    assert "Revoked box box-7" in revoked
    assert gone.returncode == 1
    assert gone.stderr.strip() == "error: box box-7 has no broker account"
    for shown in (told, listed, table, revoked, again.stdout + again.stderr, gone.stderr):
        assert password not in shown
        assert to_file.read_text().strip() not in shown


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    no_destination = edgefleet("broker", "box", "add", "box-1", "--dir", str(tmp_path))
    no_config = edgefleet("broker", "box", "list", "--dir", str(tmp_path))
    no_ca = edgefleet("broker", "config", "--dir", str(tmp_path / "b"), "--pki", str(tmp_path / "p"))
    bad_kind = edgefleet("pki", "issue", "router", "r1", "--dir", str(tmp_path))
    bad_box = edgefleet("broker", "box", "add", "Box_1", "--dir", str(tmp_path), "-o", "json")

    assert no_destination.stderr.splitlines()[0] == "error: say where the new password goes: it is shown once only"
    assert no_config.stderr.startswith(f"error: {tmp_path / 'broker.json'} is missing; write the broker's")
    assert no_ca.stderr.startswith(f"error: {tmp_path / 'p' / 'ca.crt'} is missing; make the CA first")
    assert bad_kind.stderr.splitlines()[0] == "error: unknown certificate kind 'router'"
    assert bad_box.stderr.startswith("error: box id: 'Box_1' is not a valid id")
    for done in (no_destination, no_config, no_ca, bad_kind, bad_box):
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
