"""COSE algorithm identifiers (RFC 9053), the Signer protocol and the signature primitives.

:func:`_verify_signature` and :func:`_verify_mac` are the only places where a COSE signature
or MAC is checked: ``verify_sign1`` and ``verify_mac0`` call them with the ToBeSigned /
ToBeMaced bytes, and the Wycheproof conformance tests call them directly.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from devattest.errors import AlgorithmError, SignatureInvalid, shown

# RFC 9053 section 2.1 (ECDSA), 2.2 (EdDSA), 3.1 (HMAC).
ES256: Final = -7
ES384: Final = -35
ES512: Final = -36
EDDSA: Final = -8
HS256: Final = 5
HS384: Final = 6
HS512: Final = 7

# RFC 9052 section 3.1 (common header parameters) and RFC 9360 section 2 (x5chain).
HDR_ALG: Final = 1
HDR_CRIT: Final = 2
HDR_CONTENT_TYPE: Final = 3
HDR_KID: Final = 4
HDR_X5CHAIN: Final = 33

#: Signature algorithms, for COSE_Sign1.
SIGNATURE_ALGS: Final = frozenset({ES256, ES384, ES512, EDDSA})
#: MAC algorithms, for COSE_Mac0.
MAC_ALGS: Final = frozenset({HS256, HS384, HS512})

_ALG_NAMES: Final = {
    ES256: "ES256", ES384: "ES384", ES512: "ES512", EDDSA: "EdDSA",
    HS256: "HS256", HS384: "HS384", HS512: "HS512",
}

# alg -> (curve class, length of r and of s in bytes, ECDSA signature algorithm object).
# RFC 9053 section 2.1: ES512 is P-521 with SHA-512, and r, s are each 66 bytes.
_ECDSA: Final[dict[int, tuple[type[ec.EllipticCurve], int, ec.ECDSA]]] = {
    ES256: (ec.SECP256R1, 32, ec.ECDSA(hashes.SHA256())),
    ES384: (ec.SECP384R1, 48, ec.ECDSA(hashes.SHA384())),
    ES512: (ec.SECP521R1, 66, ec.ECDSA(hashes.SHA512())),
}
_CURVE_ALG: Final[dict[str, int]] = {"secp256r1": ES256, "secp384r1": ES384, "secp521r1": ES512}
_HMAC: Final[dict[int, Any]] = {HS256: hashlib.sha256, HS384: hashlib.sha384,
                                HS512: hashlib.sha512}
_ED25519_SIG_LEN: Final = 64


def alg_name(alg: object) -> str:
    """A readable name for a COSE algorithm identifier (for messages)."""
    if type(alg) is int:
        name = _ALG_NAMES.get(alg)
        if name is not None:
            return name
    return shown(alg)


class Signer(Protocol):
    """Anything that signs COSE ToBeSigned bytes: a private key, a TPM, a PKCS#11 token."""

    @property
    def alg(self) -> int: ...

    def sign(self, tbs: bytes) -> bytes:
        """The COSE signature over ``tbs`` (raw r||s for ECDSA)."""
        ...


def _alg_for_private_key(private_key: Any) -> int:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = _CURVE_ALG.get(private_key.curve.name)
        if alg is None:
            raise AlgorithmError(f"unsupported EC curve {private_key.curve.name}")
        return alg
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return EDDSA
    raise AlgorithmError(f"unsupported private key type {type(private_key).__name__}")


class PrivateKeySigner:
    """A Signer over a ``cryptography`` private key (EC P-256/384/521 or Ed25519).

    Args:
        private_key: An ``EllipticCurvePrivateKey`` on P-256, P-384 or P-521, or an
            ``Ed25519PrivateKey``.
        alg: The COSE algorithm; derived from the key when omitted.

    Raises:
        AlgorithmError: The key type is unsupported or does not match ``alg``.
    """

    __slots__ = ("_alg", "_key")

    def __init__(self, private_key: Any, alg: int | None = None) -> None:
        natural = _alg_for_private_key(private_key)
        if alg is not None and alg != natural:
            raise AlgorithmError(
                f"algorithm {alg_name(alg)} does not match the key (needs {alg_name(natural)})")
        self._key = private_key
        self._alg = natural

    @property
    def alg(self) -> int:
        """The COSE algorithm identifier this signer produces."""
        return self._alg

    def public_key(self) -> Any:
        """The matching public key."""
        return self._key.public_key()

    def sign(self, tbs: bytes) -> bytes:
        """Sign ``tbs``; ECDSA signatures are returned as raw r||s (RFC 9053 section 2.1)."""
        spec = _ECDSA.get(self._alg)
        if spec is None:
            return bytes(self._key.sign(tbs))
        _, size, algorithm = spec
        r, s = decode_dss_signature(self._key.sign(tbs, algorithm))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def alg_for_public_key(public_key: Any) -> int:
    """The COSE alg matching a public key (ES256 for P-256, ES384, ES512, EdDSA).

    Raises:
        AlgorithmError: The key is not a supported public key.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        alg = _CURVE_ALG.get(public_key.curve.name)
        if alg is not None:
            return alg
        raise AlgorithmError(f"unsupported EC curve {public_key.curve.name}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return EDDSA
    raise AlgorithmError(f"not a supported public key: {type(public_key).__name__}")


# Concrete EC public key classes seen so far: isinstance against the ABC costs more than
# the rest of the COSE overhead on the hot path.
_EC_PUBLIC_TYPES: set[type] = set()


def _remember_ec_public_type(public_key: Any) -> bool:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        _EC_PUBLIC_TYPES.add(type(public_key))
        return True
    return False


def _der_integer(value: bytes) -> bytes:
    # X.690 section 8.3: minimal two's complement; a set top bit needs a leading zero.
    value = value.lstrip(b"\0")
    if not value or value[0] > 0x7F:
        return b"\0" + value
    return value


def _der_signature(signature: bytes, size: int) -> bytes:
    """The DER ECDSA-Sig-Value (RFC 3279 section 2.2.3) for raw r||s of ``size`` bytes each,
    by byte concatenation (what ``encode_dss_signature`` returns, without the integers)."""
    if size > 48:  # P-521: the SEQUENCE may need a long-form length; use the library
        return encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                    int.from_bytes(signature[size:], "big"))
    r = _der_integer(signature[:size])
    s = _der_integer(signature[size:])
    return b"".join((bytes((0x30, len(r) + len(s) + 4, 0x02, len(r))), r,
                     bytes((0x02, len(s))), s))


def _verify_signature(alg: int, public_key: Any, tbs: bytes, signature: bytes) -> None:
    """Verify a COSE signature over the ToBeSigned bytes (RFC 9053 sections 2.1 and 2.2).

    This is the exact function ``verify_sign1`` calls once it has resolved the algorithm.

    Raises:
        AlgorithmError: ``alg`` is not a signature algorithm, or the key does not match it.
        SignatureInvalid: The signature does not verify (including a wrong length).
    """
    spec = _ECDSA.get(alg)
    if spec is not None:
        curve, size, algorithm = spec
        # RFC 9053 section 2.1: the key must be on the algorithm's curve.
        if (type(public_key) not in _EC_PUBLIC_TYPES
                and not _remember_ec_public_type(public_key)) or type(
                public_key.curve) is not curve:
            raise AlgorithmError(f"{alg_name(alg)} requires a {curve.name} public key")
        # RFC 9053 section 2.1: the signature is r||s, each exactly the curve size.
        if len(signature) != 2 * size:
            raise SignatureInvalid(
                f"{alg_name(alg)} signature must be {2 * size} bytes, got {len(signature)}")
        der = _der_signature(signature, size)
        try:
            public_key.verify(der, tbs, algorithm)
        except InvalidSignature:
            raise SignatureInvalid("COSE signature does not verify") from None
        return
    if alg == EDDSA:
        # RFC 9053 section 2.2; only Ed25519 is supported.
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise AlgorithmError("EdDSA requires an Ed25519 public key")
        if len(signature) != _ED25519_SIG_LEN:
            raise SignatureInvalid(f"Ed25519 signature must be 64 bytes, got {len(signature)}")
        try:
            public_key.verify(signature, tbs)
        except InvalidSignature:
            raise SignatureInvalid("COSE signature does not verify") from None
        return
    raise AlgorithmError(f"{alg_name(alg)} is not a supported signature algorithm")


_PEM_MARKER: Final = b"-----BEGIN"
_POINT_LENGTHS: Final[dict[int, type[ec.EllipticCurve]]] = {
    33: ec.SECP256R1, 65: ec.SECP256R1, 49: ec.SECP384R1, 97: ec.SECP384R1,
    67: ec.SECP521R1, 133: ec.SECP521R1,
}


def _looks_like_public_key(key: bytes) -> bool:
    """Whether ``key`` is an encoding of an asymmetric public key (PEM, DER
    SubjectPublicKeyInfo, SEC1 EC point or a JWK). Used to stop the HMAC-keyed-with-the-
    public-key substitution. A raw 32-byte Ed25519 key cannot be told from an HMAC key."""
    if _PEM_MARKER in key or b'"kty"' in key:
        return True
    if key[:1] == b"\x30":
        try:
            serialization.load_der_public_key(key)
        except (ValueError, TypeError):
            pass
        else:
            return True
    curve = _POINT_LENGTHS.get(len(key))
    if curve is not None and key[0] in (2, 3, 4):
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(curve(), key)
        except ValueError:
            return False
        return True
    return False


def _check_mac_key(key: object) -> bytes:
    """RFC 9053 section 3.1: the MAC key is a symmetric secret given explicitly as bytes.

    Raises:
        AlgorithmError: ``key`` is not bytes, is empty, or is an encoded public key.
    """
    if type(key) is not bytes:
        raise AlgorithmError(
            f"a COSE_Mac0 needs a symmetric key given as bytes, not {type(key).__name__}")
    if not key:
        raise AlgorithmError("empty MAC key")
    if _looks_like_public_key(key):
        raise AlgorithmError("refusing to use a public key as a MAC key")
    return key


def _compute_mac(alg: int, key: bytes, tbm: bytes) -> bytes:
    digest = _HMAC.get(alg)
    if digest is None:
        raise AlgorithmError(f"{alg_name(alg)} is not a supported MAC algorithm")
    return hmac.new(key, tbm, digest).digest()


def _verify_mac(alg: int, key: bytes, tbm: bytes, tag: bytes) -> None:
    """Verify a COSE HMAC tag over the ToBeMaced bytes (RFC 9053 section 3.1), in constant
    time. This is the exact function ``verify_mac0`` calls.

    Raises:
        AlgorithmError: ``alg`` is not a MAC algorithm, or ``key`` is not a symmetric key.
        SignatureInvalid: The tag does not verify.
    """
    key = _check_mac_key(key)
    if not hmac.compare_digest(_compute_mac(alg, key, tbm), tag):
        raise SignatureInvalid("COSE MAC does not verify")
