"""The schema of release 0.1.0, the last one without migrations: box state, health history, unknown boxes,
alerts, silences, the alert outbox and the notifier's state, rollouts, their sites, site holds and the audit.

Each table is created only when it is missing. A database of 0.1.0 (made by its ``create_schema()`` calls) has
them all and is adopted as it stands, its rows untouched; an empty database gets them all.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "alert" not in existing:
        op.create_table(
            "alert",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("fingerprint", sa.String(length=32), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("site", sa.String(length=63), nullable=False),
            sa.Column("box", sa.String(length=63), nullable=True),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.Column("severity", sa.String(length=16), nullable=False),
            sa.Column("summary", sa.Text(), nullable=False),
            sa.Column("description", sa.Text(), nullable=False),
            sa.Column("labels", sa.Text(), nullable=False),
            sa.Column("details", sa.Text(), nullable=False),
            sa.Column("started_at", sa.Float(), nullable=False),
            sa.Column("fired_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("muted", sa.String(length=16), nullable=True),
            sa.Column("muted_by", sa.Text(), nullable=False),
            sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
            sa.Column("acknowledged_at", sa.Float(), nullable=True),
            sa.Column("resolved_by", sa.String(length=200), nullable=True),
            sa.Column("resolved_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_alert_fingerprint_fired_at", "alert", ["fingerprint", "fired_at"], unique=False)
        op.create_index("ix_alert_site_fired_at", "alert", ["site", "fired_at"], unique=False)
        op.create_index("ix_alert_state_fired_at", "alert", ["state", "fired_at"], unique=False)
    if "alert_notifier_state" not in existing:
        op.create_table(
            "alert_notifier_state",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("sequence", sa.BigInteger(), nullable=False),
            sa.Column("state", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "alert_outbox" not in existing:
        op.create_table(
            "alert_outbox",
            sa.Column(
                "position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
            ),
            sa.Column("message_id", sa.String(length=200), nullable=False),
            sa.Column("channel_kind", sa.String(length=16), nullable=False),
            sa.Column("channel_name", sa.String(length=63), nullable=False),
            sa.Column("groups", sa.Text(), nullable=False),
            sa.Column("alerts", sa.Integer(), nullable=False),
            sa.Column("listed", sa.Integer(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("state", sa.String(length=10), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.Float(), nullable=False),
            sa.Column("last_attempt_at", sa.Float(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("delivered_at", sa.Float(), nullable=True),
            sa.Column("failed_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("position"),
            sa.UniqueConstraint("message_id"),
        )
        op.create_index("ix_alert_outbox_state_position", "alert_outbox", ["state", "position"], unique=False)
    if "box_state" not in existing:
        op.create_table(
            "box_state",
            sa.Column("site", sa.String(length=63), nullable=False),
            sa.Column("boot", sa.String(length=64), nullable=True),
            sa.Column("boot_started_at", sa.Float(), nullable=True),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("first_seen", sa.Float(), nullable=True),
            sa.Column("last_seen", sa.Float(), nullable=True),
            sa.Column("clock_skew_s", sa.Float(), nullable=True),
            sa.Column("status_state", sa.String(length=8), nullable=True),
            sa.Column("status_reason", sa.String(length=256), nullable=True),
            sa.Column("status_session", sa.BigInteger(), nullable=False),
            sa.Column("status_at", sa.Float(), nullable=True),
            sa.Column("status_boot", sa.String(length=64), nullable=True),
            sa.Column("status_seq", sa.BigInteger(), nullable=False),
            sa.Column("heartbeat", sa.LargeBinary(), nullable=True),
            sa.Column("box", sa.String(length=63), nullable=False),
            sa.PrimaryKeyConstraint("box"),
        )
    if "health_rollup" not in existing:
        op.create_table(
            "health_rollup",
            sa.Column("box", sa.String(length=63), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("cpu_percent", sa.Float(), nullable=True),
            sa.Column("memory_used_percent", sa.Float(), nullable=True),
            sa.Column("disk_used_percent", sa.Float(), nullable=True),
            sa.Column("gpu_temperature_max_c", sa.Float(), nullable=True),
            sa.Column("gpu_utilization_avg_percent", sa.Float(), nullable=True),
            sa.Column("samples", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("box", "at"),
        )
        op.create_index("ix_health_rollup_at", "health_rollup", ["at"], unique=False)
    if "health_sample" not in existing:
        op.create_table(
            "health_sample",
            sa.Column("box", sa.String(length=63), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("cpu_percent", sa.Float(), nullable=True),
            sa.Column("memory_used_percent", sa.Float(), nullable=True),
            sa.Column("disk_used_percent", sa.Float(), nullable=True),
            sa.Column("gpu_temperature_max_c", sa.Float(), nullable=True),
            sa.Column("gpu_utilization_avg_percent", sa.Float(), nullable=True),
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_health_sample_at", "health_sample", ["at"], unique=False)
        op.create_index("ix_health_sample_box_at", "health_sample", ["box", "at"], unique=False)
    if "rollout" not in existing:
        op.create_table(
            "rollout",
            sa.Column("id", sa.String(length=63), nullable=False),
            sa.Column("app", sa.String(length=63), nullable=False),
            sa.Column("release_name", sa.String(length=253), nullable=False),
            sa.Column("release_yaml", sa.Text(), nullable=False),
            sa.Column("spec", sa.Text(), nullable=False),
            sa.Column("status", sa.Text(), nullable=False),
            sa.Column("gates", sa.Text(), nullable=False),
            sa.Column("state", sa.String(length=32), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("created_by", sa.String(length=128), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.Column("idempotency_key", sa.String(length=255), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_rollout_created_at", "rollout", ["created_at"], unique=False)
        op.create_index(
            "ux_rollout_active_app",
            "rollout",
            ["app"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )
        op.create_index("ux_rollout_idempotency_key", "rollout", ["idempotency_key"], unique=True)
    if "rollout_audit" not in existing:
        op.create_table(
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
    if "rollout_site" not in existing:
        op.create_table(
            "rollout_site",
            sa.Column("rollout_id", sa.String(length=63), nullable=False),
            sa.Column("site", sa.String(length=63), nullable=False),
            sa.Column("previous_release", sa.String(length=253), nullable=True),
            sa.Column("previous_yaml", sa.Text(), nullable=True),
            sa.Column("baseline", sa.Text(), nullable=True),
            sa.Column("recorded_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("rollout_id", "site"),
        )
    if "silence" not in existing:
        op.create_table(
            "silence",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("site", sa.String(length=63), nullable=True),
            sa.Column("box", sa.String(length=63), nullable=True),
            sa.Column("kind", sa.String(length=32), nullable=True),
            sa.Column("starts_at", sa.Float(), nullable=False),
            sa.Column("ends_at", sa.Float(), nullable=False),
            sa.Column("planned_ends_at", sa.Float(), nullable=False),
            sa.Column("created_by", sa.String(length=200), nullable=False),
            sa.Column("comment", sa.Text(), nullable=False),
            sa.Column("ended_by", sa.String(length=200), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_silence_ends_at", "silence", ["ends_at"], unique=False)
    if "site_hold" not in existing:
        op.create_table(
            "site_hold",
            sa.Column("site", sa.String(length=63), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("held_by", sa.String(length=128), nullable=False),
            sa.Column("since", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("site"),
        )
    if "unknown_box" not in existing:
        op.create_table(
            "unknown_box",
            sa.Column("box", sa.String(length=63), nullable=False),
            sa.Column("claimed_site", sa.String(length=63), nullable=True),
            sa.Column("first_seen", sa.Float(), nullable=False),
            sa.Column("last_seen", sa.Float(), nullable=False),
            sa.Column("messages", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("box"),
        )


def downgrade() -> None:
    # Going below the baseline would drop every row: restore the backup taken before the upgrade instead.
    raise NotImplementedError("the baseline cannot be downgraded; restore a backup (docs/operations.md)")
