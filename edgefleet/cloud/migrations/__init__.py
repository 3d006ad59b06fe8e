"""The controller's schema migrations, as alembic scripts (``versions/``), run by ``edgefleet.cloud.migrating``.

Each script is frozen once released: it names its columns itself and never imports the models, which move on.
"""
