"""``edgefleet tokens create|list|revoke`` and ``edgefleet login``: API tokens, and the one the CLI sends.

``tokens`` reaches the controller's database directly (``EDGEFLEET_DATABASE_URL`` or ``--database``), needing no
token of its own: whoever can reach the database is an admin already, and the first admin token has to come from
somewhere. ``login --token T`` keeps T in a file only its owner may read (0600) under the user's config
directory; every API call of the CLI sends ``EDGEFLEET_TOKEN`` or, without it, that file's token
(``bearer_token``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from edgefleet.cli.database import ControllerDatabase, DatabaseOption
from edgefleet.cli.output import OutputFormat, OutputOption

if TYPE_CHECKING:
    from edgefleet.cloud.access.audit_log import Actor
    from edgefleet.cloud.access.token_store import TokenStore
    from edgefleet.cloud.access.tokens import TokenRecord
    from edgefleet.cloud.store import Store

TOKEN_ENV: Final = "EDGEFLEET_TOKEN"
TOKEN_FILE: Final = "token"


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="API tokens: 'create' one (shown once), 'list' them, 'revoke' one.", add_completion=False)
    tokens.command("create")(tokens_create)
    tokens.command("list")(tokens_list)
    tokens.command("revoke")(tokens_revoke)
    app.add_typer(tokens, name="tokens", help="API tokens: create (shown once), list, revoke.")
    app.command("login")(login)


def config_dir(env: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/edgefleet``, or ``~/.config/edgefleet``."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgefleet"


def bearer_token() -> str | None:
    """The token the CLI sends: ``EDGEFLEET_TOKEN``, else the one ``edgefleet login`` kept, else none."""
    return bearer_token_and_source()[0]


def bearer_token_and_source() -> tuple[str | None, str | None]:
    """The token the CLI sends and where it came from (``EDGEFLEET_TOKEN`` or the file ``login`` wrote), so that
    a refused token can be traced to the place to fix; (None, None) when there is none."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token, TOKEN_ENV
    path = config_dir() / TOKEN_FILE
    try:
        kept = path.read_text().strip()
    except OSError:
        return None, None
    return (kept, str(path)) if kept else (None, None)


def refused_token_message(source: str | None, api: str) -> tuple[str, str]:
    """What to say, and the hint, when the API answers 401 to the CLI: the API's one message for every cause (it
    tells a guesser nothing) begins "this needs an API token", which misleads a person who sent one."""
    make = "an admin makes one with 'edgefleet tokens create'"
    if source is None:
        return (
            f"the controller at {api} needs an API token, and none was sent: {TOKEN_ENV} is not set and "
            f"'edgefleet login' kept none ({config_dir() / TOKEN_FILE})",
            f"edgefleet login --token <token> ({make})",
        )
    if source == TOKEN_ENV:
        kept = (config_dir() / TOKEN_FILE).exists()
        return (
            f"the controller at {api} refused the API token in {TOKEN_ENV}: not one it knows, or expired or revoked",
            (f"unset {TOKEN_ENV} to send the one 'edgefleet login' kept, or set it to a valid token ({make})")
            if kept
            else f"set {TOKEN_ENV} to a valid token, or unset it and run 'edgefleet login --token <token>' ({make})",
        )
    return (
        f"the controller at {api} refused the API token 'edgefleet login' kept in {source}: not one it knows "
        "(one of another controller?), or expired or revoked",
        f"edgefleet login --token <a valid token> ({make})",
    )


def login(token: Annotated[str, typer.Option("--token", help="The API token to send from now on.")]) -> None:
    """Keep an API token for every later command (in a file only you may read)."""
    from edgefleet.cli.output import fail, show

    token = token.strip()
    if not token:
        fail("the token is empty", hint="pass the token 'edgefleet tokens create' printed: --token ef_...")
    folder = config_dir()
    path = folder / TOKEN_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before anything is written, so the token is never readable by others, not even briefly.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
    except OSError as exc:
        fail(f"cannot keep the token in {path}: {exc.strerror}", hint=f"or set {TOKEN_ENV} instead")
    show(f"Kept the token in {path}; {TOKEN_ENV}, when set, still wins.")


def tokens_create(
    name: Annotated[str, typer.Option("--name", help="Who holds it: recorded as the actor of what it does.")],
    role: Annotated[str, typer.Option("--role", help="admin, release-manager, ops, site-staff or viewer.")],
    site: Annotated[list[str] | None, typer.Option("--site", help="A site a site-staff token covers (repeat).")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="How long it lasts: 30d, 12h, 2w (default: never).")
    ] = None,
    database: DatabaseOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create an API token and print it, once: it is stored only as a hash."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, is_data, print_data, show
    from edgefleet.cloud.access.authorizing import ROLES, PrincipalError
    from edgefleet.cloud.access.tokens import TokenError, parse_expiry
    from edgefleet.ids import SiteId

    chosen = next((r for r in ROLES if r == role), None)
    if chosen is None:
        fail(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    with ControllerDatabase(database) as database_store:
        store = _token_store(database_store)
        try:
            expires_in_s = None if expires is None else parse_expiry(expires)
            sites = frozenset(SiteId(s) for s in site) if site else None
            secret, record = store.create(
                name, chosen, sites, now=time.time(), expires_in_s=expires_in_s, actor=_database_user()
            )
        except (TokenError, PrincipalError) as exc:
            fail(escape(str(exc)))
    if is_data(output):
        print_data({**_public(record, now=record.created_at), "token": secret}, output)
        return
    show(f"Created token {escape(name)} ({record.role}). It is shown this once; keep it:", secret)


def tokens_list(database: DatabaseOption = None, output: OutputOption = OutputFormat.TABLE) -> None:
    """The API tokens with their role, sites and state (never their secret)."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    now = time.time()
    with ControllerDatabase(database) as database_store:
        store = _token_store(database_store)
        records = store.tokens()
    items = [_public(r, now=now) for r in records]
    if is_data(output):
        print_data(items, output)
        return
    table = new_table("NAME", "ROLE", "SITES", "STATE", "EXPIRES")
    for item in items:
        table.add_row(
            escape(item["name"]),
            item["role"],
            escape(",".join(item["sites"] or ["*"])),
            item["state"],
            "never" if item["expires_at"] is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["expires_at"])),
        )
    show(table)


def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], database: DatabaseOption = None
) -> None:
    """Revoke an API token: from now on it admits no one (its name stays taken)."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, show
    from edgefleet.cloud.access.tokens import TokenError

    with ControllerDatabase(database) as database_store:
        store = _token_store(database_store)
        try:
            store.revoke(name, now=time.time(), actor=_database_user())
        except TokenError as exc:
            fail(escape(str(exc)))
    show(f"Revoked token {escape(name)}.")


def _database_user() -> Actor:
    """Who the audit log names for a token created or revoked here: the command reaches the database with no token
    of its own, so the operating system's user and host are all that is known of who ran it (no role: whoever can
    reach the database stands above every role)."""
    import getpass
    import socket

    from edgefleet.cloud.access.audit_log import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container): say which uid it was
        user = f"uid {os.getuid()}"
    return Actor(user, None, f"edgefleet tokens on {socket.gethostname()}")


def _public(record: TokenRecord, *, now: float) -> dict[str, Any]:
    return {
        "name": record.name,
        "role": record.role,
        "sites": None if record.sites is None else sorted(record.sites),
        "state": record.state(now),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _token_store(store: Store) -> TokenStore:
    from edgefleet.cloud.access.token_store import TokenStore

    return TokenStore(store)
