"""Generic EAT in CWT (RFC 9711, RFC 8392) and the constrained device profile.

Steps, as the appraisal core calls them:

1. ``decode``: a COSE_Sign1 or COSE_Mac0 (tag 18/17, optionally inside CWT tag 61; an untagged
   message is read as COSE_Sign1), the payload a claims map; the claims are parsed into typed
   values (:class:`EatClaimsSet`), and the profile rules checked; key hints are the ``ueid``
   claim and the COSE ``kid``/``x5chain``. A claims or profile error is held back until the
   signature is checked.
3. ``verify_integrity``: the signature or MAC, then the held-back verdict.
5. ``extract_claims``: ``iat``/``nbf``/``exp`` against ``now`` (with ``options.clock_skew``),
   normalised :class:`Claims` and findings (debug enabled, non-OEM boot, failed measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cbor2

from devattest.cose import (
    ES256,
    ES384,
    ES512,
    CoseMessage,
    decode_cose,
    strict_loads,
)
from devattest.errors import (
    AlgorithmError,
    ClaimsError,
    DevattestError,
    InvalidClaim,
    MalformedClaims,
    MissingClaim,
    TokenExpired,
    UnknownProfile,
    shown,
)
from devattest.model import (
    Claims,
    DecodeLimits,
    Finding,
    KeyAnchor,
    KeyHints,
    SoftwareComponent,
    VerifyOptions,
    ar4si,
)
from devattest.schemes._cose import verify_cose_integrity
from devattest.schemes.eat._claims import (
    CLAIM_NAMES,
    MEASUREMENTS,
    DebugStatus,
    EatClaimsSet,
    MeasurementResult,
    parse_eat_claims,
    readable,
)
from devattest.schemes.eat._preferred import first_non_preferred

#: RFC 9711 section 6 "The Constrained Device Standard Profile".
PROFILE_CONSTRAINED = "urn:ietf:rfc:rfc9711"
#: ``Claims.profile`` for an EAT without an ``eat_profile`` claim.
PROFILE_GENERIC = "eat"
#: RFC 9782 media types: EAT in CWT, and the same with the constrained device profile.
MEDIA_TYPE_EAT_CWT = "application/eat+cwt"
MEDIA_TYPE_EAT_CWT_CONSTRAINED = f'application/eat+cwt; eat_profile="{PROFILE_CONSTRAINED}"'

#: CoAP content format of a CoSWID (RFC 9393 section 6.1): application/swid+cbor.
COAP_CT_COSWID = 258
#: CBOR tag of a tagged CoSWID (RFC 9393 section 8).
TAG_COSWID = 1398229316
# CoSWID keys (RFC 9393 section 2): software-version, evidence, payload, directory, file,
# hash, fs-name.
_SWID_VERSION, _SWID_EVIDENCE, _SWID_PAYLOAD = 13, 3, 6
_SWID_DIRECTORY, _SWID_FILE, _SWID_HASH, _SWID_FS_NAME = 16, 17, 7, 24
#: Named Information hash algorithm IDs (RFC 6920 registry) used in CoSWID hashes.
_HASH_NAMES = {1: "sha-256", 2: "sha-256-128", 7: "sha-384", 8: "sha-512"}

_CONSTRAINED_ALGS = frozenset((ES256, ES384, ES512))
_STEP = "5"


@dataclass(frozen=True, slots=True)
class EatEvidence:
    """A decoded EAT: the COSE message, the raw and typed claims, and the key hints."""

    message: CoseMessage
    claims_set: dict[Any, Any]
    key_hints: KeyHints
    #: bytes, or a list of bytes when the EAT carries several nonces (RFC 9711 section 4.1);
    #: the core's step 4 accepts a match with any of them.
    nonce: Any
    parsed: EatClaimsSet | None
    claims_error: DevattestError | None
    software_components: tuple[SoftwareComponent, ...] = ()
    notes: tuple[str, ...] = ()


def _is_tagged(data: bytes) -> bool:
    return bool(data) and data[0] >> 5 == 6


def _coswid_components(content: Any, limits: DecodeLimits) -> list[SoftwareComponent]:
    """Files with hashes in a CoSWID's evidence or payload (RFC 9393 sections 2.9.2, 2.9.4).

    Raises:
        InvalidClaim: the measurement is not a CoSWID (CBOR within ``limits``, a map), or a
            file's hash is not a hash-entry ``[hash-alg-id: int, hash-value: bytes]`` (RFC
            9393 section 2.9.1). A measurement that cannot be read is not appraised, so it
            fails the claims set rather than being skipped.
    """
    what = f"{CLAIM_NAMES[MEASUREMENTS]} ({MEASUREMENTS}): a CoSWID measurement"
    if type(content) is not bytes:
        raise InvalidClaim(f"{what} is not a byte string", step=_STEP)
    try:
        swid = strict_loads(content, limits=limits)
    except DevattestError as err:
        raise InvalidClaim(f"{what} is not valid CBOR ({err.code}: {err.message})",
                           step=_STEP) from None
    if type(swid) is cbor2.CBORTag and swid.tag == TAG_COSWID:
        swid = swid.value
    if not isinstance(swid, dict):
        raise InvalidClaim(f"{what} is not a map, found {shown(swid)}", step=_STEP)
    version = swid.get(_SWID_VERSION)
    version = version if type(version) is str else None
    out: list[SoftwareComponent] = []

    def files(node: Any) -> None:
        nodes = node if isinstance(node, list) else [node]
        for n in nodes:
            if not isinstance(n, dict):
                continue
            fs = n.get(_SWID_FILE)
            for f in fs if isinstance(fs, list) else [fs]:
                if isinstance(f, dict) and _SWID_HASH in f:
                    h = f[_SWID_HASH]
                    if not (isinstance(h, list) and len(h) == 2 and type(h[0]) is int
                            and type(h[1]) is bytes):
                        raise InvalidClaim(f"{what} has a file hash that is not [hash-alg-id: "
                                           f"int, hash-value: bytes], found {shown(h)}",
                                           step=_STEP)
                    name = f.get(_SWID_FS_NAME)
                    alg = h[0]
                    out.append(SoftwareComponent(
                        measurement_value=h[1],
                        measurement_type=name if type(name) is str else None,
                        version=version,
                        measurement_desc=_HASH_NAMES.get(alg, shown(alg))))
            if _SWID_DIRECTORY in n:
                files(n[_SWID_DIRECTORY])

    for key in (_SWID_EVIDENCE, _SWID_PAYLOAD):
        if key in swid:
            files(swid[key])
    return out


def _constrained_profile_rules(data: bytes, msg: CoseMessage, claims: EatClaimsSet) -> None:
    # RFC 9711 section 6, the Constrained Device Standard Profile (urn:ietf:rfc:rfc9711).
    # 5.p.1: COSE_Sign1 only, with ES256, ES384 or ES512.
    if msg.kind != "sign1":
        raise AlgorithmError(f"the {PROFILE_CONSTRAINED} profile allows only COSE_Sign1",
                             step=_STEP)
    if msg.alg not in _CONSTRAINED_ALGS:
        raise AlgorithmError(f"the {PROFILE_CONSTRAINED} profile requires ES256, ES384 or "
                             f"ES512 in the protected header", step=_STEP)
    # 5.p.2: CBOR with definite lengths and preferred serialization only.
    for part, what in ((data, "token"), (msg.protected_bytes, "protected header"),
                       (msg.payload, "claims set")):
        problem = first_non_preferred(part)
        if problem is not None:
            raise InvalidClaim(f"the {PROFILE_CONSTRAINED} profile requires preferred "
                               f"serialization: {what}: {problem}", step=_STEP)
    # 5.p.3: the COSE kid or the UEID identifies the verification key.
    if msg.kid is None and claims.ueid is None:
        raise MissingClaim(f"the {PROFILE_CONSTRAINED} profile requires the COSE kid or the "
                           f"ueid claim (256) to identify the key", step=_STEP)


class EatScheme:
    """Entity Attestation Tokens in CWT form (RFC 9711), generic or with the constrained
    device profile ``urn:ietf:rfc:rfc9711``."""

    name: ClassVar[str] = "eat"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE_EAT_CWT,)
    #: No ``eat_profile`` claim, or the constrained profile (whose rules it applies).
    profiles: ClassVar[tuple[str, ...]] = (PROFILE_GENERIC, PROFILE_CONSTRAINED)
    #: A profile the media type itself demands (RFC 9782 ``eat_profile`` parameter): its
    #: rules apply even when the token omits the ``eat_profile`` claim.
    required_profile: ClassVar[str | None] = None

    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions
               ) -> EatEvidence:
        """Step 1: parse a CWT (RFC 8392 section 7.2) holding an EAT claims set.

        Raises:
            EvidenceError: the COSE or CBOR is malformed, or the payload is not a map.
        """
        msg = decode_cose(data, limits=limits, options=options,
                          expected=None if _is_tagged(data) else "sign1")
        claims_set = strict_loads(msg.payload, limits=limits)
        if not isinstance(claims_set, dict):
            raise MalformedClaims(
                f"the EAT claims set must be a CBOR map, found {type(claims_set).__name__}",
                step="1")
        parsed: EatClaimsSet | None = None
        error: DevattestError | None = None
        comps: list[SoftwareComponent] = []
        notes: list[str] = []
        try:
            parsed = parse_eat_claims(claims_set)
            # RFC 9711 section 4.1: the nonce is the one claim EAT requires.
            if not parsed.nonce:
                raise MissingClaim("missing mandatory claim eat_nonce (10)", step=_STEP)
            required = self.required_profile
            if required is not None and parsed.profile not in (None, required):
                raise UnknownProfile(
                    f"media type requires eat_profile {required!r}, the token says "
                    f"{shown(parsed.profile)}", step=_STEP)
            if PROFILE_CONSTRAINED in (parsed.profile, required):
                _constrained_profile_rules(data, msg, parsed)
            for m in parsed.measurements:
                if m.content_type == COAP_CT_COSWID:
                    comps.extend(_coswid_components(m.content, limits))
                else:
                    notes.append(f"measurements of content type {m.content_type} are kept "
                                 f"but not interpreted")
        except (ClaimsError, AlgorithmError) as err:
            error = err
        ueid = claims_set.get(256)
        nonce = claims_set.get(10)
        if type(nonce) is not bytes and not (
                isinstance(nonce, list) and all(type(n) is bytes for n in nonce)):
            nonce = None
        return EatEvidence(
            message=msg, claims_set=claims_set,
            key_hints=KeyHints(instance_id=ueid if type(ueid) is bytes else None,
                               kid=msg.kid, x5chain=msg.x5chain),
            nonce=nonce, parsed=parsed, claims_error=error,
            software_components=tuple(comps), notes=tuple(notes))

    def verify_integrity(self, decoded: EatEvidence, key: KeyAnchor, *,
                         options: VerifyOptions) -> tuple[str, ...]:
        """Step 3: COSE_Sign1 signature or COSE_Mac0 tag (RFC 9052 sections 4.4, 6.3), then
        the held-back claim/profile verdict.

        Raises:
            AlgorithmError: the key does not fit the structure or the algorithm.
            SignatureInvalid: the signature or MAC does not verify.
            UnknownCriticalHeader: ``crit`` names a header this verifier does not understand.
            ClaimsError: the authenticated claims set breaks a claim or profile rule.
        """
        notes = verify_cose_integrity(decoded.message, key, options=options)
        if decoded.claims_error is not None:
            raise decoded.claims_error
        return notes

    def extract_claims(self, decoded: EatEvidence, *, now: int, options: VerifyOptions
                       ) -> Claims:
        """Step 5: time checks (RFC 8392 sections 3.1.4 to 3.1.6) and normalised claims.

        Raises:
            TokenExpired: ``exp`` has passed, or ``iat``/``nbf`` is in the future (beyond the
                allowed clock skew).
            ClaimsError: a claim or profile rule failed (as in step 3).
        """
        c = decoded.parsed
        if c is None or decoded.claims_error is not None:
            if decoded.claims_error is not None:
                raise decoded.claims_error
            raise RuntimeError("extract_claims called on evidence that was not decoded")
        skew = options.clock_skew
        # 5.1: exp (RFC 8392 section 3.1.4).
        if c.exp is not None and now > c.exp + skew:
            raise TokenExpired(f"the token expired at {c.exp} (now {now})", step=_STEP)
        # 5.2: nbf (RFC 8392 section 3.1.5).
        if c.nbf is not None and now + skew < c.nbf:
            raise TokenExpired(f"the token is not valid before {c.nbf} (now {now})", step=_STEP)
        # 5.3: iat (RFC 8392 section 3.1.6) may not be in the future.
        if c.iat is not None and now + skew < c.iat:
            raise TokenExpired(f"the token was issued in the future, at {c.iat} (now {now})",
                               step=_STEP)
        findings: list[Finding] = []
        debug: bool | None = None
        # 5.4: debug status (RFC 9711 section 4.2.9).
        if c.dbgstat is not None:
            debug = c.dbgstat is DebugStatus.ENABLED
            if debug:
                # Debug access to the attesting environment undermines every claim it makes
                # (as PSA's recoverable RoT debug state does): contraindicated.
                findings.append(Finding("configuration", ar4si.UNSUPPORTABLE_CONFIG,
                                        "eat_debug_enabled",
                                        "debug is enabled (dbgstat 0)"))
        # 5.5: OEM-authorised boot (RFC 9711 section 4.2.8).
        if c.oemboot is False:
            findings.append(Finding("executables", ar4si.UNSAFE_RUNTIME, "eat_oemboot_false",
                                    "the boot was not OEM-authorised (oemboot false)"))
        # 5.6: the Attester's own measurement results (RFC 9711 section 4.2.17).
        for group in c.measres:
            for rid, result in group.results:
                if result is MeasurementResult.FAIL:
                    findings.append(Finding(
                        "executables", ar4si.CONTRAINDICATED_RUNTIME, "eat_measurement_failed",
                        f"measurement {shown(rid.hex() if isinstance(rid, bytes) else rid)} "
                        f"of {shown(group.system)} failed comparison"))
        profile = c.profile
        if isinstance(profile, bytes):
            profile = "oid:" + profile.hex()
        notes = list(decoded.notes)
        if any(s.nested_token is not None for s in c.submods.values()):
            notes.append("nested tokens in submods are kept but not verified")
        return Claims(
            profile=profile or PROFILE_GENERIC,
            nonce=c.nonce[0] if c.nonce else None,
            instance_id=c.ueid,
            class_id=c.hwmodel,
            software_components=decoded.software_components,
            debug_enabled=debug,
            boot_count=c.bootcount,
            iat=c.iat,
            exp=c.exp,
            raw=readable(decoded.claims_set),
            annotations=tuple(notes),
            findings=tuple(findings),
        )

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        """EAT does not bind the UEID to the key: None."""
        return None


class EatConstrainedScheme(EatScheme):
    """EAT sent as ``application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"``: the
    Constrained Device Standard Profile (RFC 9711 section 6) applies because the media type
    says so, whether or not the token carries the ``eat_profile`` claim."""

    name: ClassVar[str] = "eat-rfc9711"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE_EAT_CWT_CONSTRAINED,)
    #: The media type names the profile, so a token without the claim is one too.
    profiles: ClassVar[tuple[str, ...]] = (PROFILE_CONSTRAINED, PROFILE_GENERIC)
    required_profile: ClassVar[str | None] = PROFILE_CONSTRAINED
