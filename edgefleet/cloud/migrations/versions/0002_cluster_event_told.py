"""The Events of central clusters already told (``edgefleet.cloud.event_forwarding``), so a restarted controller
tells none again.

Revision ID: 0002_cluster_event_told
Revises: 0001_baseline
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_cluster_event_told"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_event_told",
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("told_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "key"),
    )


def downgrade() -> None:
    op.drop_table("cluster_event_told")
