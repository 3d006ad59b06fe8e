"""``edgefleet enrollment create|list``: single-use enrollment tokens with which new boxes get their broker login.

Like ``edgefleet tokens``, it reaches the controller's database directly (``EDGEFLEET_DATABASE_URL`` or
``--database``) and needs no API token: whoever can reach the database is an admin already. Through the API,
``POST /api/v1/sites/{site}/enrollment-tokens`` does the same for admins and the site's staff. A token is printed
once (it is stored only as a hash); the box redeems it with ``edgefleet agent enroll`` (docs/security.md).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from edgefleet.cli.database import ControllerDatabase, DatabaseOption
from edgefleet.cli.output import OutputFormat, OutputOption


def register(app: typer.Typer) -> None:
    enrollment = typer.Typer(
        help="Enrollment tokens for new boxes: 'create' one (shown once), 'list' them.", add_completion=False
    )
    enrollment.command("create")(enrollment_create)
    enrollment.command("list")(enrollment_list)
    app.add_typer(enrollment, name="enrollment", help="Enrollment tokens for new boxes: create (shown once), list.")


def enrollment_create(
    site: Annotated[str, typer.Option("--site", help="The site whose new box the token enrolls.")],
    expires: Annotated[str, typer.Option("--expires", help="How long it lasts: 1h, 90m, 2d (at most 7d).")] = "1h",
    database: DatabaseOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a single-use enrollment token for one new box of SITE and print it, once."""
    from rich.markup import escape

    from edgefleet.cli.output import fail, is_data, print_data, show
    from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokenError, EnrollmentTokens
    from edgefleet.cloud.access.tokens import TokenError, parse_expiry

    with ControllerDatabase(database) as store:
        try:
            secret, record = EnrollmentTokens(store).create(
                site, created_by="cli", now=time.time(), expires_in_s=parse_expiry(expires)
            )
        except (TokenError, EnrollmentTokenError) as exc:
            fail(escape(str(exc)))
    if is_data(output):
        print_data({**_public(record, now=record.created_at), "token": secret}, output)
        return
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(record.expires_at))
    show(
        f"Created enrollment token {record.id} for site {escape(site)}, usable once until {until}. "
        "It is shown this once; on the box run: edgefleet agent enroll --token TOKEN --controller URL --box BOX",
        secret,
    )


def enrollment_list(database: DatabaseOption = None, output: OutputOption = OutputFormat.TABLE) -> None:
    """The enrollment tokens with their site and state (never their secret)."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show
    from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens

    now = time.time()
    with ControllerDatabase(database) as store:
        records = EnrollmentTokens(store).tokens()
    items = [_public(r, now=now) for r in records]
    if is_data(output):
        print_data(items, output)
        return
    table = new_table("ID", "SITE", "STATE", "EXPIRES", "USED BY")
    for item in items:
        table.add_row(
            item["id"],
            escape(item["site"]),
            item["state"],
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["expires_at"])),
            escape(item["used_by"] or "-"),
        )
    show(table)


def _public(record: Any, *, now: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "site": record.site,
        "state": record.state(now),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "used_at": record.used_at,
        "used_by": record.used_by,
    }
