"""alembic's environment for the controller's database: run inside the connection (and its transaction) that
``edgefleet.cloud.migrating`` hands over in ``config.attributes["connection"]``; the target metadata is the
controller's tables, so ``alembic revision --autogenerate`` (docs/operations.md) writes the next script."""

from __future__ import annotations

from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from edgefleet.cloud.migrating import model_metadata


def render_item(kind: str, item: object, _context: AutogenContext) -> str | Literal[False]:
    """SQLModel's string type written as plain SQLAlchemy, so a new script needs no sqlmodel import."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "edgefleet's migrations run through 'edgefleet cloud migrate' (edgefleet.cloud.migrating), "
        "which hands alembic its database connection"
    )
context.configure(
    connection=connection,
    target_metadata=model_metadata(),
    # SQLite alters a table by copying it (batch mode); PostgreSQL alters in place.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
