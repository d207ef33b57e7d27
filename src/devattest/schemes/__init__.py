"""Evidence-format plugins keyed by media type: ``psa``, ``eat``, ``tpm``, and the copy-me
``example`` scheme."""

from devattest.schemes._base import DecodedEvidence, EvidenceScheme
from devattest.schemes.registry import SchemeRegistry, default_registry, normalise_media_type

__all__ = [
    "DecodedEvidence",
    "EvidenceScheme",
    "SchemeRegistry",
    "default_registry",
    "normalise_media_type",
]
