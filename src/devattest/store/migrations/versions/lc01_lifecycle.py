"""lifecycle: device_lifecycle, lifecycle_events, evidence_receipts

Revision ID: lc01
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from devattest.store._types import UTCDateTime

revision = "lc01"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "device_lifecycle",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=False),
        sa.Column("firmware_version", sa.String(length=200), nullable=False),
        sa.Column("latest_status", sa.String(length=20), nullable=True),
        sa.Column("latest_at", UTCDateTime(), nullable=True),
        sa.Column("latest_requested_at", UTCDateTime(), nullable=True),
        sa.Column("latest_reasons", sa.JSON(), nullable=False),
        sa.Column("latest_challenge_id", sa.String(length=32), nullable=True),
        sa.Column("next_deadline", UTCDateTime(), nullable=True),
        sa.Column("posture", sa.String(length=16), nullable=False),
        sa.Column("posture_reason", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_device_lifecycle_device_id_devices"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_lifecycle")),
    )
    with op.batch_alter_table("device_lifecycle", schema=None) as batch_op:
        batch_op.create_index("ix_device_lifecycle_next_deadline", ["next_deadline"],
                              unique=False)
        batch_op.create_index("ix_device_lifecycle_posture", ["posture"], unique=False)

    op.create_table(
        "lifecycle_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=True),
        sa.Column("satisfied_at", UTCDateTime(), nullable=True),
        sa.Column("satisfied_by_challenge", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_lifecycle_events_device_id_devices"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_lifecycle_events_event_id")),
    )
    with op.batch_alter_table("lifecycle_events", schema=None) as batch_op:
        batch_op.create_index("ix_lifecycle_events_device_id_id", ["device_id", "id"],
                              unique=False)
        batch_op.create_index("ix_lifecycle_events_pending", ["device_id", "satisfied_at"],
                              unique=False)

    op.create_table(
        "evidence_receipts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("challenge_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_evidence_receipts")),
    )
    with op.batch_alter_table("evidence_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_evidence_receipts_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("evidence_receipts")
    op.drop_table("lifecycle_events")
    op.drop_table("device_lifecycle")
