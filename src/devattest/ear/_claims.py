"""EAR claims-sets (draft-ietf-rats-ear-03) <-> :class:`AttestationResult`.

Two serialisations share one model (draft-ietf-rats-ear-03 sections 3.2 and 3.3):

* JSON (for JWT): claim names such as ``ear_status``; bytes as base64url text.
* CBOR (for CWT): integer claim keys such as ``1000``; bytes as byte strings.

devattest always *emits* the -03 names and profile. It *reads* -03, and -02 / Veraison
(``tag:github.com,2023:veraison/ear``), whose names are dotted (``ear.status`` ...).
Unknown claims are kept verbatim as extensions (section 4: "A receiver MUST ignore any
unknown claim"), so a claims-set round-trips.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from devattest.errors import MalformedResult, UnknownResultProfile, shown
from devattest.model import Appraisal, AttestationResult, Status, TrustVector, VerifierId

#: The -03 profile (draft-ietf-rats-ear-03 section 3): the only one devattest emits.
EAR_PROFILE = "tag:ietf.org,2026:rats/ear#03"
#: The -02 profile, read for compatibility.
EAR_PROFILE_02 = "tag:ietf.org,2025-07:ear"
#: The profile Veraison's ``ear`` library emits (with the -02 claim names).
VERAISON_PROFILE = "tag:github.com,2023:veraison/ear"
#: The profile Confidential Containers' Trustee emits: the Veraison profile under another name
#: (Trustee signs with Veraison's Rust ``ear`` crate; Veraison's Go ``ear`` library reads it as
#: an alias of its own). Read with the -02 claim names, like :data:`VERAISON_PROFILE`.
TRUSTEE_PROFILE = "tag:github.com,2024:confidential-containers/Trustee"
#: Every profile :func:`claims_to_result` accepts.
KNOWN_PROFILES = frozenset({EAR_PROFILE, EAR_PROFILE_02, VERAISON_PROFILE, TRUSTEE_PROFILE})

#: The devattest extension (reasons, annotated evidence, failed step): an unregistered
#: claim, named like the -03 Veraison extensions (section 4.5) in JSON and taken from the
#: CWT private space (< -65536, section 4.1) in CBOR.
DEVATTEST_CLAIM = "ear_devattest"
DEVATTEST_CBOR_KEY = -77000

# RFC 8392 / RFC 9711 CWT claim keys.
_CBOR_EXP = 4
_CBOR_IAT = 6
_CBOR_NONCE = 10
_CBOR_PROFILE = 265
_CBOR_SUBMODS = 266
# draft-ietf-rats-ear-03 section 3 and 3.1 (suggested keys, section 9.1).
_CBOR_STATUS = 1000
_CBOR_TV = 1001
_CBOR_RAW_EVIDENCE = 1002
_CBOR_POLICY_IDS = 1003
_CBOR_VERIFIER_ID = 1004

#: AR4SI trustworthiness-vector labels (ar4si.cddl): TrustVector field -> (JSON, CBOR).
_TV_LABELS: dict[str, tuple[str, int]] = {
    f.name: (f.name.replace("_", "-"), i) for i, f in enumerate(fields(TrustVector))
}
_TV_BY_JSON = {j: name for name, (j, _) in _TV_LABELS.items()}
_TV_BY_CBOR = {c: name for name, (_, c) in _TV_LABELS.items()}

#: Trustworthiness tiers (ar4si.cddl): JSON text <-> CBOR integer.
_TIER_CBOR = {Status.NONE: 0, Status.AFFIRMING: 2, Status.WARNING: 32,
              Status.CONTRAINDICATED: 96}
_TIER_BY_CBOR = {v: k for k, v in _TIER_CBOR.items()}

#: Extension claims whose JSON name and CBOR key are both known (sections 4.4, 4.5).
_EXTENSION_KEYS: dict[str, int] = {
    "ear_teep_claims": 65000,
    "ear_veraison_annotated_evidence": -70000,
    "ear_veraison_policy_claims": -70001,
    "ear_veraison_key_attestation": -70002,
    DEVATTEST_CLAIM: DEVATTEST_CBOR_KEY,
}
_EXTENSION_NAMES = {v: k for k, v in _EXTENSION_KEYS.items()}

# JSON claim names per draft revision.
_NAMES_03 = {
    "status": "ear_status",
    "tv": "ear_trustworthiness_vector",
    "policy": "ear_appraisal_policy_ids",
    "verifier": "ear_verifier_id",
    "raw": "ear_raw_evidence",
}
_NAMES_02 = {
    "status": "ear.status",
    "tv": "ear.trustworthiness-vector",
    "policy": "ear.appraisal-policy-id",
    "verifier": "ear.verifier-id",
    "raw": "ear.raw-evidence",
}


# --------------------------------------------------------------------------------------
# Emitting
# --------------------------------------------------------------------------------------
def result_to_claims(result: AttestationResult, *, overall_status: bool = True
                     ) -> dict[str, Any]:
    """The EAR claims-set for a result, JSON serialisation (draft-ietf-rats-ear-03 3.2).

    Args:
        result: the Attestation Result.
        overall_status: also emit the optional top-level ``ear_status`` (section 3: the
            overall status, never more trusting than the worst submodule).

    Returns:
        A JSON-ready dict: -03 claim names, bytes as unpadded base64url.

    Raises:
        ValueError: the result has no submodule (section 3: ``submods`` MUST contain at
            least one entry); this is a programming error, not bad input.
    """
    if not result.submods:
        raise ValueError("an EAR needs at least one submod (draft-ietf-rats-ear-03 section 3)")
    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iat": result.iat,
        "ear_verifier_id": {"developer": result.verifier_id.developer,
                            "build": result.verifier_id.build},
    }
    if overall_status:
        claims["ear_status"] = result.status.value
    if result.exp is not None:
        claims["exp"] = result.exp
    if result.nonce is not None:
        claims["eat_nonce"] = b64url_encode(result.nonce)
    if result.raw_evidence is not None:
        claims["ear_raw_evidence"] = b64url_encode(result.raw_evidence)
    claims["submods"] = {name: _appraisal_to_json(sub) for name, sub in result.submods.items()}
    top_ext: dict[str, Any] = {}
    if result.evidence_digest is not None:
        top_ext["evidence-digest"] = b64url_encode(result.evidence_digest)
    if result.media_type is not None:
        top_ext["media-type"] = result.media_type
    _put_extensions_json(claims, result.extensions, top_ext)
    return claims


def result_to_cbor_claims(result: AttestationResult, *, overall_status: bool = True
                          ) -> dict[Any, Any]:
    """The EAR claims-set for a result, CBOR serialisation (draft-ietf-rats-ear-03 3.3).

    Args:
        result: the Attestation Result.
        overall_status: also emit the optional top-level ``ear_status`` (key 1000).

    Returns:
        A dict with integer claim keys, ready for deterministic CBOR encoding.

    Raises:
        ValueError: the result has no submodule (a programming error).
    """
    if not result.submods:
        raise ValueError("an EAR needs at least one submod (draft-ietf-rats-ear-03 section 3)")
    claims: dict[Any, Any] = {
        _CBOR_PROFILE: EAR_PROFILE,
        _CBOR_IAT: result.iat,
        _CBOR_VERIFIER_ID: {0: result.verifier_id.developer, 1: result.verifier_id.build},
    }
    if overall_status:
        claims[_CBOR_STATUS] = _TIER_CBOR[result.status]
    if result.exp is not None:
        claims[_CBOR_EXP] = result.exp
    if result.nonce is not None:
        claims[_CBOR_NONCE] = result.nonce
    if result.raw_evidence is not None:
        claims[_CBOR_RAW_EVIDENCE] = result.raw_evidence
    claims[_CBOR_SUBMODS] = {name: _appraisal_to_cbor(sub)
                             for name, sub in result.submods.items()}
    top_ext: dict[str, Any] = {}
    if result.evidence_digest is not None:
        top_ext["evidence-digest"] = result.evidence_digest
    if result.media_type is not None:
        top_ext["media-type"] = result.media_type
    _put_extensions_cbor(claims, result.extensions, top_ext)
    return claims


def _policy_ids(sub: Appraisal) -> list[str]:
    if sub.appraisal_policy_ids:
        return list(sub.appraisal_policy_ids)
    if sub.appraisal_policy_id is not None:
        return [sub.appraisal_policy_id]
    return []


def _devattest_ext(sub: Appraisal) -> dict[str, Any]:
    ext: dict[str, Any] = {}
    if sub.reasons:
        ext["reasons"] = [{"code": c, "message": m} for c, m in sub.reasons]
    if sub.annotated_evidence:
        ext["annotated-evidence"] = dict(sub.annotated_evidence)
    if sub.failed_step is not None:
        ext["failed-step"] = sub.failed_step
    return ext


def _appraisal_to_json(sub: Appraisal) -> dict[str, Any]:
    out: dict[str, Any] = {"ear_status": sub.status.value}
    tv = sub.trust_vector.as_ear()
    if tv:
        out["ear_trustworthiness_vector"] = tv
    ids = _policy_ids(sub)
    if ids:  # section 3.1: the list MUST NOT be empty, so an empty one is omitted.
        out["ear_appraisal_policy_ids"] = ids
    if sub.profile is not None:
        out["eat_profile"] = sub.profile
    if sub.nonce is not None:
        out["eat_nonce"] = b64url_encode(sub.nonce)
    _put_extensions_json(out, sub.extensions, _devattest_ext(sub))
    return out


def _appraisal_to_cbor(sub: Appraisal) -> dict[Any, Any]:
    out: dict[Any, Any] = {_CBOR_STATUS: _TIER_CBOR[sub.status]}
    tv = {_TV_LABELS[f.name][1]: getattr(sub.trust_vector, f.name)
          for f in fields(TrustVector) if getattr(sub.trust_vector, f.name) is not None}
    if tv:
        out[_CBOR_TV] = tv
    ids = _policy_ids(sub)
    if ids:
        out[_CBOR_POLICY_IDS] = ids
    if sub.profile is not None:
        out[_CBOR_PROFILE] = sub.profile
    if sub.nonce is not None:
        out[_CBOR_NONCE] = sub.nonce
    _put_extensions_cbor(out, sub.extensions, _devattest_ext(sub))
    return out


def _put_extensions_json(out: dict[str, Any], extensions: Mapping[str | int, Any],
                         devattest: dict[str, Any]) -> None:
    for key, value in extensions.items():
        name = key if isinstance(key, str) else _EXTENSION_NAMES.get(key, str(key))
        if name in out:
            continue  # an extension never overrides a core claim (section 4).
        out[name] = json_safe(value)
    if devattest:
        out[DEVATTEST_CLAIM] = json_safe(devattest)


def _put_extensions_cbor(out: dict[Any, Any], extensions: Mapping[str | int, Any],
                         devattest: dict[str, Any]) -> None:
    for key, value in extensions.items():
        ckey: str | int = _EXTENSION_KEYS.get(key, key) if isinstance(key, str) else key
        if ckey in out:
            continue
        out[ckey] = cbor_safe(value)
    if devattest:
        out[DEVATTEST_CBOR_KEY] = cbor_safe(devattest)


#: Integers a CBOR head holds (major types 0 and 1): -2**64 .. 2**64 - 1. A Relying Party's
#: strict decoder refuses larger ones (bignums), so results carry them as text.
_INT_END = 1 << 64
#: Above this size an oversized integer is written in hexadecimal (decimal conversion of
#: a huge integer takes quadratic time, and Python refuses it above 4,300 digits).
_DECIMAL_BITS = 4096


def int_text(value: int) -> str:
    """An integer too large for a result's number types, as text: decimal, or ``0x``
    hexadecimal above :data:`_DECIMAL_BITS` bits. Never raises."""
    if value.bit_length() <= _DECIMAL_BITS:
        return int.__repr__(value)
    return hex(value)


def json_safe(value: Any) -> Any:
    """``value`` with bytes as unpadded base64url, map keys as text and tuples as lists.

    JSON has no NaN or infinity (RFC 8259 section 6): a non-finite float (which hostile
    Evidence can carry in any claim) becomes the text ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"``, and an integer beyond 64 bits becomes its text (:func:`int_text`), so
    that signing the result of such Evidence cannot fail and its reader gets only numbers
    every JSON and CBOR library reads.
    """
    # The exact built-in types first, by identity (an ABC isinstance check per value was
    # the largest cost of signing an EAR); subclasses and other types take the general way.
    t = type(value)
    if t is str or value is None or t is bool:
        return value
    if t is int:
        return value if -_INT_END <= value < _INT_END else int_text(value)
    if t is float:
        return value if math.isfinite(value) else _non_finite(value)
    if t is bytes:
        return b64url_encode(value)
    if t is dict:
        return {k if type(k) is str else _json_key(k): json_safe(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return b64url_encode(bytes(value))
    if isinstance(value, Mapping):
        return {_json_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value)
    if isinstance(value, int) and not isinstance(value, bool) and not (
            -_INT_END <= value < _INT_END):
        return int_text(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    tag = getattr(value, "tag", None)
    if isinstance(tag, int) and hasattr(value, "value"):  # cbor2.CBORTag
        return {"tag": json_safe(tag), "value": json_safe(value.value)}
    return _text_of(value)


def cbor_safe(value: Any) -> Any:
    """``value`` for a CBOR EAR: integers beyond 64 bits as text (:func:`int_text`), since a
    Relying Party's strict decoder refuses bignums; maps and arrays are copied (tuples
    become lists), everything else is kept."""
    t = type(value)
    if t is str or t is bytes or value is None or t is bool or t is float:
        return value
    if t is int:
        return value if -_INT_END <= value < _INT_END else int_text(value)
    if isinstance(value, Mapping):
        return {cbor_safe(k): cbor_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [cbor_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not (
            -_INT_END <= value < _INT_END):
        return int_text(value)
    tag = getattr(value, "tag", None)
    if type(tag) is int and hasattr(value, "value") and type(value).__name__ == "CBORTag":
        inner = value.value
        safe = cbor_safe(inner)
        return value if safe is inner else type(value)(tag, safe)
    return value


def _text_of(value: Any) -> str:
    """``str(value)`` for a value of no JSON type (a date, a UUID, a simple value...), or
    its bounded description if even that fails."""
    try:
        return str(value)
    except Exception:
        return shown(value)


def _non_finite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray):
        return b64url_encode(bytes(key))
    if isinstance(key, int) and not isinstance(key, bool):
        return int_text(key)
    return _text_of(key)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def claims_to_result(claims: Mapping[str, Any]) -> AttestationResult:
    """Parse a JSON EAR claims-set (-03, or -02 / Veraison names) into a result.

    Args:
        claims: the decoded JWT claims-set.

    Returns:
        The Attestation Result. Unknown claims are kept in ``extensions``.

    Raises:
        UnknownResultProfile: ``eat_profile`` is absent from :data:`KNOWN_PROFILES`.
        MalformedResult: a mandatory claim is missing or a claim has the wrong type.
    """
    if not isinstance(claims, Mapping):
        raise MalformedResult("the EAR claims-set is not a map")
    rest = dict(claims)
    # Section 3: eat_profile is mandatory and selects the claim names.
    profile = rest.pop("eat_profile", None)
    if not isinstance(profile, str):
        raise MalformedResult("eat_profile is missing or not text")
    if profile not in KNOWN_PROFILES:
        raise UnknownResultProfile(f"unknown EAR profile {shown(profile)}")
    names = _NAMES_03 if profile == EAR_PROFILE else _NAMES_02
    iat = _time(rest.pop("iat", None), "iat", required=True)
    assert iat is not None
    exp = _time(rest.pop("exp", None), "exp", required=False)
    verifier = _verifier_id(rest.pop(names["verifier"], None), json=True)
    raw = rest.pop(names["raw"], None)
    raw_evidence = None if raw is None else _b64_claim(raw, names["raw"])
    nonce = _nonce_json(rest, "eat_nonce")
    submods_in = rest.pop("submods", None)
    if not isinstance(submods_in, Mapping) or not submods_in:
        raise MalformedResult("submods is missing, not a map or empty")
    submods: dict[str, Appraisal] = {}
    for name, sub in submods_in.items():
        if not isinstance(name, str):
            raise MalformedResult("a submod label is not text")
        submods[name] = _appraisal_from_json(sub, names, name)
    top_status = rest.pop(names["status"], None)
    status = _overall_status(
        None if top_status is None else _status_json(top_status, "ear_status"), submods)
    ext, evidence_digest, media_type = _top_extensions(rest, json=True)
    return AttestationResult(
        status=status, submods=submods, iat=iat, exp=exp, nonce=nonce,
        verifier_id=verifier, profile=profile, evidence_digest=evidence_digest,
        media_type=media_type, raw_evidence=raw_evidence, extensions=ext)


def cbor_claims_to_result(claims: Mapping[Any, Any]) -> AttestationResult:
    """Parse a CBOR EAR claims-set (-03 or -02 integer keys) into a result.

    Args:
        claims: the decoded CWT claims-set.

    Returns:
        The Attestation Result. Unknown claims are kept in ``extensions``.

    Raises:
        UnknownResultProfile: ``eat_profile`` (265) is absent from :data:`KNOWN_PROFILES`.
        MalformedResult: a mandatory claim is missing or a claim has the wrong type.
    """
    if not isinstance(claims, Mapping):
        raise MalformedResult("the EAR claims-set is not a map")
    rest = dict(claims)
    profile = rest.pop(_CBOR_PROFILE, None)
    if not isinstance(profile, str):
        raise MalformedResult("eat_profile (265) is missing or not text")
    if profile not in KNOWN_PROFILES:
        raise UnknownResultProfile(f"unknown EAR profile {shown(profile)}")
    iat = _time(rest.pop(_CBOR_IAT, None), "iat", required=True)
    assert iat is not None
    exp = _time(rest.pop(_CBOR_EXP, None), "exp", required=False)
    verifier = _verifier_id(rest.pop(_CBOR_VERIFIER_ID, None), json=False)
    raw = rest.pop(_CBOR_RAW_EVIDENCE, None)
    if raw is not None and not isinstance(raw, bytes):
        raise MalformedResult("ear_raw_evidence (1002) is not a byte string")
    nonce = _nonce_cbor(rest)
    submods_in = rest.pop(_CBOR_SUBMODS, None)
    if not isinstance(submods_in, Mapping) or not submods_in:
        raise MalformedResult("submods (266) is missing, not a map or empty")
    submods: dict[str, Appraisal] = {}
    for name, sub in submods_in.items():
        if not isinstance(name, str):
            raise MalformedResult("a submod label is not text")
        submods[name] = _appraisal_from_cbor(sub, name)
    top_status = rest.pop(_CBOR_STATUS, None)
    status = _overall_status(
        None if top_status is None else _status_cbor(top_status, "ear_status"), submods)
    ext, evidence_digest, media_type = _top_extensions(rest, json=False)
    return AttestationResult(
        status=status, submods=submods, iat=iat, exp=exp, nonce=nonce,
        verifier_id=verifier, profile=profile, evidence_digest=evidence_digest,
        media_type=media_type, raw_evidence=raw, extensions=ext)


def _appraisal_from_json(sub: Any, names: Mapping[str, str], label: str) -> Appraisal:
    if not isinstance(sub, Mapping):
        raise MalformedResult(f"submod {shown(label)} is not a map")
    rest = dict(sub)
    # Section 3.1: ear_status is mandatory.
    if names["status"] not in rest:
        raise MalformedResult(f"submod {shown(label)} has no {names['status']}")
    status = _status_json(rest.pop(names["status"]), f"{label}.{names['status']}")
    tv_in = rest.pop(names["tv"], None)
    vector = TrustVector() if tv_in is None else _tv(tv_in, json=True, where=label)
    ids = _policy_ids_in(rest.pop(names["policy"], None), label,
                         single=names is _NAMES_02)
    profile = rest.pop("eat_profile", None)
    if profile is not None and not isinstance(profile, str):
        raise MalformedResult(f"submod {shown(label)} eat_profile is not text")
    nonce = _nonce_json(rest, "eat_nonce", where=label)
    return _appraisal(status, vector, ids, profile, nonce, label,
                      _rename_02_extensions(rest) if names is _NAMES_02 else rest, json=True)


def _appraisal_from_cbor(sub: Any, label: str) -> Appraisal:
    if not isinstance(sub, Mapping):
        raise MalformedResult(f"submod {shown(label)} is not a map")
    rest = dict(sub)
    if _CBOR_STATUS not in rest:
        raise MalformedResult(f"submod {shown(label)} has no ear_status (1000)")
    status = _status_cbor(rest.pop(_CBOR_STATUS), f"{label}.ear_status")
    tv_in = rest.pop(_CBOR_TV, None)
    vector = TrustVector() if tv_in is None else _tv(tv_in, json=False, where=label)
    pol = rest.pop(_CBOR_POLICY_IDS, None)
    # -02 carried one text policy id under the same key; -03 carries a list.
    ids = _policy_ids_in(pol, label, single=isinstance(pol, str))
    profile = rest.pop(_CBOR_PROFILE, None)
    if profile is not None and not isinstance(profile, str):
        raise MalformedResult(f"submod {shown(label)} eat_profile (265) is not text")
    nonce = _nonce_cbor(rest, where=label)
    return _appraisal(status, vector, ids, profile, nonce, label, rest, json=False)


def _appraisal(status: Status, vector: TrustVector, ids: tuple[str, ...],
               profile: str | None, nonce: bytes | None, label: str,
               rest: dict[Any, Any], *, json: bool) -> Appraisal:
    # Section 3.1: ear_status is "no higher trust than" the worst claim of the vector.
    _check_not_more_trusting(status, vector.worst_status(), f"submod {shown(label)}")
    dev = rest.pop(DEVATTEST_CLAIM if json else DEVATTEST_CBOR_KEY, None)
    reasons: tuple[tuple[str, str], ...] = ()
    annotated: Mapping[str, Any] = {}
    failed_step: str | None = None
    if dev is not None:
        reasons, annotated, failed_step = _devattest_from(dev, label)
    return Appraisal(
        status=status, trust_vector=vector, reasons=reasons,
        appraisal_policy_id=ids[0] if ids else None, annotated_evidence=annotated,
        failed_step=failed_step, appraisal_policy_ids=ids if len(ids) > 1 else (),
        profile=profile, nonce=nonce, extensions=rest)


def _devattest_from(dev: Any, label: str
                    ) -> tuple[tuple[tuple[str, str], ...], Mapping[str, Any], str | None]:
    if not isinstance(dev, Mapping):
        raise MalformedResult(f"submod {shown(label)}: {DEVATTEST_CLAIM} is not a map")
    reasons_in = dev.get("reasons", [])
    reasons: list[tuple[str, str]] = []
    if not isinstance(reasons_in, list):
        raise MalformedResult(f"submod {shown(label)}: reasons is not a list")
    for r in reasons_in:
        if not (isinstance(r, Mapping) and isinstance(r.get("code"), str)
                and isinstance(r.get("message"), str)):
            raise MalformedResult(f"submod {shown(label)}: a reason is not {{code, message}}")
        reasons.append((r["code"], r["message"]))
    annotated = dev.get("annotated-evidence", {})
    if not isinstance(annotated, Mapping):
        raise MalformedResult(f"submod {shown(label)}: annotated-evidence is not a map")
    step = dev.get("failed-step")
    if step is not None and not isinstance(step, str):
        raise MalformedResult(f"submod {shown(label)}: failed-step is not text")
    return tuple(reasons), dict(annotated), step


def _top_extensions(rest: dict[Any, Any], *, json: bool
                    ) -> tuple[dict[Any, Any], bytes | None, str | None]:
    if json:
        rest = _rename_02_extensions(rest)
    dev = rest.pop(DEVATTEST_CLAIM if json else DEVATTEST_CBOR_KEY, None)
    digest: bytes | None = None
    media_type: str | None = None
    if dev is not None:
        if not isinstance(dev, Mapping):
            raise MalformedResult(f"{DEVATTEST_CLAIM} is not a map")
        d = dev.get("evidence-digest")
        if d is not None:
            digest = _b64_claim(d, "evidence-digest") if json else d
            if not isinstance(digest, bytes):
                raise MalformedResult("evidence-digest is not a byte string")
        media_type = dev.get("media-type")
        if media_type is not None and not isinstance(media_type, str):
            raise MalformedResult("media-type is not text")
    return rest, digest, media_type


def _rename_02_extensions(rest: dict[Any, Any]) -> dict[Any, Any]:
    """-02 extension names (``ear.veraison.key-attestation``) -> -03 (``ear_veraison_...``)."""
    out: dict[Any, Any] = {}
    for k, v in rest.items():
        renamed = k.replace(".", "_").replace("-", "_") if (
            isinstance(k, str) and k.startswith("ear.")) else k
        out[renamed] = v
    return out


def _overall_status(given: Status | None, submods: Mapping[str, Appraisal]) -> Status:
    worst = Status.NONE
    for sub in submods.values():
        if sub.status.tier > worst.tier:
            worst = sub.status
    if given is None:
        return worst
    # Section 3: the overall status is "no higher trust than" the worst submod status.
    _check_not_more_trusting(given, worst, "the overall ear_status")
    return given


def _check_not_more_trusting(status: Status, worst: Status, where: str) -> None:
    """Reject a status that claims more trust than its parts warrant.

    "none" makes no claim, and contraindicated is the floor, so only an affirming or
    warning status above a warning or contraindicated part is rejected.
    """
    if status in (Status.AFFIRMING, Status.WARNING) and worst.tier > status.tier:
        raise MalformedResult(
            f"{where} is {status.value} but its worst part is {worst.value}")


def _status_json(value: Any, where: str) -> Status:
    if not isinstance(value, str):
        raise MalformedResult(f"{where} is not text")
    try:
        return Status(value)
    except ValueError:
        raise MalformedResult(f"{where}: {shown(value)} is not a trustworthiness tier") from None


def _status_cbor(value: Any, where: str) -> Status:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _TIER_BY_CBOR:
        raise MalformedResult(f"{where}: {shown(value)} is not a trustworthiness tier (0/2/32/96)")
    return _TIER_BY_CBOR[value]


def _tv(value: Any, *, json: bool, where: str) -> TrustVector:
    # ar4si.cddl: a non-empty map of the eight labels to integers in -128..127.
    if not isinstance(value, Mapping) or not value:
        raise MalformedResult(f"submod {shown(where)}: the trustworthiness vector is not a "
                              "non-empty map")
    table: Mapping[Any, str] = _TV_BY_JSON if json else _TV_BY_CBOR
    kwargs: dict[str, int] = {}
    for k, v in value.items():
        if isinstance(k, bool) or k not in table:
            raise MalformedResult(
                f"submod {shown(where)}: unknown trustworthiness claim {shown(k)}")
        if isinstance(v, bool) or not isinstance(v, int) or not -128 <= v <= 127:
            raise MalformedResult(f"submod {shown(where)}: claim {shown(k)} is not an integer in "
                                  "-128..127")
        kwargs[table[k]] = v
    return TrustVector(**kwargs)


def _policy_ids_in(value: Any, label: str, *, single: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    if single:
        if not isinstance(value, str):
            raise MalformedResult(f"submod {shown(label)}: the appraisal policy id is not text")
        return (value,)
    # Section 3.1: a non-empty list of text.
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MalformedResult(
            f"submod {shown(label)}: ear_appraisal_policy_ids is not a non-empty list of text")
    return tuple(value)


def _verifier_id(value: Any, *, json: bool) -> VerifierId:
    # ar4si.cddl verifier-id: {developer, build}, both text and mandatory.
    dev_key, build_key = ("developer", "build") if json else (0, 1)
    if not isinstance(value, Mapping):
        raise MalformedResult("ear_verifier_id is missing or not a map")
    dev, build = value.get(dev_key), value.get(build_key)
    if not isinstance(dev, str) or not isinstance(build, str):
        raise MalformedResult("ear_verifier_id needs text developer and build")
    return VerifierId(developer=dev, build=build)


def _time(value: Any, name: str, *, required: bool) -> int | None:
    # Section 3: iat/exp are integers; a floating-point exp "MUST" be an error.
    if value is None:
        if required:
            raise MalformedResult(f"{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResult(f"{name} is not an integer")
    return value


def _nonce_json(rest: dict[Any, Any], key: str, where: str | None = None) -> bytes | None:
    value = rest.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        return None  # a nonce array (RFC 9711 4.1) stays verbatim as an extension.
    rest.pop(key)
    return _b64_claim(value, key if where is None else f"{where}.{key}")


def _nonce_cbor(rest: dict[Any, Any], where: str | None = None) -> bytes | None:
    value = rest.get(_CBOR_NONCE)
    if value is None or isinstance(value, list):
        return None
    rest.pop(_CBOR_NONCE)
    if not isinstance(value, bytes):
        raise MalformedResult(f"{where or 'EAR'}: eat_nonce (10) is not a byte string")
    return value


def _b64_claim(value: Any, name: str) -> bytes:
    """A base64 claim value: base64url (or standard) alphabet, padding optional."""
    if not isinstance(value, str):
        raise MalformedResult(f"{name} is not base64 text")
    s = value.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResult(f"{name} is not valid base64") from None


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(
        b"=").decode("ascii")


def b64url_decode_strict(text: str, name: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 section 2): URL alphabet, no padding, canonical.

    Raises:
        MalformedResult: any other encoding, so one token has exactly one spelling.
    """
    if not text or "=" in text or len(text) % 4 == 1:
        raise MalformedResult(f"{name} is not unpadded base64url")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResult(f"{name} is not unpadded base64url") from None
    if b64url_encode(data) != text:  # other alphabets and non-zero trailing bits
        raise MalformedResult(f"{name} is not canonical base64url")
    return data
