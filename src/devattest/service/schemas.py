"""API models: separate Create, Update and Public models, so secrets never leak.

Nonces are encoded base64url without padding (RFC 4648 section 5), as in JWTs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from devattest.model.text import check_text

#: Text from a client (JSON body fields): no control characters nor lone surrogates (the
#: path and query string are checked for the same in ``middleware``; issue 13, defect 5).
Text = Annotated[str, AfterValidator(check_text)]

DeviceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$",
                                examples=["sensor-0001"])]
Role = Literal["admin", "provisioner", "relying-party", "device"]
Lifecycle = Literal["provisioned", "active", "suspended", "decommissioned"]
StatusName = Literal["none", "affirming", "warning", "contraindicated"]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ChallengeCreate(BaseModel):
    """Ask for a nonce for one device."""

    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId
    nonce_size: Literal[32, 48, 64] = 32


class ChallengePublic(BaseModel):
    """A challenge. ``nonce`` is base64url without padding; put its bytes in the Evidence."""

    id: str
    device_id: str
    nonce: str
    expires_at: datetime


class EvidenceResult(BaseModel):
    """The appraisal of submitted Evidence: the signed EAR and its decoded claims."""

    attestation_id: int
    ear: str = Field(description="EAR as a JWT signed with a key in the JWKS")
    result: dict[str, Any] = Field(description="The EAR claims-set (decoded JWT payload)")


class ErrorBody(BaseModel):
    """Every error: a stable code and a message."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """Error responses; a 409 on Evidence also carries the recorded result."""

    error: ErrorBody
    attestation_id: int | None = None
    ear: str | None = None
    result: dict[str, Any] | None = None


class DeviceCreate(BaseModel):
    """Register a device."""

    model_config = ConfigDict(extra="forbid")
    id: DeviceId
    model: Text = Field(default="", max_length=200)
    owner: Text = Field(default="", max_length=200)
    lifecycle_state: Lifecycle = "active"
    instance_id: Text | None = Field(default=None, max_length=200,
                                    description="Hex Instance ID/UEID the Evidence must carry")


class DeviceUpdate(BaseModel):
    """Change inventory fields; absent fields are left alone."""

    model_config = ConfigDict(extra="forbid")
    model: Text | None = Field(default=None, max_length=200)
    owner: Text | None = Field(default=None, max_length=200)
    lifecycle_state: Lifecycle | None = None
    instance_id: Text | None = Field(default=None, max_length=200)


class DeviceBinding(BaseModel):
    """Rebind a device: the Instance ID (hex) its Evidence must come from, or null to unbind
    it (its next affirming attestation binds it again)."""

    model_config = ConfigDict(extra="forbid")
    instance_id: str | None = Field(max_length=200)


class DevicePublic(_Public):
    """A device in the inventory."""

    id: str
    model: str
    owner: str
    lifecycle_state: str
    instance_id: str | None
    status: str
    latest_attestation_id: int | None
    created_at: datetime
    updated_at: datetime


class DevicePage(BaseModel):
    """A page of devices; pass ``next_after`` as ``after`` for the next one."""

    items: list[DevicePublic]
    next_after: str | None


class AttestationPublic(_Public):
    """One history entry."""

    id: int
    device_id: str
    challenge_id: str | None
    outcome: str
    status: str
    media_type: str
    evidence_sha256: str
    reasons: list[Any]
    ear: str | None
    ear_expires_at: datetime | None
    created_at: datetime
    #: The Instance ID this attestation bound its device to (its first affirming one).
    bound_identity: str | None = None


class HistoryPage(BaseModel):
    """A page of history, newest first; pass ``next_before`` as ``before`` for the next."""

    items: list[AttestationPublic]
    next_before: int | None


class PassportResult(BaseModel):
    """The latest valid EAR of a device (RFC 9334 passport model)."""

    attestation_id: int
    ear: str
    result: dict[str, Any]
    expires_at: datetime


class ProvisionedPublic(_Public):
    """One version of a provisioned document."""

    name: str
    version: int
    content_hash: str
    media_type: str
    summary: dict[str, Any]
    created_at: datetime


class ProvisionedSubmitted(ProvisionedPublic):
    """The stored version; ``created`` is false for an idempotent re-submission."""

    created: bool


class TokenCreate(BaseModel):
    """Create an API token. A ``device`` token needs ``device_id``."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    device_id: DeviceId | None = None
    label: Text = Field(default="", max_length=200)


class TokenPublic(_Public):
    """A token, without its secret."""

    id: str
    role: str
    device_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    """A new token: ``token`` is shown this once and never again."""

    token: str


class WebhookCreate(BaseModel):
    """Subscribe to device status changes. Without ``secret`` one is generated."""

    model_config = ConfigDict(extra="forbid")
    url: Text = Field(max_length=2000, examples=["https://rp.example/hooks/devattest"])
    secret: Text | None = Field(default=None, min_length=16, max_length=200)


class WebhookPublic(_Public):
    """A subscription, without its secret."""

    id: str
    url: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    """A new subscription: the HMAC ``secret`` is shown this once."""

    secret: str


class DeliveryPublic(_Public):
    """A webhook delivery and its retry state."""

    id: int
    webhook_id: str
    event: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeadLetterPublic(_Public):
    """A delivery that exhausted its retries."""

    id: int
    delivery_id: int
    webhook_id: str
    url: str
    event: str
    payload: str
    attempts: int
    last_error: str | None
    created_at: datetime


class RetentionReport(BaseModel):
    """Rows removed by a retention run."""

    attestations: int
    challenges: int
    #: Evidence receipts (MQTT redelivery) whose challenge was gone.
    receipts: int
    deliveries: int
