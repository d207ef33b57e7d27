"""The relational schema, as typed SQLAlchemy 2 ORM classes.

The Alembic migrations in ``migrations/versions`` create exactly these tables; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from devattest.store._types import UTCDateTime

#: Deterministic constraint names, so migrations can refer to them on both dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: An auto-increment 64-bit key on PostgreSQL that is still SQLite's ROWID alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class ApiToken(Base):
    """A bearer API token. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    #: For role ``device``: the only device this token may act for.
    device_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Device(Base):
    """One device in the inventory."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), default="", index=True)
    owner: Mapped[str] = mapped_column(String(200), default="", index=True)
    lifecycle_state: Mapped[str] = mapped_column(String(32), default="active")
    #: Expected Instance ID / UEID (hex); when set, Evidence must come from this identity.
    #: Set at registration, by the first affirming attestation (device binding, recorded
    #: in ``attestations.bound_identity``), or by a provisioner's rebinding.
    instance_id: Mapped[str | None] = mapped_column(String(200))
    #: Status of the latest appraisal (``none`` before the first one).
    status: Mapped[str] = mapped_column(String(20), default="none")
    latest_attestation_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Challenge(Base):
    """A nonce issued to one device, consumable exactly once before it expires."""

    __tablename__ = "challenges"
    __table_args__ = (Index("ix_challenges_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]


class Attestation(Base):
    """One entry of the attestation history: every submission, accepted or not."""

    __tablename__ = "attestations"
    __table_args__ = (
        Index("ix_attestations_device_id_id", "device_id", "id"),
        Index("ix_attestations_status_id", "status", "id"),
        Index("ix_attestations_created_at", "created_at"),
        Index("ix_attestations_evidence_sha256", "evidence_sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(128))
    challenge_id: Mapped[str | None] = mapped_column(String(32))
    #: ``appraised``, or why the Evidence was not appraised: ``nonce_replayed``,
    #: ``nonce_expired``.
    outcome: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    media_type: Mapped[str] = mapped_column(String(200))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ear: Mapped[str | None] = mapped_column(Text)
    ear_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: The Instance ID (hex) this attestation bound its device to: set on the first
    #: affirming attestation of a device registered without one (device binding).
    bound_identity: Mapped[str | None] = mapped_column(String(200), default=None)


class _Versioned:
    """Columns shared by provisioned material: named, versioned, content-addressed."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    #: SHA-256 (hex) of ``media_type`` and ``content``: equal submissions are idempotent.
    content_hash: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    #: A JSON description of what the content holds (for listings).
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class TrustAnchorRecord(_Versioned, Base):
    """A provisioned Trust Anchor document (key, certificate, or CoRIM attest-key triples)."""

    __tablename__ = "trust_anchors"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_trust_anchors_name_version"),)


class ReferenceValueRecord(_Versioned, Base):
    """A provisioned Reference Value document (devattest JSON/YAML or CoRIM)."""

    __tablename__ = "reference_values"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_reference_values_name_version"),)


class PolicyRecord(_Versioned, Base):
    """A provisioned Appraisal Policy (Rego or a built-in composition)."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_policies_name_version"),)


class ConfigGeneration(Base):
    """A single counter bumped whenever provisioned material changes, so that every replica
    rebuilds its cached Trust Anchors, Reference Values and policies."""

    __tablename__ = "config_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class Webhook(Base):
    """A relying party's subscription to device status changes."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: The HMAC-SHA256 key. Stored as given: the service must be able to sign with it.
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event to deliver to one webhook, with its retry state."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    #: ``pending``, ``delivered`` or ``dead``.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    #: A worker that claimed the delivery owns it until then (other replicas skip it).
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookDeadLetter(Base):
    """A delivery that exhausted its retries, kept for the operator."""

    __tablename__ = "webhook_dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigId)
    webhook_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
