"""EAR as a CWT (RFC 8392): a COSE_Sign1 (RFC 9052 section 4.2) over the CBOR claims-set
with the draft-ietf-rats-ear-03 integer keys."""

from __future__ import annotations

from typing import Any

import cbor2

from devattest.cose import create_sign1, decode_cose, strict_loads, verify_sign1
from devattest.ear._claims import cbor_claims_to_result, result_to_cbor_claims
from devattest.ear._jwt import DEFAULT_LEEWAY, check_times
from devattest.ear._keys import by_identity, public_jwk
from devattest.errors import (
    AlgorithmError,
    ConfigurationError,
    EvidenceError,
    MalformedResult,
    ResultAlgorithmRejected,
    ResultSignatureInvalid,
    SignatureInvalid,
    UnknownCriticalHeader,
)
from devattest.model import AttestationResult, DecodeLimits, VerifyOptions

#: Limits for decoding an EAR CWT: larger than Evidence limits, to fit ``ear_raw_evidence``
#: and annotated evidence.
EAR_CWT_LIMITS = DecodeLimits(max_token_size=256 * 1024, max_depth=24,
                              max_container_items=4096)
#: A Relying Party never relaxes COSE rules for an EAR: the alg must be protected.
_STRICT = VerifyOptions(allow_unprotected_alg=False)


def sign_ear_cwt(result: AttestationResult, signer: Any, *, kid: bytes | None = None
                 ) -> bytes:
    """Sign a result as an EAR CWT: a tagged COSE_Sign1 over deterministic CBOR claims.

    Args:
        result: the Attestation Result; its claims are :func:`result_to_cbor_claims`.
        signer: a :class:`devattest.cose.Signer` (e.g. ``PrivateKeySigner(private_key)``).
        kid: the COSE ``kid`` header; by default the UTF-8 bytes of the signing key's RFC 7638
            thumbprint (the ``kid`` of the JWK Set and of EAR JWTs), which needs a signer
            with ``public_key()``. Every EAR carries one.

    Returns:
        The CWT bytes (COSE_Sign1, tag 18).

    Raises:
        ConfigurationError: the signer's key or algorithm is unusable, or no ``kid`` is
            given and the signer has no ``public_key()`` to derive it from.
    """
    if kid is None:
        kid = _signer_kid(signer)
    # RFC 8949 section 4.2.1: deterministic encoding (core deterministic, sorted keys).
    payload = cbor2.dumps(result_to_cbor_claims(result), canonical=True)
    return create_sign1(payload, signer, kid=kid, tagged=True)


def _signer_kid(signer: Any) -> bytes:
    public_key = getattr(signer, "public_key", None)
    if public_key is None:
        raise ConfigurationError("an EAR CWT needs a kid: give one, or a signer with "
                                 "public_key()")

    def thumbprint() -> bytes:
        return public_jwk(public_key())["kid"].encode()

    return by_identity(signer, thumbprint)


def verify_ear_cwt(token: bytes, public_key: Any, *, now: int,
                   leeway: int = DEFAULT_LEEWAY, max_age: int | None = None,
                   limits: DecodeLimits = EAR_CWT_LIMITS) -> AttestationResult:
    """Verify an EAR CWT as a Relying Party and return the Attestation Result.

    Args:
        token: the CWT (a COSE_Sign1, optionally wrapped in CWT tag 61).
        public_key: the Verifier's EC or Ed25519 public key.
        now: the current time, POSIX seconds.
        leeway: allowed clock skew in seconds.
        max_age: if set, reject a result issued more than this many seconds ago.
        limits: decoding limits for the token and the claims-set.

    Returns:
        The verified result.

    Raises:
        MalformedResult: not a well-formed COSE_Sign1 or EAR claims-set.
        ResultAlgorithmRejected: the alg is missing, unprotected, unknown or not the key's,
            or a critical header is not understood.
        ResultSignatureInvalid: the signature does not verify.
        ResultExpired: ``exp`` has passed, or ``iat`` lies in the future.
        UnknownResultProfile: the ``eat_profile`` is not one devattest reads.
    """
    try:
        # Step 1 (RFC 9052 section 4.2): strictly decode a COSE_Sign1 under limits.
        msg = decode_cose(token, limits=limits, options=_STRICT, expected="sign1")
        # Step 2 (RFC 9052 section 4.4): verify; the key decides the algorithm.
        verify_sign1(msg, public_key, options=_STRICT)
        # Step 3 (RFC 8392 section 7.2): the payload is a CBOR map of claims.
        claims = strict_loads(msg.payload, limits=limits)
    except SignatureInvalid as err:
        raise ResultSignatureInvalid(err.message) from err
    except (AlgorithmError, UnknownCriticalHeader) as err:
        raise ResultAlgorithmRejected(err.message) from err
    except EvidenceError as err:
        raise MalformedResult(f"the EAR CWT is malformed: {err.message}") from err
    if not isinstance(claims, dict):
        raise MalformedResult("the CWT claims-set is not a map")
    # Step 4 (RFC 8392 3.1.4, 3.1.6; draft-ietf-rats-ear-03 section 3): time claims.
    check_times(claims.get(6), claims.get(4), claims.get(5), now=now, leeway=leeway,
                max_age=max_age)
    # Step 5 (draft-ietf-rats-ear-03 section 3.3): parse the EAR claims-set.
    return cbor_claims_to_result(claims)
