"""The leader lease (``edgefleet.cloud.leading``): one row, the fencing epoch, the holder and its lease's end, by the
database's clock. Created on every database; only PostgreSQL replicas elect through it (SQLite has one controller).

Revision ID: 0007_leader_lease
Revises: 0006_audit_log
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007_leader_lease"
down_revision: str | None = "0006_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    lease = op.create_table(
        "leader_lease",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=63), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("epoch"),
    )
    # The one row, long expired: the first candidate takes it over as epoch 1.
    op.bulk_insert(lease, [{"id": 1, "epoch": 0, "expires_at": datetime(1970, 1, 1, tzinfo=UTC)}])


def downgrade() -> None:
    op.drop_table("leader_lease")
