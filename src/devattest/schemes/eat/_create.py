"""Building EAT CWTs: for tests, ``devattest token create`` and the attester."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from devattest.cose import PrivateKeySigner, create_mac0, create_sign1
from devattest.schemes.eat._claims import (
    BOOTSEED,
    CLAIM_KEYS,
    CTI,
    HWMODEL,
    NONCE,
    OEMID,
    UEID,
)
from devattest.schemes.psa._create import as_bytes

_BYTES_CLAIMS = frozenset((UEID, HWMODEL, BOOTSEED, CTI))


def eat_claims_map(claims: Mapping[Any, Any]) -> dict[Any, Any]:
    """An integer-keyed EAT claims map from names (``eat_nonce`` or ``nonce``, ``ueid``,
    ``iat`` ...) or integer keys. Byte-valued claims accept hex or ``base64:`` text.

    Raises:
        ValueError: an unknown claim name.
    """
    out: dict[Any, Any] = {}
    for name, given in claims.items():
        if isinstance(name, int):
            out[name] = given
            continue
        value = given
        key = CLAIM_KEYS.get("eat_nonce" if name == "nonce" else name)
        if key is None:
            raise ValueError(f"unknown EAT claim {name!r}")
        if key in _BYTES_CLAIMS:
            value = as_bytes(value)
        elif key == NONCE:
            value = [as_bytes(n) for n in value] if isinstance(value, list) else as_bytes(value)
        elif key == OEMID and isinstance(value, str):
            value = as_bytes(value)
        out[key] = value
    return out


def encode_eat_claims(claims: Mapping[Any, Any]) -> bytes:
    """Deterministic (hence preferred-serialization) CBOR of an EAT claims set.

    Raises:
        ValueError: see :func:`eat_claims_map`.
    """
    return cbor2.dumps(eat_claims_map(claims), canonical=True)


def create_eat(claims: Mapping[Any, Any], key: Any, *, kid: bytes | None = None,
               x5chain: tuple[bytes, ...] = (), cwt_tag: bool = False,
               tagged: bool = True) -> bytes:
    """A signed (COSE_Sign1) or MACed (COSE_Mac0, ``bytes`` key) EAT in CWT form.

    Args:
        claims: claims by name or integer key.
        key: a ``devattest.cose.Signer``, a ``cryptography`` private key, or HMAC key bytes.
        kid: COSE ``kid``.
        x5chain: DER certificates, leaf first.
        cwt_tag: wrap in the CWT tag 61 (RFC 8392 section 6).
        tagged: emit the COSE tag.

    Raises:
        ValueError: see :func:`eat_claims_map`.
        AlgorithmError: the key is not usable for COSE.
    """
    payload = encode_eat_claims(claims)
    if isinstance(key, (bytes, bytearray)):
        return create_mac0(payload, bytes(key), kid=kid, tagged=tagged, cwt_tag=cwt_tag)
    signer = key if hasattr(key, "sign") and hasattr(key, "alg") else PrivateKeySigner(key)
    return create_sign1(payload, signer, kid=kid, x5chain=x5chain, tagged=tagged,
                        cwt_tag=cwt_tag)
