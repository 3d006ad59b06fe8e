"""``edgefleet users add|list|remove|passwd``: the console's local users (for a small install, and break-glass when
the company's sign-in provider is down).

Like ``edgefleet tokens``, it reaches the controller's database directly (``EDGEFLEET_DATABASE_URL`` or
``--database``): whoever can reach the database is an admin already. The password is asked for twice without
echo, or read from ``--password-file`` (for scripts); it is stored only as an argon2 hash and never printed.
Removing a user or changing their password ends their console sessions at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli.database import ControllerDatabase, DatabaseOption
from edgefleet.cli.output import OutputFormat, OutputOption

if TYPE_CHECKING:
    from edgefleet.cloud.access.local_users import LocalUsers
    from edgefleet.cloud.store import Store

PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="Read the password from this file (default: ask for it twice).", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Local users of the console: add, list, remove, passwd.", add_completion=False)
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("remove")(users_remove)
    users.command("passwd")(users_passwd)
    app.add_typer(users, name="users", help="Local users of the console (argon2-hashed passwords).")


def users_add(
    name: Annotated[str, typer.Argument(help="The user's name: the actor recorded for what they do.")],
    role: Annotated[str, typer.Option("--role", help="admin, release-manager, ops, site-staff or viewer.")],
    site: Annotated[list[str] | None, typer.Option("--site", help="A site a site-staff user covers (repeat).")] = None,
    password_file: PasswordFileOption = None,
    database: DatabaseOption = None,
) -> None:
    """Add a local user who signs in to the console with a password."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.cloud.access.authorizing import ROLES, PrincipalError
    from edgefleet.cloud.access.local_users import LocalUserError
    from edgefleet.ids import SiteId

    chosen = next((r for r in ROLES if r == role), None)
    if chosen is None:
        fail(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    password = _password(password_file)
    with ControllerDatabase(database) as store:
        users = _local_users(store)
        try:
            sites = frozenset(SiteId(s) for s in site) if site else None
            users.add(name, chosen, sites, password, now=time.time())
        except (LocalUserError, PrincipalError) as exc:
            fail(escape(str(exc)))
    show(f"Added local user {escape(name)} ({chosen}).")


def users_list(database: DatabaseOption = None, output: OutputOption = OutputFormat.TABLE) -> None:
    """The local users with their role and sites (never their password or its hash)."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    with ControllerDatabase(database) as store:
        users = _local_users(store)
        found = users.users()
    items: list[dict[str, Any]] = [
        {
            "name": u.name,
            "role": u.role,
            "sites": None if u.sites is None else sorted(u.sites),
            "created_at": u.created_at,
            "changed_at": u.changed_at,
        }
        for u in found
    ]
    if is_data(output):
        print_data(items, output)
        return
    table = new_table("NAME", "ROLE", "SITES", "PASSWORD CHANGED")
    for item in items:
        table.add_row(
            escape(item["name"]),
            item["role"],
            escape(",".join(item["sites"] or ["*"])),
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["changed_at"])),
        )
    show(table)


def users_remove(
    name: Annotated[str, typer.Argument(help="The user's name.")], database: DatabaseOption = None
) -> None:
    """Remove a local user; their console sessions end at once."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.cloud.access.local_users import LocalUserError

    with ControllerDatabase(database) as store:
        users = _local_users(store)
        try:
            users.remove(name, now=time.time())
        except LocalUserError as exc:
            fail(escape(str(exc)))
    show(f"Removed local user {escape(name)}; their console sessions have ended.")


def users_passwd(
    name: Annotated[str, typer.Argument(help="The user's name.")],
    password_file: PasswordFileOption = None,
    database: DatabaseOption = None,
) -> None:
    """Set a local user's password; their console sessions end at once."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.cloud.access.local_users import LocalUserError

    password = _password(password_file)
    with ControllerDatabase(database) as store:
        users = _local_users(store)
        try:
            users.passwd(name, password, now=time.time())
        except LocalUserError as exc:
            fail(escape(str(exc)))
    show(f"Changed the password of {escape(name)}; their console sessions have ended.")


def _password(password_file: Path | None) -> str:
    from rich.markup import escape

    from edgefleet.cli.output import fail
    from edgefleet.credentials import SecretFileError, read_secret_file

    if password_file is not None:
        try:
            return read_secret_file(password_file)
        except SecretFileError as exc:
            fail(escape(str(exc)))
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _local_users(store: Store) -> LocalUsers:
    from edgefleet.cloud.access.local_users import LocalUsers

    return LocalUsers(store)
