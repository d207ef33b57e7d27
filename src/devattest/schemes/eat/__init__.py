"""Entity Attestation Tokens (RFC 9711) in CWT form, generic and with the constrained device
profile ``urn:ietf:rfc:rfc9711``.

* :class:`EatScheme`: media types ``application/eat+cwt`` and
  ``application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"`` (RFC 9782).
* :func:`parse_eat_claims`: typed claims (:class:`EatClaimsSet`).
* :func:`create_eat`: build a token.
"""

from devattest.schemes.eat._claims import (
    CLAIM_KEYS,
    CLAIM_NAMES,
    DebugStatus,
    Dloa,
    EatClaimsSet,
    FormatBody,
    IntendedUse,
    Location,
    MeasurementResult,
    MeasurementResults,
    Submodule,
    Version,
    parse_eat_claims,
    readable,
)
from devattest.schemes.eat._create import create_eat, eat_claims_map, encode_eat_claims
from devattest.schemes.eat._preferred import first_non_preferred
from devattest.schemes.eat._scheme import (
    MEDIA_TYPE_EAT_CWT,
    MEDIA_TYPE_EAT_CWT_CONSTRAINED,
    PROFILE_CONSTRAINED,
    PROFILE_GENERIC,
    EatConstrainedScheme,
    EatEvidence,
    EatScheme,
)

__all__ = [
    "CLAIM_KEYS",
    "CLAIM_NAMES",
    "MEDIA_TYPE_EAT_CWT",
    "MEDIA_TYPE_EAT_CWT_CONSTRAINED",
    "PROFILE_CONSTRAINED",
    "PROFILE_GENERIC",
    "DebugStatus",
    "Dloa",
    "EatClaimsSet",
    "EatConstrainedScheme",
    "EatEvidence",
    "EatScheme",
    "FormatBody",
    "IntendedUse",
    "Location",
    "MeasurementResult",
    "MeasurementResults",
    "Submodule",
    "Version",
    "create_eat",
    "eat_claims_map",
    "encode_eat_claims",
    "first_non_preferred",
    "parse_eat_claims",
    "readable",
]
