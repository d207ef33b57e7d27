"""The pure appraisal core (RFC 9334 Verifier): Evidence in, Attestation Result out."""

from devattest.verifier.core import (
    DEFAULT_RESULT_TTL,
    SIGNATURE_ONLY,
    SignedResult,
    contraindicated_result,
    find_key,
    verify,
    verify_and_sign,
    verify_strict,
)
from devattest.verifier.nonces import NonceBook

__all__ = [
    "DEFAULT_RESULT_TTL",
    "SIGNATURE_ONLY",
    "NonceBook",
    "SignedResult",
    "contraindicated_result",
    "find_key",
    "verify",
    "verify_and_sign",
    "verify_strict",
]
