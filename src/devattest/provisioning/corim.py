"""CoRIM (draft-ietf-rats-corim-11) to devattest Reference Values and Trust Anchors.

Pure: bytes in, frozen objects out; the only I/O is :func:`load_corim_file`.

Accepted input (section 4):

* an unsigned CoRIM, ``501(corim-map)``, whose ``tags`` hold ``506(bstr .cbor concise-mid-tag)``;
* a signed CoRIM, ``18(COSE_Sign1)`` whose protected header carries ``alg``, content type
  ``application/rim+cbor`` and ``corim-meta`` (8) or ``CWT-Claims`` (15), and whose payload is
  the unsigned CoRIM (section 4.2). The signature is verified when a key is given;
  ``require_signed=True`` refuses anything that is not signed *and* verified.

Two rule sets read the CoMID triples (see :mod:`devattest.provisioning._comid`): the PSA
profile (selected by the CoRIM ``profile`` or by the caller) and generic CoMID reference
values for any device class with a class-id or model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2

from devattest import cose, errors
from devattest.errors import shown as show
from devattest.model import (
    DecodeLimits,
    ReferenceValues,
    ReferenceValueSet,
    TrustAnchors,
    VerifyOptions,
)
from devattest.provisioning import _comid
from devattest.provisioning._cbor import CORIM_LIMITS, decode
from devattest.provisioning._comid import Accumulator, ClassKey, Profile

TAG_COSE_SIGN1 = 18
TAG_UNSIGNED_CORIM = 501
TAG_COSWID = 505
TAG_COMID = 506
TAG_COTL = 508
TAG_URI = 32

#: Content type of a CoRIM payload (section 4.2.1).
CORIM_CONTENT_TYPE = "application/rim+cbor"

#: CoRIM profiles that select the PSA rules: Veraison's current and legacy PSA profiles.
PSA_PROFILES = frozenset({
    "tag:arm.com,2025:psa#1.0.0",
    "http://arm.com/psa/iot/1",
    "http://arm.com/psa/2.0.0",
})

_HDR_ALG = 1
_HDR_CONTENT_TYPE = 3
_HDR_CORIM_META = 8
_HDR_CWT_CLAIMS = 15
_HDR_HASH_ENVELOPE = frozenset({258, 259, 260})


@dataclass(frozen=True, slots=True)
class Corim:
    """A parsed, profile-checked CoRIM."""

    #: corim-id as text (UUIDs in canonical form).
    corim_id: str
    #: The CoRIM ``profile`` (URI or dotted OID), if any.
    profile: str | None
    #: Which rule set read the triples: ``"psa"`` or ``"generic"``.
    rules: str
    reference_values: ReferenceValues
    #: Attestation keys from attest-key triples (Trust Anchors by Instance ID).
    trust_anchors: TrustAnchors
    #: Tag IDs (``tag-id@version``) of the CoMIDs read.
    tag_ids: tuple[str, ...]
    #: Whether the CoRIM came in a COSE_Sign1, and whether that signature was verified.
    signed: bool = False
    verified: bool = False
    #: Signer name from ``corim-meta`` or the CWT ``iss`` claim.
    signer: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    #: What was read but not used (unsupported triples, skipped measurements ...).
    notes: tuple[str, ...] = ()


def parse_corim(data: bytes, *, verification_key: Any = None, require_signed: bool = False,
                profile: str | None = None, class_key: ClassKey = "class-id",
                now: datetime | None = None, limits: DecodeLimits = CORIM_LIMITS) -> Corim:
    """Parse and check a CoRIM, signed or unsigned.

    Args:
        data: The CoRIM bytes: ``501(corim-map)`` or ``18(COSE_Sign1)``.
        verification_key: A ``cryptography`` public key that must have signed the CoRIM.
        require_signed: Refuse a CoRIM that is not signed and verified with the key.
        profile: Override the profile named inside the CoRIM (``"psa"`` forces the PSA rules,
            ``"generic"`` the generic ones, or any profile URI).
        class_key: For generic reference values, whether the class is keyed by class-id
            bytes (falling back to the model string) or by model (falling back to class-id).
        now: When given, ``rim-validity`` and ``signature-validity`` are checked against it.
        limits: Decoding bounds, applied to the CoRIM and to each CoMID.

    Returns:
        The parsed :class:`Corim`.

    Raises:
        CorimMalformed: not well-formed CBOR, over a limit, or not CoRIM-shaped.
        CorimUnsupported: a feature devattest does not implement (hash envelope, detached
            payload, a key type it cannot load).
        CorimSignatureInvalid: a signature that does not verify with ``verification_key``.
        CorimSignatureRequired: ``require_signed`` and the CoRIM is not signed and verified.
        CorimProfileViolation: a CoMID triple breaks the PSA profile.
        CorimNotValid: ``now`` is outside the CoRIM's or the signature's validity.
    """
    # 1: decode the outer item under the limits (section 4).
    outer = decode(data, limits=limits, what="CoRIM")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag not in (TAG_UNSIGNED_CORIM,
                                                                  TAG_COSE_SIGN1):
        got = f"tag {outer.tag}" if isinstance(outer, cbor2.CBORTag) else type(outer).__name__
        raise errors.CorimMalformed(f"a CoRIM is 501(corim-map) or 18(COSE_Sign1), got {got}",
                                    reason="corim_tag")
    signed = outer.tag == TAG_COSE_SIGN1
    verified = False
    signer: str | None = None
    sig_validity: tuple[datetime | None, datetime | None] = (None, None)
    if signed:
        # 2: signed CoRIM (section 4.2): header checks, then the signature.
        payload, signer, sig_validity, verified = _open_signed(
            data, outer, verification_key=verification_key, limits=limits)
        inner = decode(payload, limits=limits, what="CoRIM payload")
        if not isinstance(inner, cbor2.CBORTag) or inner.tag != TAG_UNSIGNED_CORIM:
            raise errors.CorimMalformed("the signed payload must be 501(corim-map)",
                                        reason="payload_tag")
        corim_map = inner.value
    else:
        corim_map = outer.value
    # 3: the caller's signing requirement.
    if require_signed and not (signed and verified):
        why = ("unsigned" if not signed else "signed, but no verification key was given")
        raise errors.CorimSignatureRequired(f"a signed and verified CoRIM is required; this "
                                            f"one is {why}", reason="signature_required")
    # 4: the corim-map (section 4.1).
    return _read_corim_map(corim_map, profile=profile, class_key=class_key, now=now,
                           limits=limits, signed=signed, verified=verified, signer=signer,
                           sig_validity=sig_validity)


def parse_comid(data: bytes, *, profile: str = "generic", class_key: ClassKey = "class-id",
                limits: DecodeLimits = CORIM_LIMITS) -> Corim:
    """Parse a bare CoMID (an untagged or 506-tagged concise-mid-tag) outside a CoRIM.

    Raises:
        CorimMalformed: see :func:`parse_corim`.
        CorimUnsupported: see :func:`parse_corim`.
        CorimProfileViolation: see :func:`parse_corim`.
    """
    comid = decode(data, limits=limits, what="CoMID")
    if isinstance(comid, cbor2.CBORTag) and comid.tag == TAG_COMID:
        if not isinstance(comid.value, bytes):
            raise errors.CorimMalformed("506 must wrap a bstr", reason="comid_not_bstr")
        comid = decode(comid.value, limits=limits, what="CoMID")
    rules = _rules_for(profile)
    acc = Accumulator()
    tag_id = _comid.read_comid(comid, acc, profile=rules, class_key=class_key, index=0)
    return _build(acc, corim_id=tag_id, profile=profile, rules=rules, tag_ids=(tag_id,))


def load_corim_file(path: str | Path, **kwargs: Any) -> Corim:
    """Read a CoRIM file and :func:`parse_corim` it (the one I/O entry point).

    Raises:
        CorimMalformed: the file is larger than the limit, or see :func:`parse_corim`.
        OSError: the file cannot be read.
    """
    limits: DecodeLimits = kwargs.get("limits", CORIM_LIMITS)
    with open(path, "rb") as fh:
        data = fh.read(limits.max_token_size + 1)
    return parse_corim(data, **kwargs)


# --------------------------------------------------------------------------------------
# Signed CoRIM (section 4.2).
# --------------------------------------------------------------------------------------
def _open_signed(data: bytes, outer: cbor2.CBORTag, *, verification_key: Any,
                 limits: DecodeLimits
                 ) -> tuple[bytes, str | None, tuple[datetime | None, datetime | None], bool]:
    msg = outer.value
    if (not isinstance(msg, list) or len(msg) != 4 or not isinstance(msg[0], bytes)
            or not isinstance(msg[1], dict) or not isinstance(msg[3], bytes)):
        raise errors.CorimMalformed("COSE_Sign1 must be [bstr, map, payload, bstr]",
                                    reason="cose_shape")
    protected = decode(msg[0], limits=limits, what="protected header") if msg[0] else {}
    if not isinstance(protected, dict):
        raise errors.CorimMalformed("protected header must be a map", reason="cose_shape")
    # 4.2.1: hash-envelope payloads and detached payloads are not supported.
    if _HDR_HASH_ENVELOPE & set(protected) or msg[2] is None:
        raise errors.CorimUnsupported("hash-envelope or detached CoRIM payloads are not "
                                      "supported", reason="detached_payload")
    if not isinstance(msg[2], bytes):
        raise errors.CorimMalformed("payload must be a bstr", reason="cose_shape")
    # 4.2.1: alg and content-type are mandatory in the protected header.
    if not isinstance(protected.get(_HDR_ALG), int):
        raise errors.CorimMalformed("protected header has no alg (1)", reason="no_alg")
    if protected.get(_HDR_CONTENT_TYPE) != CORIM_CONTENT_TYPE:
        raise errors.CorimMalformed(f"protected content type (3) must be {CORIM_CONTENT_TYPE!r}"
                                    f", got {show(protected.get(_HDR_CONTENT_TYPE))}",
                                    reason="content_type")
    # 4.2.1: meta-group: corim-meta (8) and/or CWT-Claims (15).
    signer, validity = _signer_meta(protected, limits=limits)
    verified = False
    if verification_key is not None:
        _verify(data, verification_key, limits=limits)
        verified = True
    return msg[2], signer, validity, verified


def _signer_meta(protected: Mapping[Any, Any], *, limits: DecodeLimits
                 ) -> tuple[str | None, tuple[datetime | None, datetime | None]]:
    meta_b, cwt = protected.get(_HDR_CORIM_META), protected.get(_HDR_CWT_CLAIMS)
    if meta_b is None and cwt is None:
        raise errors.CorimMalformed("protected header needs corim-meta (8) or CWT-Claims (15)",
                                    reason="no_signer_meta")
    signer: str | None = None
    validity: tuple[datetime | None, datetime | None] = (None, None)
    if meta_b is not None:
        if not isinstance(meta_b, bytes):
            raise errors.CorimMalformed("corim-meta must be bstr .cbor", reason="corim_meta")
        meta = decode(meta_b, limits=limits, what="corim-meta")
        if not isinstance(meta, dict) or not isinstance(meta.get(0), dict):
            raise errors.CorimMalformed("corim-meta needs signer (0)", reason="corim_meta")
        name = meta[0].get(0)
        if not isinstance(name, str):
            raise errors.CorimMalformed("corim-signer-map needs signer-name (0) as text",
                                        reason="corim_meta")
        signer = name
        if 1 in meta:
            validity = _validity(meta[1], what="signature-validity")
    if cwt is not None:
        if not isinstance(cwt, dict) or not isinstance(cwt.get(1), str):
            raise errors.CorimMalformed("CWT-Claims needs iss (1) as text", reason="cwt_claims")
        signer = signer or cwt[1]
        nbf, exp = cwt.get(5), cwt.get(4)
        if nbf is not None or exp is not None:
            validity = (_time(nbf, what="nbf") if nbf is not None else validity[0],
                        _time(exp, what="exp") if exp is not None else validity[1])
    return signer, validity


def _verify(data: bytes, key: Any, *, limits: DecodeLimits) -> None:
    # Signature per RFC 9052 section 4.4, through devattest.cose.
    options = VerifyOptions(require_cose_tag=True)
    try:
        msg = cose.decode_cose(data, limits=limits, options=options, expected="sign1")
        cose.verify_sign1(msg, key, options=options)
    except errors.SignatureInvalid as exc:
        raise errors.CorimSignatureInvalid(f"CoRIM signature: {exc.message}",
                                           reason="signature_invalid") from exc
    except errors.VerificationError as exc:
        raise errors.CorimSignatureInvalid(f"CoRIM signature: {exc.message}",
                                           reason=exc.code) from exc
    except errors.EvidenceError as exc:
        raise errors.CorimMalformed(f"CoRIM COSE_Sign1: {exc.message}",
                                    reason=exc.code) from exc


# --------------------------------------------------------------------------------------
# corim-map (section 4.1).
# --------------------------------------------------------------------------------------
def _rules_for(profile: str | None) -> Profile:
    if profile == "psa" or profile in PSA_PROFILES:
        return "psa"
    return "generic"


def _read_corim_map(m: Any, *, profile: str | None, class_key: ClassKey,
                    now: datetime | None, limits: DecodeLimits, signed: bool, verified: bool,
                    signer: str | None,
                    sig_validity: tuple[datetime | None, datetime | None]) -> Corim:
    if not isinstance(m, dict):
        raise errors.CorimMalformed("corim-map must be a map", reason="corim_map")
    if 0 not in m:
        raise errors.CorimMalformed("corim-map needs id (0)", reason="corim_id")
    corim_id = _comid.tag_id_text(m[0], what="corim-id")
    tags = m.get(1)
    if not isinstance(tags, list) or not tags:
        raise errors.CorimMalformed("corim-map needs tags (1): a non-empty array",
                                    reason="corim_tags")
    declared = _profile_text(m[3]) if 3 in m else None
    chosen = profile if profile is not None else declared
    rules = _rules_for(chosen)
    validity = _validity(m[4], what="rim-validity") if 4 in m else (None, None)
    nb = max((t for t in (validity[0], sig_validity[0]) if t is not None), default=None)
    na = min((t for t in (validity[1], sig_validity[1]) if t is not None), default=None)
    # 4.1.4 / 4.2.2: the CoRIM and its signature are valid only within their validity.
    if now is not None and ((nb is not None and now < nb) or (na is not None and now > na)):
        raise errors.CorimNotValid(f"now ({now.isoformat()}) is outside the validity "
                                   f"[{nb}, {na}]", reason="not_valid_now")
    acc = Accumulator()
    if 2 in m:
        acc.notes.append("dependent-rims (2) not fetched")
    tag_ids: list[str] = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, cbor2.CBORTag) or tag.tag not in (TAG_COMID, TAG_COSWID,
                                                                  TAG_COTL):
            raise errors.CorimMalformed(f"tags[{i}]: expected 505, 506 or 508 tag",
                                        reason="tag_type")
        if not isinstance(tag.value, bytes):
            raise errors.CorimMalformed(f"tags[{i}]: tag {tag.tag} must wrap a bstr",
                                        reason="comid_not_bstr")
        if tag.tag != TAG_COMID:
            acc.notes.append(f"tags[{i}]: {'CoSWID' if tag.tag == TAG_COSWID else 'CoTL'} "
                             f"ignored")
            continue
        comid = decode(tag.value, limits=limits, what=f"tags[{i}] CoMID")
        tag_ids.append(_comid.read_comid(comid, acc, profile=rules, class_key=class_key,
                                         index=i))
    return _build(acc, corim_id=corim_id, profile=chosen, rules=rules, tag_ids=tuple(tag_ids),
                  signed=signed, verified=verified, signer=signer, not_before=nb, not_after=na)


def _build(acc: Accumulator, *, corim_id: str, profile: str | None, rules: Profile,
           tag_ids: tuple[str, ...], signed: bool = False, verified: bool = False,
           signer: str | None = None, not_before: datetime | None = None,
           not_after: datetime | None = None) -> Corim:
    sets = []
    notes = list(acc.notes)
    for class_id, comps in acc.classes.items():
        if not comps:
            # Every measurement was skipped: an empty set would constrain nothing, so the
            # class gets no Reference Values at all (appraisal then fails closed).
            notes.append(f"class {_class_text(class_id)}: no usable measurements, not "
                         f"provisioned")
            continue
        sets.append(ReferenceValueSet(
            class_id=class_id,
            components=_comid.freeze_components(comps),
            allowed_lifecycles=None,
            reject_unknown_components=True,
            source=f"corim:{corim_id}/" + ",".join(acc.class_sources.get(class_id, ())),
        ))
    return Corim(
        corim_id=corim_id, profile=profile, rules=rules,
        reference_values=ReferenceValues.of(sets),
        trust_anchors=TrustAnchors.of(keys=acc.keys),
        tag_ids=tag_ids, signed=signed, verified=verified, signer=signer,
        not_before=not_before, not_after=not_after, notes=tuple(notes),
    )


def _class_text(class_id: bytes | str) -> str:
    return class_id.hex() if isinstance(class_id, bytes) else repr(class_id)


def _profile_text(value: Any) -> str:
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_URI and isinstance(value.value,
                                                                                 str):
        return value.value
    if isinstance(value, str):  # a decoder may already have unwrapped tag 32
        return value
    if isinstance(value, cbor2.CBORTag) and value.tag == _comid.TAG_OID and isinstance(
            value.value, bytes):
        return _comid.oid_text(value.value, where="profile (3)")
    raise errors.CorimMalformed("profile (3) must be 32(uri) or 111(oid)", reason="profile")


def _validity(v: Any, *, what: str) -> tuple[datetime | None, datetime]:
    # validity-map = { ? not-before (0) => time, not-after (1) => time }.
    if not isinstance(v, dict) or 1 not in v:
        raise errors.CorimMalformed(f"{what} needs not-after (1)", reason="validity")
    nb = _time(v[0], what=f"{what} not-before") if 0 in v else None
    return nb, _time(v[1], what=f"{what} not-after")


def _time(t: Any, *, what: str) -> datetime:
    if isinstance(t, cbor2.CBORTag) and t.tag == 1:
        t = t.value
    if isinstance(t, datetime):
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    if isinstance(t, int | float) and not isinstance(t, bool):
        try:
            return datetime.fromtimestamp(t, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise errors.CorimMalformed(f"{what}: time out of range",
                                        reason="validity") from exc
    raise errors.CorimMalformed(f"{what}: expected a time", reason="validity")


__all__ = [
    "CORIM_CONTENT_TYPE",
    "PSA_PROFILES",
    "Corim",
    "load_corim_file",
    "parse_comid",
    "parse_corim",
]
