"""The newest migration builds exactly the schema the models declare: alembic's autogenerate comparison of a
database upgraded to head with ``model_metadata()`` finds no difference. A model changed without its migration
script fails here (docs/operations.md, "Changing the schema"). SQLite, and PostgreSQL when set."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from edgefleet.cloud.migrating import model_metadata, upgrade_schema
from edgefleet.cloud.store import Store


def differences(store: Store, metadata: sa.MetaData) -> list[object]:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def test_a_database_at_head_has_the_models_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade_schema(store)
        assert differences(store, model_metadata()) == []
    finally:
        store.close()


def test_a_model_change_without_a_migration_is_a_difference(database_url: str) -> None:
    """The comparison above can fail: a column added to a model, an index dropped, a length changed show up."""
    store = Store(database_url)
    try:
        upgrade_schema(store)
        changed = model_metadata()
        changed.tables["box_state"].append_column(sa.Column("rack", sa.String(16), nullable=True))
        rollout = changed.tables["rollout"]
        rollout.indexes.remove(next(i for i in rollout.indexes if i.name == "ix_rollout_created_at"))
        changed.tables["site_hold"].c.held_by.type = sa.String(length=64)
        found = {(d[0], d[2]) if d[0] in {"add_column"} else d[0] for d in map(_first, differences(store, changed))}
        assert {("add_column", "box_state"), "remove_index", "modify_type"} <= found
    finally:
        store.close()


def _first(difference: object) -> tuple[object, ...]:
    # Column type changes come as a list of one tuple per column; the others as one tuple.
    return tuple(difference[0] if isinstance(difference, list) else difference)  # type: ignore[index, arg-type]
