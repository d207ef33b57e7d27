"""Load keys from PEM, DER and JWK (RFC 7517/7518, RFC 8037) into ``cryptography`` objects.

Supported: EC P-256/P-384/P-521 and Ed25519 (public and private), symmetric ``oct`` keys,
and X.509 certificates (their public key). A source is ``bytes``/``str`` (the encoded key),
a ``pathlib.Path`` (read here), or a JWK as a mapping. Every unusable key raises
:class:`~devattest.errors.ConfigurationError`: a key is the operator's configuration.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest._documents import loads_strict_json
from devattest.errors import ConfigurationError

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
KeySource: TypeAlias = bytes | str | Path | Mapping[str, Any]

_CURVES: Final[dict[str, tuple[type[ec.EllipticCurve], int]]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}
_CURVE_NAMES: Final = {"secp256r1", "secp384r1", "secp521r1"}
_RFC8792_NOTE: Final = "line wrapping per RFC 8792"


def load_public_key(source: KeySource) -> PublicKey:
    """Load a public key; private key material gives its public half.

    Args:
        source: PEM/DER (SubjectPublicKeyInfo, PKCS#8, SEC1, or an X.509 certificate), a
            JWK as JSON text/bytes or a mapping, or a Path to any of these.

    Returns:
        An EC (P-256/384/521) or Ed25519 public key.

    Raises:
        ConfigurationError: The source is unreadable, malformed, symmetric or unsupported.
    """
    key = _load(source)
    if isinstance(key, bytes):
        raise ConfigurationError("expected an asymmetric key, got a symmetric (oct) key")
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return _check_public(key.public_key())
    return key


def load_private_key(source: KeySource) -> PrivateKey:
    """Load a private key (PEM/DER PKCS#8 or SEC1, or a JWK with ``d``).

    Raises:
        ConfigurationError: The source holds no usable private key.
    """
    key = _load(source)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigurationError("expected a private key")
    return key


def load_symmetric_key(source: KeySource) -> bytes:
    """Load a symmetric key: a JWK of type ``oct``, or the raw bytes of a key file.

    Raises:
        ConfigurationError: The source is not a symmetric key, or is empty.
    """
    if isinstance(source, Path):
        raw = _read(source)
        if not raw.lstrip().startswith(b"{") and not raw.lstrip().startswith(b"="):
            if not raw:
                raise ConfigurationError(f"{source}: empty key file")
            if b"-----BEGIN" in raw:
                raise ConfigurationError(f"{source}: a PEM key is not a symmetric key")
            return raw
        source = raw
    key = _load(source)
    if not isinstance(key, bytes):
        raise ConfigurationError("expected a symmetric (oct) key")
    return key


def load_verification_key(source: KeySource) -> PublicKey | bytes:
    """Load a key to verify with: a public key (from public or private material) or, for
    a JWK of type ``oct``, the symmetric key bytes.

    Raises:
        ConfigurationError: The source holds no usable key.
    """
    key = _load(source)
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return _check_public(key.public_key())
    return key


def _load(source: KeySource) -> PublicKey | PrivateKey | bytes:
    if isinstance(source, Path):
        where = str(source)
        data: Any = _read(source)
    else:
        where = "key"
        data = source
    try:
        if isinstance(data, Mapping):
            return _from_jwk(data)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes):
            raise ConfigurationError(f"unsupported key source type {type(data).__name__}")
        text = data.lstrip()
        if text.startswith(b"{") or _RFC8792_NOTE.encode() in text[:200]:
            return _from_jwk(_parse_json(data))
        if b"-----BEGIN" in data:
            return _from_pem(data)
        return _from_der(data)
    except ConfigurationError as exc:
        if where != "key":
            raise ConfigurationError(f"{where}: {exc.message}") from None
        raise


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}") from None


def _parse_json(data: bytes) -> Any:
    text = data.decode("utf-8", errors="replace")
    if _RFC8792_NOTE in text[:200]:
        text = _unfold_rfc8792(text)
    try:
        jwk = loads_strict_json(text)
    except ValueError as exc:
        raise ConfigurationError(f"malformed JWK JSON: {exc}") from None
    if isinstance(jwk, dict) and "keys" in jwk:
        keys = jwk["keys"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise ConfigurationError("a JWK Set must hold exactly one key here")
        jwk = keys[0]
    if not isinstance(jwk, dict):
        raise ConfigurationError("a JWK must be a JSON object")
    return jwk


def _unfold_rfc8792(text: str) -> str:
    """RFC 8792 section 7: drop the header and the blank line after it, then join each line
    ending in a backslash to the next with its leading spaces removed (and, for the
    ``'\\\\'`` strategy of section 7.2.2, the backslash that starts the next line)."""
    lines = text.splitlines()
    double = "'\\\\'" in lines[0]
    start = 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    out: list[str] = []
    pending = ""
    continued = False
    for line in lines[start:]:
        segment = line
        if continued:
            segment = segment.lstrip()
            if double and segment.startswith("\\"):
                segment = segment[1:]
        continued = segment.endswith("\\")
        if continued:
            pending += segment[:-1]
        else:
            out.append(pending + segment)
            pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


def _b64url(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"JWK member {name!r} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"JWK member {name!r} is not base64url") from None


def _from_jwk(jwk: Mapping[str, Any]) -> PublicKey | PrivateKey | bytes:
    kty = jwk.get("kty")
    if kty == "EC":
        # RFC 7518 section 6.2.
        spec = _CURVES.get(jwk.get("crv"))  # type: ignore[arg-type]
        if spec is None:
            raise ConfigurationError(f"unsupported JWK EC curve {jwk.get('crv')!r}")
        curve, size = spec
        x, y = _b64url(jwk, "x"), _b64url(jwk, "y")
        if len(x) != size or len(y) != size:
            raise ConfigurationError(f"JWK x/y must be {size} bytes for {jwk.get('crv')}")
        try:
            public = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()).public_key()
        except ValueError:
            raise ConfigurationError("JWK EC point is not on the curve") from None
        if "d" not in jwk:
            return public
        d = _b64url(jwk, "d")
        if len(d) != size:
            raise ConfigurationError(f"JWK d must be {size} bytes for {jwk.get('crv')}")
        try:
            private = ec.derive_private_key(int.from_bytes(d, "big"), curve())
        except ValueError:
            raise ConfigurationError("JWK EC private scalar is out of range") from None
        if private.public_key().public_numbers() != public.public_numbers():
            raise ConfigurationError("JWK d does not match x and y")
        return private
    if kty == "OKP":
        # RFC 8037 section 2.
        if jwk.get("crv") != "Ed25519":
            raise ConfigurationError(f"unsupported JWK OKP curve {jwk.get('crv')!r}")
        x = _b64url(jwk, "x")
        if len(x) != 32:
            raise ConfigurationError("JWK Ed25519 x must be 32 bytes")
        try:
            okp_public = ed25519.Ed25519PublicKey.from_public_bytes(x)
        except ValueError:
            raise ConfigurationError("JWK Ed25519 x is not a valid public key") from None
        if "d" not in jwk:
            return okp_public
        d = _b64url(jwk, "d")
        if len(d) != 32:
            raise ConfigurationError("JWK Ed25519 d must be 32 bytes")
        okp_private = ed25519.Ed25519PrivateKey.from_private_bytes(d)
        if okp_private.public_key().public_bytes_raw() != x:
            raise ConfigurationError("JWK d does not match x")
        return okp_private
    if kty == "oct":
        # RFC 7518 section 6.4.
        return _b64url(jwk, "k")
    raise ConfigurationError(f"unsupported JWK key type {kty!r}")


def _from_pem(data: bytes) -> PublicKey | PrivateKey:
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise ConfigurationError(f"malformed PEM certificate: {exc}") from None
        return _check_public(cert.public_key())
    if b"PRIVATE KEY-----" in data:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise ConfigurationError("encrypted private keys are not supported") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"malformed PEM private key: {exc}") from None
        return _check_private(private)
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(f"malformed PEM public key: {exc}") from None
    return _check_public(public)


def _from_der(data: bytes) -> PublicKey | PrivateKey:
    try:
        return _check_public(serialization.load_der_public_key(data))
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return _check_private(serialization.load_der_private_key(data, password=None))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    try:
        return _check_public(x509.load_der_x509_certificate(data).public_key())
    except ValueError:
        pass
    raise ConfigurationError("not a PEM, DER or JWK key")


def _check_public(key: Any) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVE_NAMES:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ConfigurationError(f"unsupported public key type {type(key).__name__}")


def _check_private(key: Any) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_NAMES:
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ConfigurationError(f"unsupported private key type {type(key).__name__}")
