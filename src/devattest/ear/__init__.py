"""Attestation Results as EAR (draft-ietf-rats-ear-03): claims-sets, JWT and CWT signing,
and verification for Relying Parties.

* :func:`result_to_claims` / :func:`claims_to_result`: JSON claims-set (-03 names out; -03,
  -02, Veraison and Trustee names in). :func:`result_to_cbor_claims` /
  :func:`cbor_claims_to_result`: the CBOR claims-set with integer keys.
* :func:`sign_ear_jwt` / :func:`verify_ear_jwt`: JWS Compact (ES256/384/512, EdDSA).
* :func:`sign_ear_cwt` / :func:`verify_ear_cwt`: COSE_Sign1.
* :func:`public_jwks` / :func:`public_key_from_jwk`: the service's key set, and key import.

See ``docs/ear.md``.
"""

from devattest.ear._claims import (
    DEVATTEST_CBOR_KEY,
    DEVATTEST_CLAIM,
    EAR_PROFILE,
    EAR_PROFILE_02,
    KNOWN_PROFILES,
    TRUSTEE_PROFILE,
    VERAISON_PROFILE,
    cbor_claims_to_result,
    claims_to_result,
    json_safe,
    result_to_cbor_claims,
    result_to_claims,
)
from devattest.ear._cwt import sign_ear_cwt, verify_ear_cwt
from devattest.ear._jwt import DEFAULT_LEEWAY, MAX_JWT_SIZE, sign_ear_jwt, verify_ear_jwt
from devattest.ear._keys import (
    jose_alg_for_key,
    key_id,
    public_jwk,
    public_jwks,
    public_key_from_jwk,
)

#: EAR media types (draft-ietf-rats-ear-03 section 5).
EAR_JWT_MEDIA_TYPE = f'application/eat-jwt; eat_profile="{EAR_PROFILE}"'
EAR_CWT_MEDIA_TYPE = f'application/eat-cwt; eat_profile="{EAR_PROFILE}"'

__all__ = [
    "DEFAULT_LEEWAY",
    "DEVATTEST_CBOR_KEY",
    "DEVATTEST_CLAIM",
    "EAR_CWT_MEDIA_TYPE",
    "EAR_JWT_MEDIA_TYPE",
    "EAR_PROFILE",
    "EAR_PROFILE_02",
    "KNOWN_PROFILES",
    "MAX_JWT_SIZE",
    "TRUSTEE_PROFILE",
    "VERAISON_PROFILE",
    "cbor_claims_to_result",
    "claims_to_result",
    "jose_alg_for_key",
    "json_safe",
    "key_id",
    "public_jwk",
    "public_jwks",
    "public_key_from_jwk",
    "result_to_cbor_claims",
    "result_to_claims",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "verify_ear_cwt",
    "verify_ear_jwt",
]
