"""Frozen data model shared by every layer: Evidence, Claims, Trust Anchors, Reference
Values and Attestation Results."""

from devattest.model.anchors import CertificateAnchor, KeyAnchor, TrustAnchors
from devattest.model.evidence import Claims, Finding, KeyHints, SoftwareComponent
from devattest.model.limits import DEFAULT_LIMITS, DEFAULT_OPTIONS, DecodeLimits, VerifyOptions
from devattest.model.refvals import ComponentReference, ReferenceValues, ReferenceValueSet
from devattest.model.result import (
    Appraisal,
    AttestationResult,
    Status,
    TrustVector,
    VerifierId,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_OPTIONS",
    "Appraisal",
    "AttestationResult",
    "CertificateAnchor",
    "Claims",
    "ComponentReference",
    "DecodeLimits",
    "Finding",
    "KeyAnchor",
    "KeyHints",
    "ReferenceValueSet",
    "ReferenceValues",
    "SoftwareComponent",
    "Status",
    "TrustAnchors",
    "TrustVector",
    "VerifierId",
    "VerifyOptions",
]
