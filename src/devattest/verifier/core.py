"""The pure appraisal core: Evidence bytes in, an Attestation Result out.

One fixed pipeline (RFC 9334 section 3 background-check model; steps numbered once here and
tagged where they happen):

1. Parse the Evidence under strict limits, with the scheme the media type selects.
2. Find the attesting key: Trust Anchor by Instance ID or ``kid``, or a certificate chain
   (``x5chain``) validated at ``now`` and bound to the claimed Instance ID.
3. Verify the signature (or MAC) over the Evidence.
4. Check freshness: the Evidence's nonce equals the Verifier's, compared in constant time.
5. Apply the profile's claim rules (mandatory claims, lengths, lifecycle, ``iat``/``exp``);
   the profile must be one the selected scheme appraises (5.7, no scheme confusion).
6. Appraise the claims against the Reference Values of the device class; software that no
   Reference Value was compared with is not affirmed (6.7).
7. Apply the Appraisal Policy, which may veto or adjust the trustworthiness vector, or
   explicitly accept signature-only appraisal (7.1).

No I/O, no clock, no globals: everything comes in as an argument. ``verify`` never raises for
bad Evidence; it returns a contraindicated result that says why. ``verify_strict`` raises.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from devattest.errors import (
    DevattestError,
    KeyMismatch,
    KeyNotFound,
    NonceMismatch,
    NoReferenceValues,
    PolicyViolation,
    ProfileMismatch,
    ReferenceValueError,
    SoftwareNotAppraised,
    TokenTooLarge,
    UnknownProfile,
    UsageError,
    VerifierMalfunction,
    shown,
)
from devattest.model import (
    DEFAULT_LIMITS,
    DEFAULT_OPTIONS,
    Appraisal,
    AttestationResult,
    DecodeLimits,
    KeyAnchor,
    KeyHints,
    ReferenceValues,
    Status,
    TrustAnchors,
    TrustVector,
    VerifierId,
    VerifyOptions,
    ar4si,
)
from devattest.model._fast import fast_constructor
from devattest.model.result import new_appraisal, new_attestation_result, new_trust_vector
from devattest.policy._base import AppraisalPolicy, PolicyInput
from devattest.policy._combinators import policy_ids
from devattest.schemes import EvidenceScheme, SchemeRegistry, default_registry
from devattest.verifier._refvals import appraise_reference_values, compared_components
from devattest.verifier._trustvector import claim_for_error, worse

#: Default lifetime of an Attestation Result (EAR ``exp - iat``), in seconds.
DEFAULT_RESULT_TTL = 3600
DEFAULT_VERIFIER_ID = VerifierId()


@cache
def _default_registry() -> SchemeRegistry:
    return default_registry()


_new_policy_input = fast_constructor(PolicyInput)
_TRUSTWORTHY_INSTANCE = ar4si.TRUSTWORTHY_INSTANCE
_GENUINE_HARDWARE = ar4si.GENUINE_HARDWARE
_APPROVED_RUNTIME = ar4si.APPROVED_RUNTIME
_UNRECOGNIZED_RUNTIME = ar4si.UNRECOGNIZED_RUNTIME
#: ``annotated-evidence.appraisal`` of a result the policy accepted without any software
#: compared with a Reference Value (docs/ear.md).
SIGNATURE_ONLY = "signature-only"
_SIGNATURE_ONLY_NOTICE = ("signature-only appraisal: no software component was compared with "
                          "a Reference Value; the Appraisal Policy allows it")
_SOFTWARE_NOT_APPRAISED = (SoftwareNotAppraised.code,
                           "no software component was compared with a Reference Value "
                           "(nothing about the software is vouched for)")
_sha256 = hashlib.sha256


def _as_epoch(now: datetime | int | float) -> int:
    if type(now) is int:
        return now
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise UsageError("now must be a timezone-aware datetime (or POSIX seconds)")
        return int(now.timestamp())
    return int(now)


def _as_datetime(now: datetime | int | float) -> datetime:
    if isinstance(now, datetime):
        return now
    return datetime.fromtimestamp(now, UTC)


def find_key(scheme: EvidenceScheme, decoded: Any, anchors: TrustAnchors, *,
             now: datetime | int | float) -> KeyAnchor:
    """Step 2: find the Trust Anchor for the attesting key (RFC 9334 section 7.1).

    Order: an anchor registered for the claimed Instance ID; one registered for the COSE
    ``kid``; a certificate chain from ``x5chain`` validated against the CA anchors at ``now``
    (and, where the scheme defines one, bound to the claimed Instance ID); finally a single
    unbound anchor (a key given explicitly, e.g. ``devattest verify --key``).

    Raises:
        KeyNotFound: nothing matches.
        ChainError: the chain is invalid (a subclass says why).
        KeyMismatch: the certified key does not match the claimed Instance ID.
    """
    hints: KeyHints = decoded.key_hints
    # 2.1: by Instance ID (PSA RFC 9783 section 4.2.1; EAT ueid RFC 9711 section 4.2.1).
    if hints.instance_id is not None:
        anchor = anchors.by_instance_id(hints.instance_id)
        if anchor is not None:
            return anchor
    # 2.2: by COSE kid (RFC 9052 section 3.1, label 4).
    if hints.kid is not None:
        anchor = anchors.by_kid(hints.kid)
        if anchor is not None:
            _require_claimed_instance(anchor, hints, step="2.2")
            return anchor
    # 2.3: by certificate chain (RFC 9360 x5chain, label 33) to a CA Trust Anchor.
    if hints.x5chain and anchors.certificates:
        from devattest.crypto.chain import validate_chain

        certified: KeyAnchor = validate_chain(hints.x5chain, anchors, now=_as_datetime(now))
        if hints.instance_id is not None:
            implied = scheme.instance_id_for_key(certified)
            if implied is not None and not hmac.compare_digest(implied, hints.instance_id):
                raise KeyMismatch(
                    "the certified key does not match the token's Instance ID", step="2.3")
        return certified
    # 2.4: a single unbound anchor is the Trust Anchor for this token.
    unbound = [a for a in anchors.keys if a.instance_id is None and a.kid is None]
    if len(unbound) == 1:
        return unbound[0]
    what = []
    if hints.instance_id is not None:
        what.append(f"instance ID {hints.instance_id.hex()}")
    if hints.kid is not None:
        what.append(f"kid {hints.kid.hex()}")
    if hints.x5chain:
        what.append("an x5chain" + ("" if anchors.certificates else " (no CA anchors)"))
    raise KeyNotFound(
        "no Trust Anchor for " + (", ".join(what) if what else "a token without key hints"),
        step="2")


def require_identity(scheme: EvidenceScheme, decoded: Any, key: KeyAnchor,
                     expected: bytes) -> None:
    """Step 2.5: the attesting key is the one bound to the identity the Relying Party
    expects (the device's Instance ID or UEID), not merely some trusted key.

    Without it, a device's credential could carry Evidence that another, healthy device
    signed for the relayed nonce (a relay, RFC 9334 section 12.1), and the first device
    would be recorded as trustworthy. The key is bound when it is registered for the
    identity (a raw Trust Anchor by Instance ID or TPM name) or when the identity is
    derived from the key itself (a PSA Instance ID is 0x01 || SHA-256 of the IAK, RFC 9783
    section 4.2.1, which covers keys certified by an x5chain). The Evidence's own claim of
    identity, when it makes one, must be the same.

    Raises:
        KeyMismatch: the key or the claimed identity is another device's.
    """
    claimed = decoded.key_hints.instance_id
    if claimed is not None and not hmac.compare_digest(claimed, expected):
        raise KeyMismatch("the Evidence names another device's identity than the one "
                          "expected", step="2.5")
    if key.instance_id is not None:
        if hmac.compare_digest(key.instance_id, expected):
            return
    else:
        implied = scheme.instance_id_for_key(key)
        if implied is not None and hmac.compare_digest(implied, expected):
            return
    raise KeyMismatch("the attesting key is not the one bound to the expected device "
                      "identity", step="2.5")


def _require_claimed_instance(anchor: KeyAnchor, hints: KeyHints, *, step: str) -> None:
    # 2.2: a key found by kid must not vouch for an Instance ID other than the one it is
    # registered for: the Evidence's claims would otherwise name a device (whose own anchor
    # step 2.1 did not find) that never signed them.
    if (hints.instance_id is not None and anchor.instance_id is not None
            and not hmac.compare_digest(anchor.instance_id, hints.instance_id)):
        raise KeyMismatch("the key found by kid is registered for another Instance ID",
                          step=step)


def _require_arguments(expected_nonce: object, now: object) -> None:
    # Misuse, not bad Evidence: freshness is never optional (RFC 9334 section 10), and a
    # time without a zone is no time. Checked before the pipeline, so it raises.
    if not isinstance(expected_nonce, bytes) or not expected_nonce:
        raise UsageError("expected_nonce must be non-empty bytes: freshness is not optional "
                         f"(got {type(expected_nonce).__name__}"
                         f"{' of length 0' if isinstance(expected_nonce, bytes) else ''})")
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise UsageError("now must be a timezone-aware datetime (or POSIX seconds)")
    elif isinstance(now, bool) or not isinstance(now, int | float):
        raise UsageError(f"now must be a timezone-aware datetime or POSIX seconds, not "
                         f"{type(now).__name__}")


def _check_nonce(carried: Any, expected: bytes) -> None:
    # Step 4: freshness (RFC 9334 section 10; RFC 9711 section 4.1 eat_nonce). Constant time.
    if isinstance(carried, bytes):
        if hmac.compare_digest(carried, expected):
            return
    elif isinstance(carried, (list, tuple)):
        ok = False
        for n in carried:
            if isinstance(n, bytes) and hmac.compare_digest(n, expected):
                ok = True
        if ok:
            return
    elif carried is None:
        raise NonceMismatch("the Evidence carries no nonce", step="4")
    raise NonceMismatch("the Evidence's nonce is not the one the Verifier issued", step="4")


def require_scheme_profile(registry: SchemeRegistry, scheme: EvidenceScheme, profile: str,
                           media_type: str) -> None:
    """Step 5.7: the token's profile is one the scheme its media type selected appraises.

    The media type comes from the caller (the request, never the token alone); the profile
    the token claims must agree with it (RFC 9782: the ``eat_profile`` media-type parameter
    and the claim name one profile; RFC 9711 section 4.3.2). A profile of another registered
    scheme (a PSA token sent as generic EAT, which would skip PSA's rules) is a mismatch; a
    profile no registered scheme knows is refused, since no scheme applied its rules.

    Raises:
        ProfileMismatch: the profile belongs to another registered scheme.
        UnknownProfile: no registered scheme appraises the profile.
    """
    owners = registry.schemes_for_profile(profile)
    if scheme.name in owners:
        return
    profile_shown = shown(profile)
    if owners:
        raise ProfileMismatch(
            f"the token's profile {profile_shown} is appraised by the "
            f"{' or '.join(owners)} scheme, but its media type {shown(media_type)} selected "
            f"the {scheme.name} scheme",
            step="5.7")
    raise UnknownProfile(f"no evidence scheme appraises the token's profile {profile_shown}: "
                         "it cannot be affirmed", step="5.7")


def _appraise(evidence: bytes, media_type: str, expected_nonce: bytes, now: int,
              scheme: EvidenceScheme, trust_anchors: TrustAnchors,
              reference_values: ReferenceValues | None, policy: AppraisalPolicy,
              limits: DecodeLimits, options: VerifyOptions, verifier_id: VerifierId,
              result_ttl: int, expected_identity: bytes | None = None,
              registry: SchemeRegistry | None = None) -> AttestationResult:
    if trust_anchors.empty:
        raise KeyNotFound("the Trust Anchor set is empty: nothing can be trusted", step="2")
    # Step 1: parse (RFC 9052 section 4.2 / RFC 8392 section 7; scheme-specific profile).
    # A scheme may declare its own larger bound (TPM Evidence carries bare-metal event logs
    # of hundreds of KiB: TpmQuoteScheme.max_evidence_bytes); looked up only when needed.
    if len(evidence) > limits.max_token_size:
        limit = max(limits.max_token_size, getattr(scheme, "max_evidence_bytes", 0))
        if len(evidence) > limit:
            raise TokenTooLarge(f"token is {len(evidence)} bytes, the limit is {limit}",
                                step="1")
    decoded = scheme.decode(evidence, limits=limits, options=options)
    # Step 2: find the attesting key.
    key = find_key(scheme, decoded, trust_anchors, now=now)
    if expected_identity is not None:
        require_identity(scheme, decoded, key, expected_identity)
    # Step 3: signature or MAC (RFC 9052 sections 4.4 and 6.3).
    notices = scheme.verify_integrity(decoded, key, options=options)
    # Step 4: freshness.
    _check_nonce(decoded.nonce, expected_nonce)
    # Step 5: the profile's claim rules.
    claims = scheme.extract_claims(decoded, now=now, options=options)
    # 5.7: no scheme confusion: the profile is one this scheme appraises.
    require_scheme_profile(registry if registry is not None else _default_registry(), scheme,
                           claims.profile, media_type)

    tv: dict[str, int | None] = {
        "instance_identity": _TRUSTWORTHY_INSTANCE,
        "hardware": _GENUINE_HARDWARE if key.hardware_backed else None,
        "executables": None,
        "configuration": None,
    }
    reasons: list[tuple[str, str]] = []
    for f in claims.findings:
        tv[f.claim] = worse(tv.get(f.claim), f.value)
        reasons.append((f.code, f.message))

    # Step 6: Reference Values (RFC 9334 section 8.3).
    matched = False
    compared = 0
    explained = False  # a step-6 reason already says why executables is not affirmed
    if reference_values is not None:
        refs = reference_values.for_class(claims.class_id)
        problems: list[ReferenceValueError]
        if refs is None:
            cid = claims.class_id
            cid_shown = cid.hex() if isinstance(cid, bytes) else str(cid)
            problems = [NoReferenceValues(
                f"no Reference Values for device class {cid_shown}", step="6")]
        else:
            problems = appraise_reference_values(claims, refs)
            compared = compared_components(claims, refs)
        if problems:
            for p in problems:
                c, v = claim_for_error(p)
                tv[c] = worse(tv.get(c), v)
                reasons.append((p.code, p.message))
                explained = explained or c == "executables"
        elif compared:
            matched = True
            tv["executables"] = worse(tv["executables"], _APPROVED_RUNTIME)
        if not problems and claims.security_lifecycle is not None and refs is not None \
                and refs.allowed_lifecycles is not None:
            tv["configuration"] = worse(tv["configuration"], ar4si.APPROVED_CONFIG)
    # 6.7: nothing is affirmed that was not appraised. Software that was never compared with
    # a Reference Value (none given, or none for its components) cannot be vouched for:
    # executables 33 "unrecognized runtime" (AR4SI; docs/ear.md), so at most warning, unless
    # the Appraisal Policy explicitly accepts signature-only appraisal (step 7).
    executables_unappraised = tv["executables"]
    unappraised_at = -1
    if not compared:
        tv["executables"] = worse(executables_unappraised, _UNRECOGNIZED_RUNTIME)
        if not explained:
            unappraised_at = len(reasons)
            reasons.append(_SOFTWARE_NOT_APPRAISED)
    vector = new_trust_vector(**tv)

    # Step 7: Appraisal Policy (RFC 9334 section 8.5).
    scheme_name = scheme.name
    decision = policy.evaluate(_new_policy_input(
        scheme=scheme_name, media_type=media_type, claims=claims, trust_vector=vector,
        key=key, reference_values_matched=matched, software_appraised=compared > 0))
    if decision.trust_vector is not None:
        vector = decision.trust_vector
    signature_only = unappraised_at >= 0 and decision.allow and decision.signature_only
    if signature_only:
        # 7.1: the policy accepts signature-only appraisal explicitly: executables goes back
        # to what steps 5-6 made it ("no claim" unless a finding set it) and the result says
        # so below; a policy that replaced the vector decided executables itself.
        del reasons[unappraised_at]
        if decision.trust_vector is None:
            vector = replace(vector, executables=executables_unappraised)
    status = vector.worst_status()
    if not decision.allow:
        status = Status.CONTRAINDICATED
        why = "; ".join(decision.reasons) or "the Appraisal Policy rejected the Evidence"
        veto = PolicyViolation(why, step="7")
        reasons.append((decision.code or veto.code, veto.message))
    elif status is Status.NONE:
        status = Status.CONTRAINDICATED
        reasons.append(("no_trust_claims", "no trustworthiness claim could be made"))

    annotated: dict[str, Any] = {"claims": claims.raw, "profile": claims.profile,
                                 "key": key.label or key.authority}
    if signature_only:
        annotated["appraisal"] = SIGNATURE_ONLY
        notices = (*notices, _SIGNATURE_ONLY_NOTICE)
    if notices or claims.annotations:
        annotated["notices"] = [*notices, *claims.annotations]
    sub = new_appraisal(status=status, trust_vector=vector, reasons=tuple(reasons),
                        appraisal_policy_id=policy.policy_id, annotated_evidence=annotated,
                        appraisal_policy_ids=policy_ids(policy), nonce=expected_nonce)
    # The identity this key is bound to, for device binding (the service binds an unbound
    # device on its first affirming result; step 2.5 then holds it to that identity).
    identity = key.instance_id if key.instance_id is not None \
        else scheme.instance_id_for_key(key)
    return _result(evidence, media_type, expected_nonce, now, verifier_id, result_ttl,
                   scheme_name, sub, identity)


def _result(evidence: bytes, media_type: str, expected_nonce: bytes, now: int,
            verifier_id: VerifierId, result_ttl: int, submod: str,
            sub: Appraisal, identity: bytes | None = None) -> AttestationResult:
    return new_attestation_result(
        status=sub.status, submods={submod: sub}, iat=now, exp=now + result_ttl,
        nonce=expected_nonce, verifier_id=verifier_id,
        evidence_digest=_sha256(evidence).digest(), media_type=media_type,
        attested_identity=identity)


def contraindicated_result(error: DevattestError, *, evidence: bytes, media_type: str,
                           expected_nonce: bytes, now: datetime | int | float,
                           submod: str = "evidence", policy_id: str | None = None,
                           verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
                           result_ttl: int = DEFAULT_RESULT_TTL) -> AttestationResult:
    """The Attestation Result for Evidence that failed: contraindicated, with the reason.

    Used by :func:`verify` and by callers that reject Evidence before appraisal (a replayed
    nonce in the service, for instance) so that every outcome is a result.
    """
    claim, value = claim_for_error(error)
    vector = TrustVector(**{claim: value})
    sub = Appraisal(status=Status.CONTRAINDICATED, trust_vector=vector,
                    reasons=((error.code, error.message),), appraisal_policy_id=policy_id,
                    failed_step=error.step)
    return _result(evidence, media_type, expected_nonce, _as_epoch(now), verifier_id,
                   result_ttl, submod, sub)


def verify(evidence: bytes, *, media_type: str, expected_nonce: bytes,
           trust_anchors: TrustAnchors, reference_values: ReferenceValues | None,
           policy: AppraisalPolicy, now: datetime | int | float,
           registry: SchemeRegistry | None = None, limits: DecodeLimits = DEFAULT_LIMITS,
           options: VerifyOptions = DEFAULT_OPTIONS,
           verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
           result_ttl: int = DEFAULT_RESULT_TTL,
           expected_identity: bytes | None = None) -> AttestationResult:
    """Appraise Evidence and return an Attestation Result. Never raises for bad Evidence.

    Args:
        evidence: the raw Evidence bytes.
        media_type: selects the evidence scheme (e.g. ``application/psa-attestation-token``).
        expected_nonce: the nonce the Verifier issued for this Evidence (freshness is never
            optional).
        trust_anchors: keys and CA certificates trusted for attesting keys.
        reference_values: Reference Values, or None to skip step 6: nothing is then compared,
            so the result is at most ``warning`` (executables 33, reason
            ``software_not_appraised``) unless the policy explicitly accepts signature-only
            appraisal (``AllowUnappraisedSoftware``).
        policy: the Appraisal Policy.
        now: the time of appraisal (timezone-aware datetime or POSIX seconds).
        registry: evidence schemes; the built-in ones by default.
        limits: decoding limits.
        options: verification options (legacy relaxations are reported in the result).
        verifier_id: identifies this Verifier in the result.
        result_ttl: seconds until the result's ``exp``.
        expected_identity: the Instance ID (UEID, TPM name) of the device the Evidence is
            expected from; when given, the attesting key must be bound to it (step 2.5).

    Returns:
        The result. Bad Evidence yields ``Status.CONTRAINDICATED`` with the reason; an
        internal error yields a contraindicated "verifier malfunction" (-1) result.

    Raises:
        UsageError: an argument error, the caller's bug rather than the Evidence's: an
            empty or non-bytes ``expected_nonce``, a naive datetime or a non-time ``now``.
            Argument errors raise; Evidence errors never do (they are results).
        UnsupportedMediaType: never; an unknown media type is a contraindicated result. Use
            ``registry.for_media_type`` first to answer 415 before appraisal.
    """
    _require_arguments(expected_nonce, now)
    try:
        reg = registry if registry is not None else _default_registry()
        return _appraise(evidence, media_type, expected_nonce, _as_epoch(now),
                         reg.for_media_type(media_type), trust_anchors, reference_values,
                         policy, limits, options, verifier_id, result_ttl,
                         expected_identity, reg)
    except DevattestError as err:
        return contraindicated_result(
            err, evidence=evidence, media_type=media_type, expected_nonce=expected_nonce,
            now=now, policy_id=getattr(policy, "policy_id", None), verifier_id=verifier_id,
            result_ttl=result_ttl)
    except Exception as err:
        malfunction = VerifierMalfunction(f"{type(err).__name__}: {err}")
        return contraindicated_result(
            malfunction, evidence=evidence, media_type=media_type,
            expected_nonce=expected_nonce, now=now, verifier_id=verifier_id,
            result_ttl=result_ttl)


def verify_strict(evidence: bytes, *, media_type: str, expected_nonce: bytes,
                  trust_anchors: TrustAnchors, reference_values: ReferenceValues | None,
                  policy: AppraisalPolicy, now: datetime | int | float,
                  registry: SchemeRegistry | None = None,
                  limits: DecodeLimits = DEFAULT_LIMITS,
                  options: VerifyOptions = DEFAULT_OPTIONS,
                  verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
                  result_ttl: int = DEFAULT_RESULT_TTL,
                  expected_identity: bytes | None = None) -> AttestationResult:
    """Like :func:`verify`, but a failure of steps 1-5 raises instead of returning.

    Reference-Value mismatches and policy vetoes still return a (non-affirming) result,
    because they are appraisal outcomes, not errors.

    Raises:
        UsageError: an argument error (see :func:`verify`).
        EvidenceError: the Evidence is malformed (a subclass says how).
        VerificationError: a verification step failed (a subclass says which).
        PolicyError: the Appraisal Policy itself is broken.
    """
    _require_arguments(expected_nonce, now)
    reg = registry if registry is not None else _default_registry()
    epoch = _as_epoch(now)
    scheme = reg.for_media_type(media_type)
    return _appraise(evidence, media_type, expected_nonce, epoch, scheme, trust_anchors,
                     reference_values, policy, limits, options, verifier_id, result_ttl,
                     expected_identity, reg)


@dataclass(frozen=True, slots=True)
class SignedResult:
    """An Attestation Result and its signed EAR (JWT)."""

    result: AttestationResult
    ear_jwt: str


def verify_and_sign(evidence: bytes, *, media_type: str, expected_nonce: bytes,
                    trust_anchors: TrustAnchors, reference_values: ReferenceValues | None,
                    policy: AppraisalPolicy, now: datetime | int | float, signing_key: Any,
                    signing_kid: str | None = None, registry: SchemeRegistry | None = None,
                    limits: DecodeLimits = DEFAULT_LIMITS,
                    options: VerifyOptions = DEFAULT_OPTIONS,
                    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
                    result_ttl: int = DEFAULT_RESULT_TTL,
                    expected_identity: bytes | None = None) -> SignedResult:
    """Appraise and sign the result as an EAR JWT (ES256). Never raises for bad Evidence.

    Raises:
        UsageError: an argument error (see :func:`verify`).
        ConfigurationError: the signing key is unusable (the operator's fault).
    """
    from devattest.ear import sign_ear_jwt

    result = verify(evidence, media_type=media_type, expected_nonce=expected_nonce,
                    trust_anchors=trust_anchors, reference_values=reference_values,
                    policy=policy, now=now, registry=registry, limits=limits,
                    options=options, verifier_id=verifier_id, result_ttl=result_ttl,
                    expected_identity=expected_identity)
    return SignedResult(result=result,
                        ear_jwt=sign_ear_jwt(result, signing_key, kid=signing_kid))


__all__ = [
    "DEFAULT_RESULT_TTL",
    "SIGNATURE_ONLY",
    "SignedResult",
    "contraindicated_result",
    "find_key",
    "require_identity",
    "require_scheme_profile",
    "verify",
    "verify_and_sign",
    "verify_strict",
]
