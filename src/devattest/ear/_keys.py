"""Signing keys for EAR: JOSE algorithm selection, JWK import (RFC 7517/7518) and JWKS
export for the service's ``/.well-known/devattest/keys``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.ear._claims import b64url_decode_strict, b64url_encode
from devattest.errors import ConfigurationError, MalformedResult

#: EC curve -> (JOSE alg, coordinate size in bytes, JWK crv). RFC 7518 sections 3.4, 6.2.1.
_EC: dict[str, tuple[str, int, str]] = {
    "secp256r1": ("ES256", 32, "P-256"),
    "secp384r1": ("ES384", 48, "P-384"),
    "secp521r1": ("ES512", 66, "P-521"),
}
_CRV_TO_CURVE: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
}

_T = TypeVar("_T")

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def jose_alg_for_key(key: Any) -> str:
    """The one JOSE ``alg`` devattest uses with ``key`` (public or private).

    ES256/ES384/ES512 for EC P-256/384/521 (RFC 7518 section 3.4) and EdDSA for Ed25519
    (RFC 8037 section 3.1). A verifier accepts exactly this algorithm for this key: the
    key, not the token, decides (RFC 8725 section 3.1).

    Raises:
        ConfigurationError: the key type or curve is not supported.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        entry = _EC.get(key.curve.name)
        if entry is None:
            raise ConfigurationError(f"unsupported EC curve {key.curve.name}")
        return entry[0]
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ConfigurationError(f"unsupported EAR key type {type(key).__name__}")


def ec_coordinate_size(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    """Bytes per coordinate (and per r, s) for the key's curve."""
    return _EC[key.curve.name][1]


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Import a public key from a JWK (RFC 7517; EC per RFC 7518 6.2, OKP per RFC 8037 2).

    Private members (``d``) are ignored: only the public part is imported.

    Raises:
        ConfigurationError: the JWK is not a supported, well-formed public key.
    """
    try:
        kty = jwk["kty"]
        if kty == "EC":
            crv = jwk["crv"]
            curve = _CRV_TO_CURVE.get(crv)
            if curve is None:
                raise ConfigurationError(f"unsupported JWK curve {crv!r}")
            size = _EC[curve.name][1]
            x = b64url_decode_strict(jwk["x"], "x")
            y = b64url_decode_strict(jwk["y"], "y")
            # RFC 7518 6.2.1.2/6.2.1.3: coordinates are full-length octet strings.
            if len(x) != size or len(y) != size:
                raise ConfigurationError("JWK coordinate has the wrong length")
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve).public_key()
        if kty == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(
                b64url_decode_strict(jwk["x"], "x"))
        raise ConfigurationError(f"unsupported JWK kty/crv {kty!r}/{jwk.get('crv')!r}")
    except (KeyError, TypeError, ValueError, MalformedResult) as err:
        raise ConfigurationError(f"malformed JWK: {err}") from None


def public_jwk(key: Any, *, kid: str | None = None) -> dict[str, str]:
    """The public JWK of a key (a private key yields its public part; ``d`` never leaks).

    Args:
        key: an EC P-256/384/521 or Ed25519 key, public or private.
        kid: the key ID; defaults to the RFC 7638 JWK thumbprint.

    Raises:
        ConfigurationError: the key type is not supported.
    """
    alg = jose_alg_for_key(key)
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    members: dict[str, str]
    if isinstance(pub, ec.EllipticCurvePublicKey):
        size = ec_coordinate_size(pub)
        nums = pub.public_numbers()
        members = {"crv": _EC[pub.curve.name][2], "kty": "EC",
                   "x": b64url_encode(nums.x.to_bytes(size, "big")),
                   "y": b64url_encode(nums.y.to_bytes(size, "big"))}
    else:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    # RFC 7638 section 3.2: the thumbprint hashes the required members, sorted, no spaces.
    thumb = b64url_encode(hashlib.sha256(
        json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())
    return {**members, "alg": alg, "use": "sig", "kid": kid or thumb}


def key_id(key: Any) -> str:
    """The ``kid`` devattest gives a key by default: its RFC 7638 JWK thumbprint, as in
    :func:`public_jwk` and the service's JWK Set. Remembered per key object (a Verifier signs
    result after result with the same key; keys need not be hashable).

    Raises:
        ConfigurationError: the key type is not supported.
    """
    return by_identity(key, lambda: public_jwk(key)["kid"])


_BY_IDENTITY: dict[int, tuple[Any, Any]] = {}
_BY_IDENTITY_MAX = 64


def by_identity(obj: Any, compute: Callable[[], _T]) -> _T:
    """``compute()``, remembered for this very object (held, so its id is not reused)."""
    hit = _BY_IDENTITY.get(id(obj))
    if hit is not None and hit[0] is obj:
        value: _T = hit[1]
        return value
    value = compute()
    if len(_BY_IDENTITY) >= _BY_IDENTITY_MAX:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(obj)] = (obj, value)
    return value


def public_jwks(keys: Mapping[str, Any] | Iterable[Any]) -> dict[str, list[dict[str, str]]]:
    """A JWK Set (RFC 7517 section 5) of the EAR verification keys, for
    ``/.well-known/devattest/keys``.

    Args:
        keys: ``{kid: key}``, or keys alone (each then gets its RFC 7638 thumbprint as
            ``kid``). Private keys are reduced to their public part.

    Returns:
        ``{"keys": [...]}`` with ``kty``, ``crv``, ``x`` (``y``), ``alg``, ``use``, ``kid``.

    Raises:
        ConfigurationError: a key type is not supported.
    """
    if isinstance(keys, Mapping):
        return {"keys": [public_jwk(k, kid=kid) for kid, k in keys.items()]}
    return {"keys": [public_jwk(k) for k in keys]}
