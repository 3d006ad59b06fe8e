"""One alembic script per schema change, oldest first (``0001_baseline`` is the schema of release 0.1.0)."""
