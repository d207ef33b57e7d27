"""COSE (RFC 9052/9053) and CWT (RFC 8392) on cbor2 + cryptography.

Public API (implemented in the private modules of this package):

* ``strict_loads(data, *, limits) -> Any``: CBOR decoding under ``DecodeLimits``: size, depth,
  no duplicate map keys, no trailing bytes; each violation its own EvidenceError.
* ``decode_cose(data, *, limits, options, expected=None) -> CoseMessage``: a COSE_Sign1
  (tag 18) or COSE_Mac0 (tag 17), possibly wrapped in CWT tag 61, strictly decoded.
* ``verify_sign1(msg, public_key, *, options, external_aad=b"") -> tuple[str, ...]`` and
  ``verify_mac0(msg, key, *, options, external_aad=b"") -> tuple[str, ...]``: return
  annotations (e.g. legacy unprotected alg accepted), raise SignatureInvalid /
  AlgorithmError / UnknownCriticalHeader.
* ``create_sign1(payload, signer, *, kid=None, x5chain=(), tagged=True, cwt_tag=False,
  protected_extra=None, unprotected_extra=None, alg_in_protected=True) -> bytes`` and
  ``create_mac0(payload, key, *, alg=HS256, ...) -> bytes``.
* ``Signer`` protocol (``alg: int``, ``sign(tbs: bytes) -> bytes`` giving the COSE signature,
  raw r||s for ECDSA) and ``PrivateKeySigner`` wrapping a ``cryptography`` private key.
* Algorithm constants ``ES256, ES384, ES512, EDDSA, HS256`` and header labels.
"""

from devattest.cose._algorithms import (
    EDDSA,
    ES256,
    ES384,
    ES512,
    HDR_ALG,
    HDR_CONTENT_TYPE,
    HDR_CRIT,
    HDR_KID,
    HDR_X5CHAIN,
    HS256,
    PrivateKeySigner,
    Signer,
    alg_for_public_key,
)
from devattest.cose._cbor import strict_loads
from devattest.cose._message import (
    CoseMessage,
    create_mac0,
    create_sign1,
    decode_cose,
    verify_mac0,
    verify_sign1,
)

__all__ = [
    "EDDSA",
    "ES256",
    "ES384",
    "ES512",
    "HDR_ALG",
    "HDR_CONTENT_TYPE",
    "HDR_CRIT",
    "HDR_KID",
    "HDR_X5CHAIN",
    "HS256",
    "CoseMessage",
    "PrivateKeySigner",
    "Signer",
    "alg_for_public_key",
    "create_mac0",
    "create_sign1",
    "decode_cose",
    "strict_loads",
    "verify_mac0",
    "verify_sign1",
]
