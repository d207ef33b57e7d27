"""EAR as a JWT: JWS Compact Serialization (RFC 7515) signed with ES256/ES384/ES512 or
EdDSA, implemented directly on ``cryptography``."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from devattest._documents import loads_strict_json
from devattest.ear._claims import (
    b64url_decode_strict,
    b64url_encode,
    claims_to_result,
    result_to_claims,
)
from devattest.ear._keys import ec_coordinate_size, jose_alg_for_key, key_id
from devattest.errors import (
    ConfigurationError,
    MalformedResult,
    ResultAlgorithmRejected,
    ResultExpired,
    ResultSignatureInvalid,
    shown,
)
from devattest.model import AttestationResult
from devattest.model._json import compact_json

#: Largest EAR JWT accepted (an EAR with ``ear_raw_evidence`` of a 64 KiB token fits).
MAX_JWT_SIZE = 256 * 1024
#: Default clock-skew allowance, in seconds, for ``exp``, ``nbf`` and ``iat``.
DEFAULT_LEEWAY = 60

_HASH = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}


def sign_ear_jwt(result: AttestationResult, private_key: Any, *, kid: str | None = None
                 ) -> str:
    """Sign a result as an EAR JWT (JWS Compact Serialization, RFC 7515 section 7.1).

    Args:
        result: the Attestation Result; its claims are :func:`result_to_claims`.
        private_key: EC P-256 (ES256), P-384 (ES384), P-521 (ES512) or Ed25519 (EdDSA).
        kid: the ``kid`` header, naming the key in the Verifier's JWK Set; by default the
            key's RFC 7638 thumbprint (the ``kid`` :func:`public_jwks` gives it). Every EAR
            carries one, so that a Relying Party with several keys picks the right one.

    Returns:
        ``header.payload.signature``.

    Raises:
        ConfigurationError: the key is not a supported private key.
    """
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigurationError("the EAR signing key must be an EC or Ed25519 private key")
    alg = jose_alg_for_key(private_key)
    header: dict[str, str] = {"alg": alg, "typ": "JWT",
                              "kid": kid if kid is not None else key_id(private_key)}
    signing_input = (_b64json(header) + "." + _b64json(result_to_claims(result))).encode()
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(signing_input)
    else:
        # RFC 7518 section 3.4: the JWS signature is R || S, each left-padded to the size.
        der = private_key.sign(signing_input, ec.ECDSA(_HASH[alg]))
        r, s = decode_dss_signature(der)
        size = ec_coordinate_size(private_key)
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return signing_input.decode() + "." + b64url_encode(signature)


def verify_ear_jwt(token: str | bytes, public_key: Any, *, now: int,
                   leeway: int = DEFAULT_LEEWAY, max_age: int | None = None,
                   max_size: int = MAX_JWT_SIZE) -> AttestationResult:
    """Verify an EAR JWT as a Relying Party and return the Attestation Result.

    The key alone decides the algorithm; header keys (``jwk``, ``jku``, ``x5c``, ``x5u``)
    are never used to find a key.

    Args:
        token: the JWS Compact Serialization.
        public_key: the Verifier's EC or Ed25519 public key.
        now: the current time, POSIX seconds.
        leeway: allowed clock skew in seconds.
        max_age: if set, reject a result issued more than this many seconds ago (for
            EARs without ``exp``, such as Veraison's).
        max_size: the largest token accepted, in bytes.

    Returns:
        The verified result (-03, or -02 / Veraison claim names).

    Raises:
        MalformedResult: not a well-formed JWS or EAR claims-set.
        ResultAlgorithmRejected: ``alg`` is absent, ``none``, HMAC, or not the key's.
        ResultSignatureInvalid: the signature does not verify.
        ResultExpired: ``exp`` has passed, or ``nbf`` / ``iat`` lie in the future.
        UnknownResultProfile: the ``eat_profile`` is not one devattest reads.
        ConfigurationError: ``public_key`` is not a supported public key.
    """
    if not isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigurationError("the EAR verification key must be an EC or Ed25519 public key")
    # Step 1 (RFC 7515 section 5.2 step 1): bounded size; exactly three base64url parts.
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedResult("the JWT is not ASCII") from None
    if len(token) > max_size:
        raise MalformedResult(f"the JWT is {len(token)} bytes, the limit is {max_size}")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise MalformedResult("a JWS in Compact Serialization has exactly three parts")
    header_b64, payload_b64, signature_b64 = parts
    # Step 2 (RFC 7515 5.2 steps 2-4): the header is a JSON object with unique names.
    header = _strict_json(b64url_decode_strict(header_b64, "JWS header"), "JWS header")
    # Step 3 (RFC 7515 4.1.11): no extension is understood, so any "crit" is rejected.
    if "crit" in header:
        raise MalformedResult("the JWS header has a crit parameter this verifier rejects")
    # Step 4 (RFC 7515 4.1.1, RFC 8725 3.1-3.2): the algorithm is the key's, and only it.
    # "none" and HMAC ("HS256" keyed with the public key's bytes) never match an EC or
    # Ed25519 key, so they are rejected here before any cryptography runs.
    alg = header.get("alg")
    expected = jose_alg_for_key(public_key)
    if not isinstance(alg, str) or alg != expected:
        raise ResultAlgorithmRejected(
            f"JWS alg {shown(alg)} is not allowed with this key (expected {expected})")
    # Step 5 (RFC 7515 5.2 step 8, RFC 7518 3.4 / RFC 8037 3.1): verify the signature.
    signature = b64url_decode_strict(signature_b64, "JWS signature")
    signing_input = (header_b64 + "." + payload_b64).encode("ascii")
    _verify_signature(public_key, alg, signature, signing_input)
    # Step 6 (RFC 7519 section 7.2 steps 7-10): the payload is a JSON claims-set.
    claims = _strict_json(b64url_decode_strict(payload_b64, "JWS payload"), "JWT claims-set")
    # Step 7 (RFC 7519 4.1.4, 4.1.5; draft-ietf-rats-ear-03 section 3): time claims.
    check_times(claims.get("iat"), claims.get("exp"), claims.get("nbf"),
                now=now, leeway=leeway, max_age=max_age)
    # Step 8 (draft-ietf-rats-ear-03 section 3): parse the EAR claims-set.
    return claims_to_result(claims)


def check_times(iat: Any, exp: Any, nbf: Any, *, now: int, leeway: int,
                max_age: int | None = None) -> None:
    """Check ``iat``, ``exp`` and ``nbf`` against ``now`` (RFC 7519 4.1.4-4.1.6).

    Raises:
        MalformedResult: a time claim is not an integer (EAR forbids floats).
        ResultExpired: the token is expired, not yet valid, issued in the future, or
            older than ``max_age``.
    """
    for name, value in (("iat", iat), ("exp", exp), ("nbf", nbf)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MalformedResult(f"{name} is not an integer")
    if exp is not None and now >= exp + leeway:
        raise ResultExpired(f"the EAR expired at {shown(exp)} (now {now})")
    if nbf is not None and now + leeway < nbf:
        raise ResultExpired(f"the EAR is not valid before {shown(nbf)} (now {now})")
    if iat is not None and iat > now + leeway:
        raise ResultExpired(f"the EAR was issued in the future ({shown(iat)}, now {now})")
    if max_age is not None and iat is not None and now - iat > max_age + leeway:
        raise ResultExpired(f"the EAR was issued at {shown(iat)}, more than {max_age}s ago")


def _verify_signature(public_key: Any, alg: str, signature: bytes, data: bytes) -> None:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
            return
        size = ec_coordinate_size(public_key)
        # RFC 7518 section 3.4: exactly R || S, each the curve's size; nothing else.
        if len(signature) != 2 * size:
            raise ResultSignatureInvalid(
                f"the {alg} signature is {len(signature)} bytes, expected {2 * size}")
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASH[alg]))
    except InvalidSignature:
        raise ResultSignatureInvalid("the EAR signature does not verify") from None


def _strict_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object: UTF-8, unique member names, no NaN/Infinity (RFC 7515 5.2, 7519 7.2).

    Raises:
        MalformedResult: anything else.
    """
    try:
        value = loads_strict_json(data)
    except ValueError as err:  # not UTF-8, not JSON, a repeated member, NaN/Infinity
        raise MalformedResult(f"{what} is not valid JSON: {err}") from None
    except RecursionError:
        raise MalformedResult(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise MalformedResult(f"{what} is not a JSON object")
    return value


def _b64json(value: Any) -> str:
    """Compact UTF-8 JSON, base64url. orjson when it can (about ten times faster than the
    standard encoder); the standard encoder for what orjson refuses (integers beyond 64
    bits). Claim values went through ``json_safe``, which spells non-finite floats as text
    (orjson would write ``null``; the standard encoder refuses them)."""
    return b64url_encode(compact_json(value, allow_nan=False))
