"""COSE algorithm identifiers (RFC 9053) and the Signer protocol. (To be implemented.)"""

from __future__ import annotations

from typing import Any, Protocol

ES256 = -7
ES384 = -35
ES512 = -36
EDDSA = -8
HS256 = 5

HDR_ALG = 1
HDR_CRIT = 2
HDR_CONTENT_TYPE = 3
HDR_KID = 4
HDR_X5CHAIN = 33


class Signer(Protocol):
    """Anything that signs COSE ToBeSigned bytes: a private key, a TPM, a PKCS#11 token."""

    @property
    def alg(self) -> int: ...

    def sign(self, tbs: bytes) -> bytes:
        """The COSE signature over ``tbs`` (raw r||s for ECDSA)."""
        ...


class PrivateKeySigner:
    """A Signer over a ``cryptography`` private key (EC P-256/384/521 or Ed25519)."""

    def __init__(self, private_key: Any, alg: int | None = None) -> None:
        raise NotImplementedError

    @property
    def alg(self) -> int:
        raise NotImplementedError

    def sign(self, tbs: bytes) -> bytes:
        raise NotImplementedError


def alg_for_public_key(public_key: Any) -> int:
    """The COSE alg matching a public key (ES256 for P-256 ...). Raises AlgorithmError."""
    raise NotImplementedError
