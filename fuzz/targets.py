"""Fuzz targets: every parser of untrusted bytes, each asserting its exact contract.

A target takes one input and returns normally when the code under test behaved: it either
accepted the input or raised one of the project's typed errors (``errors.DevattestError``).
Anything else escapes the target and is a finding: another exception type (a ``TypeError``,
``KeyError``, ``RecursionError``, ``OverflowError``...), or, for Evidence, an Attestation
Result that says "verifier malfunction" (hostile Evidence must be a contraindicated result
that names its reason, never an internal error) or that cannot be signed as an EAR.

Targets are plain functions so that atheris (``fuzz/__main__.py``), the corpus replay and the
unit test of the harness all run exactly the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from devattest.cose import decode_cose, strict_loads, verify_mac0, verify_sign1
from devattest.errors import DevattestError
from devattest.model import (
    DEFAULT_LIMITS,
    DEFAULT_OPTIONS,
    AttestationResult,
    KeyAnchor,
    TrustAnchors,
    VerifyOptions,
)
from devattest.policy import DefaultPolicy

#: Fixed key material, derived from constants so that the seed corpus (built with the same
#: keys by ``fuzz/seeds.py``) verifies and the fuzzer starts from inputs that go deep.
EC_KEY = ec.derive_private_key(
    int.from_bytes(hashlib.sha256(b"devattest fuzz ec key").digest(), "big") % (2**255),
    ec.SECP256R1())
HMAC_KEY = hashlib.sha256(b"devattest fuzz hmac key").digest()
NONCE = bytes(range(32))
NOW = 1_800_000_000
LEGACY = VerifyOptions(allow_unprotected_alg=True)

_ANCHORS = (TrustAnchors.of(keys=[KeyAnchor(EC_KEY.public_key())]),
            TrustAnchors.of(keys=[KeyAnchor(HMAC_KEY)]))
_POLICY = DefaultPolicy()


class Finding(AssertionError):
    """The code under test broke its contract on this input."""


def _typed(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call ``fn``; a typed project error is an accepted outcome (returns None)."""
    try:
        return fn(*args, **kw)
    except DevattestError:
        return None


def _no_malfunction(result: AttestationResult, what: str) -> None:
    codes = [code for code, _ in result.reasons]
    if "verifier_malfunction" in codes:
        raise Finding(f"{what}: verify() returned a verifier malfunction for hostile "
                      f"Evidence: {result.reasons}")


def _signable(result: AttestationResult, what: str) -> None:
    """Every result can be signed as an EAR (JWT and CWT): the service records and answers
    nothing it cannot sign."""
    from devattest.cose import PrivateKeySigner
    from devattest.ear import sign_ear_cwt, sign_ear_jwt

    try:
        sign_ear_jwt(result, EC_KEY, kid="fuzz")
        sign_ear_cwt(result, PrivateKeySigner(EC_KEY), kid=b"fuzz")
    except Exception as exc:
        raise Finding(f"{what}: the result of verify() cannot be signed as an EAR: "
                      f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def _verify(data: bytes, media_type: str, *, options: VerifyOptions = DEFAULT_OPTIONS,
            registry: Any = None, anchors: tuple[TrustAnchors, ...] = _ANCHORS,
            nonce: bytes = NONCE) -> None:
    from devattest.verifier import verify

    for ta in anchors:
        result = verify(data, media_type=media_type, expected_nonce=nonce, trust_anchors=ta,
                        reference_values=None, policy=_POLICY, now=NOW, registry=registry,
                        options=options)
        _no_malfunction(result, media_type)
        if any(sub.annotated_evidence for sub in result.submods.values()):
            # Appraised: the result carries claims from the Evidence (a failure before
            # appraisal carries only its reason, which the check above has seen).
            _signable(result, media_type)


# ---------------------------------------------------------------------------- COSE
def cose(data: bytes) -> None:
    """COSE_Sign1 / COSE_Mac0 decoding (RFC 9052), then the signature or MAC check."""
    for options in (DEFAULT_OPTIONS, VerifyOptions(allow_unprotected_alg=True,
                                                   require_cose_tag=True)):
        for expected in (None, "sign1", "mac0"):
            msg = _typed(decode_cose, data, limits=DEFAULT_LIMITS, options=options,
                         expected=expected)
            if msg is None:
                continue
            if msg.kind == "sign1":
                _typed(verify_sign1, msg, EC_KEY.public_key(), options=options)
            else:
                _typed(verify_mac0, msg, HMAC_KEY, options=options)


def cbor(data: bytes) -> None:
    """The strict CBOR decoder every CBOR parser is built on (limits, duplicates, tags)."""
    _typed(strict_loads, data, limits=DEFAULT_LIMITS)


# ---------------------------------------------------------------------------- PSA, EAT
def psa(data: bytes) -> None:
    """A PSA token (RFC 9783) through the whole pipeline, and the bytes as a claims set."""
    from devattest.schemes.psa import MEDIA_TYPE_PSA
    from devattest.schemes.psa._claims import detect_profile, parse_psa_claims

    _verify(data, MEDIA_TYPE_PSA)
    _verify(data, MEDIA_TYPE_PSA, options=LEGACY)
    claims = _typed(strict_loads, data, limits=DEFAULT_LIMITS)
    if isinstance(claims, dict):
        found = _typed(detect_profile, claims)
        if found is not None:
            _typed(parse_psa_claims, claims, found[0], found[1])


def eat(data: bytes) -> None:
    """An EAT CWT (RFC 9711), generic and constrained profile, and the bytes as claims."""
    from devattest.schemes.eat import MEDIA_TYPE_EAT_CWT
    from devattest.schemes.eat._claims import parse_eat_claims
    from devattest.schemes.eat._scheme import MEDIA_TYPE_EAT_CWT_CONSTRAINED

    eat_nonce = NONCE[:16]
    _verify(data, MEDIA_TYPE_EAT_CWT, nonce=eat_nonce)
    _verify(data, MEDIA_TYPE_EAT_CWT_CONSTRAINED, nonce=eat_nonce)
    claims = _typed(strict_loads, data, limits=DEFAULT_LIMITS)
    if isinstance(claims, dict):
        _typed(parse_eat_claims, claims)


# ---------------------------------------------------------------------------- TPM
def tpm_structures(data: bytes) -> None:
    """TPMS_ATTEST, TPMT_PUBLIC and TPMT_SIGNATURE unmarshalling (TPM 2.0 Part 2)."""
    from devattest.schemes.tpm.structures import parse_attest, parse_public, parse_signature

    for parse in (parse_attest, parse_public, parse_signature):
        _typed(parse, data)


def tpm_eventlog(data: bytes) -> None:
    """The TCG PC Client crypto-agile binary log, and a compact log given as CBOR."""
    from devattest.schemes.tpm.eventlog import parse_event_log, parse_tcg, replay

    log = _typed(parse_tcg, data, max_events=256)
    if log is not None:
        _typed(replay, log, {0x000B: tuple(range(24))})
    compact = _typed(strict_loads, data, limits=DEFAULT_LIMITS)
    if isinstance(compact, list):
        log = _typed(parse_event_log, compact, max_events=256)
        if log is not None:
            _typed(replay, log, {0x000B: tuple(range(24))})


def tpm(data: bytes) -> None:
    """TPM quote Evidence (the CBOR map of docs/tpm.md) through the whole pipeline."""
    from devattest.schemes.tpm import MEDIA_TYPE

    _verify(data, MEDIA_TYPE, nonce=b"n" * 32)


# ---------------------------------------------------------------------------- CoRIM
def corim(data: bytes) -> None:
    """CoRIM (signed or unsigned) and CoMID documents (draft-ietf-rats-corim)."""
    from devattest.provisioning import parse_comid, parse_corim

    _typed(parse_corim, data)
    _typed(parse_comid, data)


# ---------------------------------------------------------------------------- EAR
def ear_jwt(data: bytes) -> None:
    """An EAR JWT as a Relying Party verifies it (draft-ietf-rats-ear, RFC 7515)."""
    from devattest.ear import verify_ear_jwt

    _typed(verify_ear_jwt, data, EC_KEY.public_key(), now=NOW)


def ear_cwt(data: bytes) -> None:
    """An EAR CWT as a Relying Party verifies it."""
    from devattest.ear import verify_ear_cwt

    _typed(verify_ear_cwt, data, EC_KEY.public_key(), now=NOW)


# ---------------------------------------------------------------------------- MQTT
def mqtt(data: bytes) -> None:
    """The MQTT transport's decoders: an ``.../evidence`` payload, and an ``.../events``
    payload as the coordinator reads it (JSON object, then the lifecycle event)."""
    from devattest.lifecycle.machine import parse_event
    from devattest.transport.mqtt import loads, parse_evidence_message

    _typed(parse_evidence_message, data)
    message = _typed(loads, data)
    if message is not None:
        _typed(parse_event, message, device_id="dev-1", event_id="e1",
               received_at=datetime.fromtimestamp(NOW, UTC))


# ---------------------------------------------------------------------------- provisioning
def provisioning(data: bytes) -> None:
    """Provisioning documents (devattest JSON and YAML): Reference Values, Trust Anchors."""
    from devattest.provisioning import (
        loads_document,
        parse_reference_values,
        parse_trust_anchors,
    )

    for fmt in ("json", "yaml"):
        doc = _typed(loads_document, data, fmt=fmt)
        if doc is None:
            continue
        _typed(parse_reference_values, doc)
        _typed(parse_trust_anchors, doc)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "cbor": cbor,
    "cose": cose,
    "psa": psa,
    "eat": eat,
    "tpm_structures": tpm_structures,
    "tpm_eventlog": tpm_eventlog,
    "tpm": tpm,
    "corim": corim,
    "ear_jwt": ear_jwt,
    "ear_cwt": ear_cwt,
    "mqtt": mqtt,
    "provisioning": provisioning,
}
