"""``edgefleet pki ...`` and ``edgefleet broker ...``: the broker's certificates, configuration and box accounts.

These commands run where the files are (the broker's host, or an admin's machine holding the CA), not through
the controller's API: they make the secrets the API must never hand out. A box's password is printed once, by
``broker box add -o json``, or written to a 0600 file with ``--password-file``; never in a table, never in a log.
``edgefleet.cli.app`` adds both apps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgefleet.cli.output import OutputFormat, OutputOption, fail, is_data, new_table, print_data, show

if TYPE_CHECKING:
    from edgefleet.cloud.broker.pki import Kind

pki_app = typer.Typer(
    help="The broker's TLS certificate authority and certificates.", no_args_is_help=True, add_completion=False
)
broker_app = typer.Typer(
    help="The secured broker: its configuration and box accounts.", no_args_is_help=True, add_completion=False
)
box_app = typer.Typer(help="Box accounts on the running broker (no restart).", no_args_is_help=True)
broker_app.add_typer(box_app, name="box")

PkiDirOption = Annotated[
    Path, typer.Option("--dir", "--directory", "-d", help="The PKI directory (ca.crt, ca.key, <kind>-<name>.crt/.key).")
]
BrokerDirOption = Annotated[
    Path,
    typer.Option(
        "--dir", "--directory", "-d", help="The broker's configuration directory ('edgefleet broker config' wrote)."
    ),
]
KIND_HELP = "broker (the listener's certificate), controller or box (client certificates)."


def _now() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- pki -----------------------------------------------------------------------------------------------------


@pki_app.command("init")
def pki_init(
    directory: PkiDirOption,
    days: Annotated[int, typer.Option(help="How long the CA is valid, in days.")] = 3650,
) -> None:
    """Make a new CA (refused where one exists: see 'pki rotate ca')."""
    from edgefleet.cloud.broker import pki

    ca = pki.init_ca(directory, now=_now(), days=days)
    show(f"Made a CA in {directory}: {ca.cert} (valid until {_when(ca.not_after)}); keep {ca.key} private.")


@pki_app.command("issue")
def pki_issue(
    kind: Annotated[str, typer.Argument(help=KIND_HELP)],
    name: Annotated[str, typer.Argument(help="The certificate's name: the box id for a box.")],
    directory: PkiDirOption,
    days: Annotated[int, typer.Option(help="How long the certificate is valid, in days.")] = 365,
    san: Annotated[
        list[str] | None,
        typer.Option("--san", help="Another name or IP address of the broker (besides localhost, 127.0.0.1)."),
    ] = None,
) -> None:
    """Issue a certificate and a new key signed by the CA."""
    from edgefleet.cloud.broker import pki

    issued = pki.issue(directory, _kind(kind), name, now=_now(), days=days, sans=san or ())
    show(f"Issued {issued.cert} and its key {issued.key} (valid until {_when(issued.not_after)}).")


@pki_app.command("rotate")
def pki_rotate(
    kind: Annotated[str, typer.Argument(help="ca, or " + KIND_HELP)],
    directory: PkiDirOption,
    name: Annotated[str | None, typer.Argument(help="The certificate's name (not for ca).")] = None,
    days: Annotated[int | None, typer.Option(help="How long the new one is valid, in days.")] = None,
    san: Annotated[list[str] | None, typer.Option("--san", help="Another name or IP address of the broker.")] = None,
    finish: Annotated[
        bool, typer.Option("--finish", help="ca only: stop trusting the previous CA (once everything is re-issued).")
    ] = False,
) -> None:
    """Replace a certificate and its key, or the CA (docs/security.md says in which order)."""
    from edgefleet.cloud.broker import pki

    if kind == "ca":
        if name is not None:
            fail("'pki rotate ca' takes no name", hint="edgefleet pki rotate ca --dir DIR [--finish]")
        if finish:
            dropped = pki.drop_previous_ca(directory)
            show(f"{directory / pki.CA_CERT} now trusts the current CA only ({dropped} dropped).")
            return
        ca = pki.rotate_ca(directory, now=_now(), days=days or pki.CA_DAYS)
        show(
            f"Made a new CA (valid until {_when(ca.not_after)}); {ca.cert} trusts it and the previous one. "
            "Re-issue every certificate ('pki rotate KIND NAME'), restart the broker, then 'pki rotate ca --finish'."
        )
        return
    if finish:
        fail("--finish is for 'pki rotate ca' only")
    if name is None:
        fail(f"'pki rotate {kind}' needs the certificate's name", hint=f"edgefleet pki rotate {kind} NAME --dir DIR")
    checked = _kind(kind)
    if not pki.cert_path(directory, checked, name).exists():
        fail(
            f"{pki.cert_path(directory, checked, name)} does not exist",
            hint=f"issue it first: edgefleet pki issue {kind} {name} --dir {directory}",
        )
    issued = pki.issue(directory, checked, name, now=_now(), days=days or pki.LEAF_DAYS, sans=san or (), replace=True)
    show(f"Replaced {issued.cert} and its key (valid until {_when(issued.not_after)}).")


@pki_app.command("list")
def pki_list(directory: PkiDirOption, output: OutputOption = OutputFormat.TABLE) -> None:
    """The certificates in the directory and when each expires."""
    from edgefleet.cloud.broker import pki

    certs = pki.list_certificates(directory)
    if is_data(output):
        print_data(
            [{"kind": c.kind, "name": c.name, "file": str(c.cert), "notAfter": c.not_after.isoformat()} for c in certs],
            output,
        )
        return
    table = new_table("KIND", "NAME", "EXPIRES", "FILE")
    for c in certs:
        table.add_row(c.kind, c.name, _when(c.not_after), str(c.cert))
    show(table)


def _kind(kind: str) -> Kind:
    from edgefleet.cloud.broker import pki

    if kind not in pki.KINDS:
        fail(f"unknown certificate kind {kind!r}", hint=f"use one of: {', '.join(pki.KINDS)}")
    return kind


# --- broker --------------------------------------------------------------------------------------------------


@broker_app.command("config")
def broker_config(
    directory: BrokerDirOption,
    pki_dir: Annotated[Path, typer.Option("--pki", help="The PKI directory ('edgefleet pki init' made).")],
    port: Annotated[int, typer.Option(help="The TLS listener's port.")] = 8883,
    host: Annotated[str, typer.Option(help="The address the listener binds to.")] = "127.0.0.1",
    broker_cert: Annotated[str, typer.Option(help="Name of the broker certificate in the PKI.")] = "broker",
    controller_cert: Annotated[
        str, typer.Option(help="Name of the controller certificate (admin connections present it).")
    ] = "controller",
    client_certs: Annotated[
        bool, typer.Option("--client-certs/--no-client-certs", help="Require a client certificate of the CA.")
    ] = True,
    plugin: Annotated[Path | None, typer.Option(help="Mosquitto's mosquitto_dynamic_security.so.")] = None,
    user: Annotated[
        str | None, typer.Option(help="The user Mosquitto drops to when started as root (reads keys, writes accounts).")
    ] = None,
    boxes_from: Annotated[
        Path | None,
        typer.Option(
            "--boxes-from",
            metavar="SITES",
            help="Also make an account for every box of this site inventory, in the new account file (fast for a"
            " whole fleet; needs --box-logins).",
        ),
    ] = None,
    box_logins: Annotated[
        Path | None,
        typer.Option(
            "--box-logins",
            metavar="FILE",
            help="Write the boxes' logins here (new file, 0600), as 'edgefleet sim run --box-logins' reads them.",
        ),
    ] = None,
) -> None:
    """Write mosquitto.conf (TLS only, no anonymous clients) and the account plugin's first file."""
    from edgefleet.cloud.broker import configuring

    boxes: list[str] = []
    if (boxes_from is None) != (box_logins is None):
        fail("--boxes-from and --box-logins go together", hint="the new passwords are shown nowhere else")
    if boxes_from is not None and box_logins is not None:
        from edgefleet.inventory import load_inventory

        if box_logins.exists():
            fail(f"{box_logins} exists; name a new file (a logins file is never overwritten)")
        boxes = list(load_inventory(boxes_from).boxes)
    written = configuring.write_config(
        directory,
        pki_dir=pki_dir,
        host=host,
        port=port,
        broker_cert=broker_cert,
        controller_cert=controller_cert,
        require_client_certs=client_certs,
        plugin=plugin,
        run_as=user,
        boxes=boxes,
    )
    if box_logins is not None:
        from edgefleet.box_logins import BoxLogin, write_box_logins

        write_box_logins(box_logins, {b: BoxLogin(b, p) for b, p in written.box_passwords.items()})
    accounts = (
        f"made the admin and controller accounts ({configuring.ADMIN_PASSWORD}, {configuring.CONTROLLER_PASSWORD})"
        if written.dynsec_created
        else f"kept the accounts in {written.dynsec}"
    )
    if box_logins is not None:
        accounts += f" and {len(boxes)} box accounts (logins: {box_logins})"
    show(f"Wrote {written.conf}; {accounts}. Start it with: mosquitto -c {written.conf}")


@box_app.command("add")
def box_add(
    box: Annotated[str, typer.Argument(help="The box id.")],
    directory: BrokerDirOption,
    password_file: Annotated[
        Path | None, typer.Option(help="Write the new password to this file (0600) instead of printing it.")
    ] = None,
    pki_dir: Annotated[
        Path | None,
        typer.Option("--pki", help="Also issue the box's certificate from this PKI directory (if it has none)."),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Give a box its own account on the running broker; its password is shown once (-o json) or written to a file."""
    from edgefleet.cloud.broker import configuring
    from edgefleet.cloud.broker.accounts import BrokerAccounts
    from edgefleet.cloud.broker.grants import check_box
    from edgefleet.cloud.broker.pki import write_atomically

    check_box(box)  # before anything else: a bad id is the first thing to say
    if password_file is None and not is_data(output):
        fail(
            "say where the new password goes: it is shown once only",
            hint="-o json prints it once; --password-file PATH writes it to a file only you can read",
        )
    if password_file is not None and password_file.exists():
        fail(f"{password_file} exists; name a new file (a password file is never overwritten)")
    settings = configuring.read_settings(directory)
    # The certificate first: a PKI that cannot issue fails the command before the broker knows the box.
    tls: dict[str, str] = {}
    if pki_dir is not None:
        from edgefleet.cloud.broker import pki

        if not pki.cert_path(pki_dir, "box", box).exists():
            pki.issue(pki_dir, "box", box, now=_now())
        tls = {
            "caFile": str(pki_dir / pki.CA_CERT),
            "certFile": str(pki.cert_path(pki_dir, "box", box)),
            "keyFile": str(pki.key_path(pki_dir, "box", box)),
        }
    with BrokerAccounts.connect(settings) as accounts:
        account = accounts.add_box(box)
    if password_file is not None:
        write_atomically(password_file, account.password.encode() + b"\n", mode=0o600)
    broker_url = f"mqtts://{settings.host}:{settings.port}"
    if is_data(output):
        entry = {"box": account.box, "username": account.username, "clientId": account.clientid, "broker": broker_url}
        if password_file is None:
            entry["password"] = account.password
        else:
            entry["passwordFile"] = str(password_file)
        print_data({**entry, **tls}, output)
        return
    command = f"edgefleet agent run --box {box} --site SITE --broker {broker_url} --username {box} --password-file FILE"
    if tls:
        command += f" --ca-file {tls['caFile']} --cert-file {tls['certFile']} --key-file {tls['keyFile']}"
    show(
        f"Added box {box} to the broker (username and client id {box}); its password is in {password_file}.",
        f"On the box (with these files copied there): {command}",
    )


@box_app.command("revoke")
def box_revoke(
    box: Annotated[str, typer.Argument(help="The box id.")],
    directory: BrokerDirOption,
) -> None:
    """Delete a box's account: the broker disconnects it at once and refuses its login from then on."""
    from edgefleet.cloud.broker import configuring
    from edgefleet.cloud.broker.accounts import BrokerAccounts
    from edgefleet.cloud.broker.grants import check_box

    check_box(box)
    with BrokerAccounts.connect(configuring.read_settings(directory)) as accounts:
        accounts.revoke_box(box)
    show(f"Revoked box {box}: disconnected, and its login is refused.")


@box_app.command("list")
def box_list(directory: BrokerDirOption, output: OutputOption = OutputFormat.TABLE) -> None:
    """The boxes that have an account on the broker."""
    from edgefleet.cloud.broker import configuring
    from edgefleet.cloud.broker.accounts import BrokerAccounts

    with BrokerAccounts.connect(configuring.read_settings(directory)) as accounts:
        boxes = accounts.list_boxes()
    if is_data(output):
        print_data([{"box": b.box, "clientId": b.clientid, "disabled": b.disabled} for b in boxes], output)
        return
    table = new_table("BOX", "CLIENT ID", "STATE")
    for b in boxes:
        table.add_row(b.box, b.clientid or "-", "disabled" if b.disabled else "active")
    show(table)
