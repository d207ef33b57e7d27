"""Step 3 for COSE-based schemes (PSA, EAT): the signature or MAC with the Trust Anchor's key."""

from __future__ import annotations

from devattest.cose import CoseMessage, verify_mac0, verify_sign1
from devattest.errors import AlgorithmError
from devattest.model import KeyAnchor, VerifyOptions


def verify_cose_integrity(msg: CoseMessage, key: KeyAnchor, *, options: VerifyOptions
                          ) -> tuple[str, ...]:
    """Verify a COSE_Sign1 signature (RFC 9052 section 4.4) or COSE_Mac0 tag (section 6.3).

    The key type must fit the structure: a MAC needs a symmetric key and a signature a
    public key, so an HMAC can never be keyed with public-key bytes (the classic algorithm
    substitution).

    Args:
        msg: the decoded COSE message.
        key: the Trust Anchor found in step 2.
        options: verification options (legacy relaxations are returned as notices).

    Returns:
        Notices to report (e.g. a legacy unprotected algorithm).

    Raises:
        AlgorithmError: the key does not fit the structure or the algorithm.
        SignatureInvalid: the signature or MAC does not verify.
        UnknownCriticalHeader: ``crit`` names a header this verifier does not understand.
    """
    pub = key.public_key
    if msg.kind == "mac0":
        # 3.1: a MAC needs a symmetric key; never key an HMAC with public-key bytes.
        if not isinstance(pub, (bytes, bytearray)):
            raise AlgorithmError(
                "a COSE_Mac0 token needs a symmetric key; the Trust Anchor is a public key",
                step="3")
        return verify_mac0(msg, bytes(pub), options=options)
    if isinstance(pub, (bytes, bytearray)):
        raise AlgorithmError(
            "a COSE_Sign1 token needs a public key; the Trust Anchor is a symmetric key",
            step="3")
    return verify_sign1(msg, pub, options=options)
