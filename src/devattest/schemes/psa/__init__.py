"""Arm PSA attestation tokens (RFC 9783), with the legacy ``http://arm.com/psa/2.0.0`` and
``PSA_IOT_PROFILE_1`` profiles.

* :class:`PsaScheme`: the evidence scheme (media types
  ``application/eat+cwt; eat_profile="tag:psacertified.org,2023:psa#tfm"`` and
  ``application/psa-attestation-token``).
* :func:`create_psa_token` / :func:`encode_psa_claims`: build tokens from a YAML-ish dict.
* :func:`psa_instance_id`: the Instance ID a key implies.
"""

from devattest.schemes.psa._claims import (
    ParsedPsa,
    debug_enabled,
    detect_profile,
    lifecycle_finding,
    parse_psa_claims,
)
from devattest.schemes.psa._create import (
    as_bytes,
    create_psa_token,
    encode_psa_claims,
    psa_claims_map,
)
from devattest.schemes.psa._profiles import (
    CLAIM_NAMES,
    IOT_1,
    MEDIA_TYPE_EAT_CWT,
    MEDIA_TYPE_PSA,
    PROFILE_IOT_1,
    PROFILE_PSA_2_0_0,
    PROFILE_RFC9783,
    PSA_2_0_0,
    RFC9783,
    PsaProfile,
)
from devattest.schemes.psa._scheme import PsaEvidence, PsaScheme, psa_instance_id

__all__ = [
    "CLAIM_NAMES",
    "IOT_1",
    "MEDIA_TYPE_EAT_CWT",
    "MEDIA_TYPE_PSA",
    "PROFILE_IOT_1",
    "PROFILE_PSA_2_0_0",
    "PROFILE_RFC9783",
    "PSA_2_0_0",
    "RFC9783",
    "ParsedPsa",
    "PsaEvidence",
    "PsaProfile",
    "PsaScheme",
    "as_bytes",
    "create_psa_token",
    "debug_enabled",
    "detect_profile",
    "encode_psa_claims",
    "lifecycle_finding",
    "parse_psa_claims",
    "psa_claims_map",
    "psa_instance_id",
]
