"""device binding: the history records which identity an attestation bound a device to

Revision ID: bd01
Revises: pf01
Create Date: 2026-12-07

A device registered without an Instance ID is bound on its first affirming attestation
(issue 13 item 10): ``devices.instance_id`` is set, and that attestation's history row
records the identity in ``attestations.bound_identity`` (its ``id`` and ``created_at`` say
from which attestation and when). One nullable column: no rewrite of existing rows on
either database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "bd01"
down_revision = "pf01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bound_identity", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.drop_column("bound_identity")
