"""The controller's database, for the commands that act there directly rather than through the API (``edgefleet
tokens``, ``users``, ``enrollment``): whoever can reach the database is an admin already, and the first admin's
token or sign-in has to come from somewhere."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edgefleet.cloud.store import Store

DatabaseOption = Annotated[
    str | None,
    typer.Option(help="sqlite:///PATH or postgresql://... \\[env EDGEFLEET_DATABASE_URL].", show_default=False),
]


class ControllerDatabase:
    """The database named by ``--database`` or ``EDGEFLEET_DATABASE_URL``, upgraded to this release's schema first
    (as 'cloud serve' would), closed on leaving. A bad or missing URL is one line saying how to give it."""

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.store: Store | None = None

    def __enter__(self) -> Store:
        from rich.markup import escape

        from edgefleet.cli.output import fail
        from edgefleet.cloud.migrating import upgrade_schema
        from edgefleet.cloud.settings import ENV_DATABASE_URL, Settings
        from edgefleet.cloud.store import Store

        try:
            only_database = {k: v for k, v in os.environ.items() if k == ENV_DATABASE_URL}
            settings = Settings.from_env(only_database, database_url=self.database)
        except ValueError as exc:
            fail(escape(str(exc)), hint=f"set {ENV_DATABASE_URL} to the controller's database, or pass --database")
        self.store = Store(settings.database_url)
        upgrade_schema(self.store)
        return self.store

    def __exit__(self, *_: object) -> None:
        if self.store is not None:
            self.store.close()
