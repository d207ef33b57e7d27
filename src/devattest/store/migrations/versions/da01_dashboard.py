"""dashboard: login sessions, fleet posture samples, and indexes for the dashboard's queries

Revision ID: da01
Revises: lc01
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from devattest.store._types import UTCDateTime

revision = "da01"
down_revision = "lc01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_dashboard_sessions")),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_dashboard_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "fleet_posture_samples",
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("trusted", sa.Integer(), nullable=False),
        sa.Column("warning", sa.Integer(), nullable=False),
        sa.Column("untrusted", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("at", name=op.f("pk_fleet_posture_samples")),
    )

    # Keyset pages of devices by posture; firmware-version aggregates (index-only);
    # recently changed devices for the live view; devices without a lifecycle record by status.
    with op.batch_alter_table("device_lifecycle", schema=None) as batch_op:
        batch_op.create_index("ix_device_lifecycle_posture_device_id",
                              ["posture", "device_id"], unique=False)
        batch_op.create_index("ix_device_lifecycle_firmware_posture",
                              ["firmware_version", "posture"], unique=False)
        batch_op.create_index("ix_device_lifecycle_updated_at", ["updated_at"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index("ix_devices_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_status_id")
    with op.batch_alter_table("device_lifecycle", schema=None) as batch_op:
        batch_op.drop_index("ix_device_lifecycle_updated_at")
        batch_op.drop_index("ix_device_lifecycle_firmware_posture")
        batch_op.drop_index("ix_device_lifecycle_posture_device_id")
    op.drop_table("fleet_posture_samples")
    op.drop_table("dashboard_sessions")
