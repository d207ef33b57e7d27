"""write path: one redundant index dropped; wide rows kept inline on PostgreSQL

Revision ID: pf01
Revises: da01
Create Date: 2026-11-25

Measured in a fleet wave (BENCHMARKS.md, "Fleet wave"):

* ``ix_device_lifecycle_posture`` is covered by ``ix_device_lifecycle_posture_device_id``
  (posture first), yet every lifecycle update, twice per attestation, wrote an entry in it.
* An attestation row and an Evidence receipt each carry the signed EAR (about 2.4 KB of
  base64url, which does not compress). Past PostgreSQL's 2 KB threshold every such row had
  its EAR put through pglz, fail to compress, and go out of line into the TOAST table (a
  second heap row and index entry). With ``toast_tuple_target`` at its maximum, rows up to
  about 8 KB stay in the table page as they are; larger ones are still toasted.
"""

from __future__ import annotations

from alembic import op

revision = "pf01"
down_revision = "da01"
branch_labels = None
depends_on = None

_WIDE_TABLES = ("attestations", "evidence_receipts")


def upgrade() -> None:
    with op.batch_alter_table("device_lifecycle", schema=None) as batch_op:
        batch_op.drop_index("ix_device_lifecycle_posture")
    if op.get_bind().dialect.name == "postgresql":
        for table in _WIDE_TABLES:
            op.execute(f"ALTER TABLE {table} SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _WIDE_TABLES:
            op.execute(f"ALTER TABLE {table} RESET (toast_tuple_target)")
    with op.batch_alter_table("device_lifecycle", schema=None) as batch_op:
        batch_op.create_index("ix_device_lifecycle_posture", ["posture"], unique=False)
