"""The one audit log (``edgefleet.cloud.access.audit_log``): every state-changing action, whoever takes it. The
rollout audit's rows move into it, in their order (principal: who; action: the first word of what; target: the
rollout, or the site a hold named), and the ``rollout_audit`` table goes: one audit, not two.

Revision ID: 0006_audit_log
Revises: 0005_enrollment
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_log"
down_revision: str | None = "0005_enrollment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the rollout store wrote for site holds before this revision: the only entries that name a site.
_HOLD = re.compile(r"^(hold|release) site (?P<site>\S+)$")


def upgrade() -> None:
    audit_log = op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=253), nullable=True),
        sa.Column("site", sa.String(length=63), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_site", "audit_log", ["site"], unique=False)
    op.create_index("ix_audit_log_target", "audit_log", ["target_kind", "target_id"], unique=False)
    connection = op.get_bind()
    old = sa.table(
        "rollout_audit",
        sa.column("id", sa.Integer()),
        sa.column("rollout_id", sa.String()),
        sa.column("at", sa.Float()),
        sa.column("who", sa.String()),
        sa.column("what", sa.Text()),
        sa.column("before", sa.Text()),
        sa.column("after", sa.Text()),
    )
    rows = [_moved(row) for row in connection.execute(sa.select(old).order_by(old.c.id))]
    if rows:
        # Without their ids: new ones follow the old order, and PostgreSQL's sequence stays right.
        op.bulk_insert(audit_log, rows)
    op.drop_index("ix_rollout_audit_rollout_at", table_name="rollout_audit")
    op.drop_table("rollout_audit")


def _moved(row: Any) -> dict[str, Any]:
    hold = _HOLD.match(row.what)
    site = hold["site"] if hold and row.rollout_id is None else None
    return {
        "at": row.at,
        "principal": row.who,
        "role": None,
        "action": (row.what.split(" ", 1)[0].lower() or "unknown")[:64],
        "target_kind": "rollout" if row.rollout_id is not None else ("site" if site else None),
        "target_id": row.rollout_id if row.rollout_id is not None else site,
        "site": site,
        "summary": row.what,
        "before": None if row.before is None else json.dumps(row.before),
        "after": None if row.after is None else json.dumps(row.after),
        "source": None,
    }


def downgrade() -> None:
    rollout_audit = op.create_table(
        "rollout_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(length=63), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollout_audit_rollout_at", "rollout_audit", ["rollout_id", "at"], unique=False)
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer()),
        sa.column("at", sa.Float()),
        sa.column("principal", sa.String()),
        sa.column("target_kind", sa.String()),
        sa.column("target_id", sa.String()),
        sa.column("summary", sa.Text()),
        sa.column("before", sa.Text()),
        sa.column("after", sa.Text()),
    )
    rows = [
        {
            "rollout_id": row.target_id if row.target_kind == "rollout" else None,
            "at": row.at,
            "who": row.principal,
            "what": row.summary,
            "before": _text(row.before),
            "after": _text(row.after),
        }
        for row in op.get_bind().execute(sa.select(log).order_by(log.c.id))
    ]
    if rows:
        op.bulk_insert(rollout_audit, rows)
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_audit_log_site", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")


def _text(value: str | None) -> str | None:
    """The old table kept text: a JSON string goes back as itself, anything else as its JSON."""
    if value is None:
        return None
    decoded = json.loads(value)
    return decoded if isinstance(decoded, str) else value
