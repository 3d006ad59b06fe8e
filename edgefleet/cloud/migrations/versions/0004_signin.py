"""The console's sign-in: server-side sessions (``edgefleet.cloud.access.sessions``, only a hash of each secret
kept) and local users (``edgefleet.cloud.access.local_users``, argon2 password hashes).

Revision ID: 0004_signin
Revises: 0003_api_token
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_signin"
down_revision: str | None = "0003_api_token"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("sites", sa.String(), nullable=True),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_console_session_name", "console_session", ["name"])
    op.create_table(
        "local_user",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("sites", sa.String(), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("local_user")
    op.drop_index("ix_console_session_name", table_name="console_session")
    op.drop_table("console_session")
