"""``edgefleet.cloud.broker.pki``: a CA and certificates made for the broker's TLS, keys readable by their owner
only, validity from the injected clock, and a CA rotation that keeps every certificate working until it is
re-issued - checked on the files, and on a real Mosquitto restarted through each step of the rotation."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgefleet.cloud.broker import pki
from edgefleet.cloud.broker.pki import PkiError
from tests.support.secured_broker import Peer, SecuredBroker, box, controller, secured_broker

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Keys must be 0600 whatever the umask of the shell that made them."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_ca_and_its_certificates(tmp_path: Path, loose_umask: None) -> None:
    ca = pki.init_ca(tmp_path, now=NOW)
    broker = pki.issue(tmp_path, "broker", "mqtt-1", now=NOW, sans=["broker.example", "10.0.0.7"])
    box = pki.issue(tmp_path, "box", "box-1", now=NOW, days=30)

    for key in (ca.key, broker.key, box.key):
        assert _mode(key) == 0o600, key
    ca_cert = _cert(ca.cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.not_valid_after_utc == NOW + timedelta(days=pki.CA_DAYS)

    broker_cert = _cert(broker.cert)
    broker_cert.verify_directly_issued_by(ca_cert)
    names = broker_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "mqtt-1", "broker.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    ]
    usage = broker_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert broker_cert.not_valid_before_utc == NOW - pki.BACKDATE

    box_cert = _cert(box.cert)
    box_cert.verify_directly_issued_by(ca_cert)
    assert box_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "box-1"
    assert list(box_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert box.not_after == NOW + timedelta(days=30)


def test_nothing_is_overwritten_by_mistake(tmp_path: Path) -> None:
    pki.init_ca(tmp_path, now=NOW)
    first = _cert(pki.issue(tmp_path, "box", "box-1", now=NOW).cert)

    with pytest.raises(PkiError, match="already exists; 'edgefleet pki rotate ca'"):
        pki.init_ca(tmp_path, now=NOW)
    with pytest.raises(PkiError, match="'edgefleet pki rotate box box-1' replaces it"):
        pki.issue(tmp_path, "box", "box-1", now=NOW)
    with pytest.raises(PkiError, match="not a valid id"):
        pki.issue(tmp_path, "box", "Box/1", now=NOW)
    with pytest.raises(PkiError, match="no CA in"):
        pki.issue(tmp_path / "elsewhere", "box", "box-1", now=NOW)

    rotated = pki.issue(tmp_path, "box", "box-1", now=NOW, replace=True)
    assert _cert(rotated.cert).public_key() != first.public_key()


def test_a_ca_rotation_trusts_both_until_it_is_finished(tmp_path: Path) -> None:
    pki.init_ca(tmp_path, now=NOW)
    old_box = _cert(pki.issue(tmp_path, "box", "box-1", now=NOW).cert)

    pki.rotate_ca(tmp_path, now=NOW)
    new_ca, old_ca = pki.load_trusted(tmp_path)
    new_box = _cert(pki.issue(tmp_path, "box", "box-2", now=NOW).cert)

    old_box.verify_directly_issued_by(old_ca)
    new_box.verify_directly_issued_by(new_ca)
    assert pki.load_ca(tmp_path)[1] == new_ca

    assert pki.drop_previous_ca(tmp_path) == 1
    assert pki.load_trusted(tmp_path) == [new_ca]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path) as made:
        yield made


def test_a_ca_rotation_on_a_running_broker(secured: SecuredBroker) -> None:
    """The documented order (docs/security.md): rotate the CA, restart the broker, re-issue, restart, finish."""
    account = secured.add_box("box-1")
    peers: list[Peer] = []

    def logs_in(peer: Peer) -> bool | None:
        peers.append(peer)
        return peer.connected

    try:
        now = datetime.now(UTC)
        pki.rotate_ca(secured.pki_dir, now=now)
        secured.broker.restart()
        # Old certificates, old broker certificate: all still good.
        assert logs_in(box(secured, account))
        assert logs_in(controller(secured))

        for kind, name in (("broker", "broker"), ("controller", "controller")):
            pki.issue(secured.pki_dir, kind, name, now=now, replace=True)  # type: ignore[arg-type]
        secured.broker.restart()
        assert logs_in(controller(secured))
        assert logs_in(box(secured, account))  # box-1 not re-issued yet: the previous CA is still trusted

        pki.drop_previous_ca(secured.pki_dir)
        secured.broker.restart()
        assert logs_in(box(secured, account)) is False  # forgotten: the box needed its new certificate
        pki.issue(secured.pki_dir, "box", "box-1", now=now, replace=True)
        assert logs_in(box(secured, account))
    finally:
        for peer in peers:
            peer.close()
