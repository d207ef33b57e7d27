"""Building PSA tokens: for tests, ``devattest token create`` and the attester.

Claims come as a YAML-ish dict in the tf-m-tools ``compile_token`` spelling (see
``../shared/vectors/draft-psa-token/sign1-claims.yaml``), e.g.::

    instance_id: !!binary AQIC...        # bytes, or a hex string, or "base64:..."
    implementation_id: ...
    challenge: ...                       # or "nonce"
    client_id: 2147483647
    security_lifecycle: sl_secured       # or an int, or "secured_0x3003"
    profile_id: tag:psacertified.org,2023:psa#tfm
    boot_seed: ...
    sw_components:
      - {sw_component_type: PRoT, measurement_value: ..., signer_id: ...}

Integer keys pass through unchanged, so a test can add any claim. Nothing is validated here:
tests need to build broken tokens; the verifier is the judge.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

import cbor2

from devattest.cose import PrivateKeySigner, create_mac0, create_sign1
from devattest.schemes.psa._profiles import (
    BY_NAME,
    IOT_1,
    LIFECYCLE_BY_NAME,
    PROFILE_IOT_1,
    RFC9783,
    SWC_MEASUREMENT_DESC,
    SWC_MEASUREMENT_TYPE,
    SWC_MEASUREMENT_VALUE,
    SWC_SIGNER_ID,
    SWC_VERSION,
    PsaProfile,
)

_PROFILES: dict[str, PsaProfile] = {**BY_NAME, PROFILE_IOT_1: IOT_1}

# YAML name -> attribute of PsaProfile holding the claim key.
_CLAIM_ATTRS: dict[str, str] = {
    "challenge": "nonce",
    "nonce": "nonce",
    "instance_id": "instance_id",
    "ueid": "instance_id",
    "implementation_id": "implementation_id",
    "client_id": "client_id",
    "security_lifecycle": "lifecycle",
    "profile_id": "profile",
    "profile": "profile",
    "boot_seed": "boot_seed",
    "hardware_version": "certification_reference",
    "certification_reference": "certification_reference",
    "verification_service": "verification_service",
    "verification_service_indicator": "verification_service",
    "sw_components": "software_components",
    "software_components": "software_components",
    "no_sw_measurements": "no_sw_measurements",
}
_BYTES_CLAIMS = frozenset(("nonce", "instance_id", "implementation_id", "boot_seed"))

_SWC_NAMES: dict[str, int] = {
    "sw_component_type": SWC_MEASUREMENT_TYPE,
    "measurement_type": SWC_MEASUREMENT_TYPE,
    "measurement_value": SWC_MEASUREMENT_VALUE,
    "sw_component_version": SWC_VERSION,
    "version": SWC_VERSION,
    "signer_id": SWC_SIGNER_ID,
    "measurement_description": SWC_MEASUREMENT_DESC,
    "measurement_desc": SWC_MEASUREMENT_DESC,
}
_SWC_BYTES = frozenset((SWC_MEASUREMENT_VALUE, SWC_SIGNER_ID))

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFECYCLE_HEX = re.compile(r"[a-z_]*_0x([0-9a-fA-F]{1,4})")


def as_bytes(value: Any) -> Any:
    """Bytes from bytes, ``hex:``/``base64:`` prefixed text, bare hex, or padded standard
    base64. Anything else is returned unchanged (so a test can put a wrong type in a claim).
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        return value
    try:
        if value.startswith("hex:"):
            return bytes.fromhex(value[4:])
        if value.startswith("base64:"):
            text = value[7:]
            return base64.urlsafe_b64decode(
                text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
        if _HEX.fullmatch(value):
            return bytes.fromhex(value)
        if len(value) % 4 == 0 and _BASE64.fullmatch(value):
            return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as err:
        raise ValueError(f"cannot decode {value!r} as bytes: {err}") from None
    return value


def _lifecycle(value: Any) -> Any:
    if isinstance(value, str):
        named = LIFECYCLE_BY_NAME.get(value.lower())
        if named is not None:
            return named
        m = _LIFECYCLE_HEX.fullmatch(value)
        if m:
            return int(m.group(1), 16)
        raise ValueError(f"unknown security lifecycle {value!r}")
    return value


def _component(entry: Mapping[Any, Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for name, value in entry.items():
        if isinstance(name, int):
            out[name] = value
            continue
        key = _SWC_NAMES.get(name)
        if key is None:
            raise ValueError(f"unknown software component field {name!r}")
        out[key] = as_bytes(value) if key in _SWC_BYTES else value
    return out


def _layout(claims: Mapping[Any, Any], profile: str | None) -> PsaProfile:
    if profile is not None:
        try:
            return _PROFILES[profile]
        except KeyError:
            raise ValueError(f"unknown PSA profile {profile!r}") from None
    named = claims.get("profile_id", claims.get("profile"))
    if isinstance(named, str) and named in _PROFILES:
        return _PROFILES[named]
    return RFC9783


def psa_claims_map(claims: Mapping[Any, Any], *, profile: str | None = None
                   ) -> dict[int, Any]:
    """The integer-keyed PSA claims map for a YAML-ish claims dict.

    ``profile`` picks the claim-key layout (RFC 9783, ``http://arm.com/psa/2.0.0`` or
    ``PSA_IOT_PROFILE_1``); by default the one the ``profile_id`` claim names, else RFC 9783.
    The profile claim gets the layout's name unless ``profile_id`` is given.

    Raises:
        ValueError: an unknown claim name, profile or lifecycle name, or undecodable bytes.
    """
    layout = _layout(claims, profile)
    out: dict[int, Any] = {}
    has_profile = False
    for name, given in claims.items():
        if isinstance(name, int):
            out[name] = given
            continue
        value = given
        attr = _CLAIM_ATTRS.get(name)
        if attr is None:
            raise ValueError(f"unknown PSA claim {name!r}")
        key = getattr(layout, attr)
        if key is None:
            raise ValueError(f"profile {layout.name!r} has no claim {name!r}")
        if attr in _BYTES_CLAIMS:
            value = as_bytes(value)
        elif attr == "lifecycle":
            value = _lifecycle(value)
        elif attr == "software_components" and isinstance(value, Sequence) \
                and not isinstance(value, (str, bytes)):
            value = [_component(c) if isinstance(c, Mapping) else c for c in value]
        elif attr == "profile":
            has_profile = True
        out[key] = value
    if not has_profile:
        out[layout.profile] = layout.name
    return out


def encode_psa_claims(claims: Mapping[Any, Any], *, profile: str | None = None) -> bytes:
    """Deterministically encoded CBOR of a PSA claims set (RFC 8949 section 4.2).

    ``claims`` is either an integer-keyed claims map (encoded as is) or a YAML-ish dict
    (see :func:`psa_claims_map`).

    Raises:
        ValueError: see :func:`psa_claims_map`.
    """
    if all(isinstance(k, int) for k in claims):
        mapped: Mapping[Any, Any] = claims
    else:
        mapped = psa_claims_map(claims, profile=profile)
    return cbor2.dumps(mapped, canonical=True)


def create_psa_token(claims: Mapping[Any, Any], key: Any, *, profile: str | None = None,
                     kid: bytes | None = None, x5chain: tuple[bytes, ...] = (),
                     tagged: bool = True, alg_in_protected: bool = True) -> bytes:
    """A signed (COSE_Sign1) or MACed (COSE_Mac0) PSA token, RFC 9783 section 5.

    Args:
        claims: YAML-ish claims dict or integer-keyed claims map.
        key: a ``devattest.cose.Signer``, a ``cryptography`` private key (ES256/384/512,
            EdDSA), or ``bytes`` for an HMAC key (COSE_Mac0, HS256).
        profile: claim-key layout (see :func:`psa_claims_map`).
        kid: COSE ``kid`` header.
        x5chain: certificate chain (DER, leaf first) for the ``x5chain`` header.
        tagged: emit the COSE tag (18 or 17).
        alg_in_protected: put ``alg`` in the protected header (False reproduces legacy TF-M
            tokens, for tests).

    Raises:
        ValueError: see :func:`psa_claims_map`.
        AlgorithmError: the key is not usable for COSE.
    """
    payload = encode_psa_claims(claims, profile=profile)
    if isinstance(key, (bytes, bytearray)):
        return create_mac0(payload, bytes(key), kid=kid, tagged=tagged,
                           alg_in_protected=alg_in_protected)
    signer = key if hasattr(key, "sign") and hasattr(key, "alg") else PrivateKeySigner(key)
    return create_sign1(payload, signer, kid=kid, x5chain=x5chain, tagged=tagged,
                        alg_in_protected=alg_in_protected)
