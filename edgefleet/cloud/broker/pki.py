"""The certificate authority of the broker's TLS, and the certificates it signs: ``edgefleet pki``.

A PKI directory holds:

- ``ca.crt``: the CA certificates the broker and every client trust. Normally one; during a CA rotation the new
  CA first and the previous one after it, so that certificates the old CA signed stay valid until each is
  re-issued (``rotate_ca``, then ``issue(..., replace=True)`` for each, then ``drop_previous_ca``).
- ``ca.key``: the current CA's private key. It signs; nothing else needs it, so it may live offline.
- ``<kind>-<name>.crt`` and ``.key``: a certificate and its key. ``broker`` certificates are for the broker's
  listener (server authentication; names ``localhost`` and ``127.0.0.1`` and any extra ones asked for);
  ``controller`` and ``box`` certificates identify a client (client authentication; the name is the common name).

Keys are ECDSA P-256 (small, fast handshakes, supported by every OpenSSL that Mosquitto and Python link), written
0600 through a temporary file renamed into place, so a key is never readable by others, not even for a moment,
and a crash never leaves half a key. Time is a parameter (``now``): the CLI passes the clock.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgefleet.errors import EdgefleetError
from edgefleet.ids import id_problem

Kind = Literal["broker", "controller", "box"]
KINDS: Final[tuple[Kind, ...]] = ("broker", "controller", "box")

CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
# Ten years: the CA is rotated on purpose (docs/security.md), not by expiry surprise.
CA_DAYS: Final = 3650
# About a year: short enough that a leaked key stops working on its own, long enough to renew once a year by
# routine (the Web's limit for server certificates is 398 days).
LEAF_DAYS: Final = 365
# Clocks of boxes lag: a certificate valid from a few minutes ago is not refused by a box whose clock is behind.
BACKDATE: Final = timedelta(minutes=5)
# The broker certificate always names the loopback address and name: the demo and the tests connect there.
DEFAULT_BROKER_SANS: Final = ("localhost", "127.0.0.1")
ORGANIZATION: Final = "edgefleet"


class PkiError(EdgefleetError):
    """A PKI directory cannot be used as asked; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate written to disk, and what it says."""

    kind: str
    name: str
    cert: Path
    key: Path
    not_after: datetime
    serial: int


def cert_path(directory: Path, kind: Kind, name: str) -> Path:
    return directory / f"{kind}-{name}.crt"


def key_path(directory: Path, kind: Kind, name: str) -> Path:
    return directory / f"{kind}-{name}.key"


def init_ca(directory: Path, *, now: datetime, days: int = CA_DAYS, name: str = "edgefleet broker CA") -> Issued:
    """Make a new CA in ``directory`` (created 0700 if missing); refuses when one is there already."""
    if (directory / CA_KEY).exists() or (directory / CA_CERT).exists():
        raise PkiError(
            f"{directory / CA_CERT} already exists; 'edgefleet pki rotate ca' replaces a CA, keeping the old one "
            "trusted until every certificate is re-issued"
        )
    _check_days(days)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, cert = _new_ca(name, now=now, days=days)
    _write_key(directory / CA_KEY, key)
    _write_public(directory / CA_CERT, [cert])
    return Issued("ca", name, directory / CA_CERT, directory / CA_KEY, cert.not_valid_after_utc, cert.serial_number)


def issue(
    directory: Path,
    kind: Kind,
    name: str,
    *,
    now: datetime,
    days: int = LEAF_DAYS,
    sans: Sequence[str] = (),
    replace: bool = False,
) -> Issued:
    """Sign a new key's certificate with the current CA. ``replace`` (rotation) overwrites an existing one, else
    an existing one is refused, so a typo cannot silently cut off the box that holds it."""
    if kind not in KINDS:
        raise PkiError(f"unknown certificate kind {kind!r}; expected one of: {', '.join(KINDS)}")
    problem = id_problem(name)
    if problem:
        raise PkiError(f"certificate name: {problem}")
    _check_days(days)
    cert_file, key_file = cert_path(directory, kind, name), key_path(directory, kind, name)
    if cert_file.exists() and not replace:
        raise PkiError(f"{cert_file} already exists; 'edgefleet pki rotate {kind} {name}' replaces it with a new key")
    key, cert = _sign_new_key(directory, kind, name, now=now, days=days, sans=sans)
    _write_key(key_file, key)
    _write_public(cert_file, [cert])
    return Issued(kind, name, cert_file, key_file, cert.not_valid_after_utc, cert.serial_number)


@dataclass(frozen=True, slots=True)
class IssuedPem:
    """A box's certificate and key made for enrollment, in PEM, never written on the controller's disk; the key
    is left out of repr."""

    cert: bytes
    key: bytes = field(repr=False)
    not_after: datetime


def issue_box_pem(directory: Path, box: str, *, now: datetime, days: int = LEAF_DAYS) -> IssuedPem:
    """A box certificate and its new key as PEM, signed by the current CA (enrollment hands both to the box
    once; ``issue`` writes them into the PKI directory instead)."""
    problem = id_problem(box)
    if problem:
        raise PkiError(f"certificate name: {problem}")
    _check_days(days)
    key, cert = _sign_new_key(directory, "box", box, now=now, days=days, sans=())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return IssuedPem(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.not_valid_after_utc)


def _sign_new_key(
    directory: Path, kind: Kind, name: str, *, now: datetime, days: int, sans: Sequence[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now=now, days=days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if kind == "broker":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names([*DEFAULT_BROKER_SANS, name, *sans])), critical=False
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def rotate_ca(directory: Path, *, now: datetime, days: int = CA_DAYS, name: str = "edgefleet broker CA") -> Issued:
    """Replace the CA's key and certificate; ``ca.crt`` then holds the new CA and the previous one, so that every
    certificate the previous one signed keeps working until it is re-issued. CAs older than the previous one are
    dropped: a second rotation before the first was finished ends the trust in the oldest."""
    _check_days(days)
    _, current = load_ca(directory)
    key, cert = _new_ca(name, now=now, days=days)
    _write_key(directory / CA_KEY, key)
    _write_public(directory / CA_CERT, [cert, current])
    return Issued("ca", name, directory / CA_CERT, directory / CA_KEY, cert.not_valid_after_utc, cert.serial_number)


def drop_previous_ca(directory: Path) -> int:
    """The last step of a CA rotation: ``ca.crt`` keeps the current CA only. Returns how many were dropped."""
    _, current = load_ca(directory)
    trusted = load_trusted(directory)
    _write_public(directory / CA_CERT, [current])
    return len(trusted) - 1


def load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The current CA: its key, and the certificate in ``ca.crt`` that matches it."""
    key_file = directory / CA_KEY
    if not key_file.exists():
        raise PkiError(
            f"no CA in {directory} ({CA_KEY} is missing); make one with 'edgefleet pki init --dir {directory}'"
        )
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read the CA key {key_file}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_file} is not an EC key as 'edgefleet pki init' writes")
    wanted = key.public_key().public_numbers()
    for cert in load_trusted(directory):
        public = cert.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey) and public.public_numbers() == wanted:
            return key, cert
    raise PkiError(f"{directory / CA_CERT} holds no certificate for {key_file}; the two files do not belong together")


def load_trusted(directory: Path) -> list[x509.Certificate]:
    path = directory / CA_CERT
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PkiError(f"{path} is not a PEM certificate file: {exc}") from None


def list_certificates(directory: Path) -> list[Issued]:
    """Every certificate in the directory with its expiry, the CAs first."""
    # ca.crt lists the current CA first and, during a rotation, the previous one after it (``rotate_ca``).
    found = [
        Issued(
            "ca" if index == 0 else "ca (previous)",
            _common_name(cert),
            directory / CA_CERT,
            directory / CA_KEY,
            cert.not_valid_after_utc,
            cert.serial_number,
        )
        for index, cert in enumerate(load_trusted(directory))
    ]
    for path in sorted(directory.glob("*.crt")):
        kind, _, name = path.stem.partition("-")
        if path.name == CA_CERT or kind not in KINDS:
            continue
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        found.append(Issued(kind, name, path, path.with_suffix(".key"), cert.not_valid_after_utc, cert.serial_number))
    return found


# --- building blocks ------------------------------------------------------------------------------------------


def _new_ca(name: str, *, now: datetime, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    cert = (
        _builder(subject, subject, key.public_key(), now=now, days=days)
        # path_length 0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, *, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # in order, once each
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode()


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"--days {days}: a certificate must be valid for at least one day")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomically(path, data, mode=0o600)


def _write_public(path: Path, certs: Sequence[x509.Certificate]) -> None:
    write_atomically(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), mode=0o644)


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write through a temporary file created with ``mode`` (never wider, whatever the umask) and renamed over
    ``path``: readers see the old file or the new one, and a key is never readable by others on the way."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
