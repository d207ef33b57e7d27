"""The PSA attestation token scheme (RFC 9783): decode, integrity, claims.

Order of the checks, as the appraisal core calls them (``devattest.verifier.core``):

1. ``decode``: COSE_Sign1 or COSE_Mac0 (RFC 9783 section 5), strict CBOR, the payload a map;
   the profile is recognised (``UnknownProfile`` otherwise) so that the key hints can be read:
   the Instance ID claim, COSE ``kid`` and ``x5chain``. The claim rules run here too, but
   their verdict is held back until the signature has been checked.
3. ``verify_integrity``: the signature or MAC with the key the core found; then the held-back
   claim-rule verdict, so that nothing in an unauthenticated or ill-formed claims set (the
   nonce in particular) is used by step 4.
5. ``extract_claims``: normalised :class:`Claims` with lifecycle findings and annotations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.cose import CoseMessage, decode_cose, strict_loads
from devattest.errors import ClaimsError, MalformedClaims
from devattest.model import Claims, DecodeLimits, KeyAnchor, KeyHints, VerifyOptions
from devattest.model._fast import fast_constructor
from devattest.model.evidence import new_claims, new_key_hints
from devattest.schemes._cose import verify_cose_integrity
from devattest.schemes.psa._claims import (
    ParsedPsa,
    debug_enabled,
    detect_profile,
    lifecycle_finding,
    parse_psa_claims,
)
from devattest.schemes.psa._profiles import (
    MEDIA_TYPE_EAT_CWT,
    MEDIA_TYPE_PSA,
    PROFILE_IOT_1,
    PROFILE_PSA_2_0_0,
    PROFILE_RFC9783,
    UEID_TYPE_RAND,
    PsaProfile,
)


@dataclass(frozen=True, slots=True)
class PsaEvidence:
    """A decoded PSA token: the COSE message, its claims set and what step 2 needs."""

    message: CoseMessage
    profile: PsaProfile
    claims_set: dict[Any, Any]
    key_hints: KeyHints
    #: The validated nonce; None while the claims set breaks its profile.
    nonce: bytes | None
    #: The claims set after the profile's rules, or None when a rule failed.
    parsed: ParsedPsa | None
    #: The rule that failed, raised after the signature is checked (step 3).
    claims_error: ClaimsError | None
    profile_notes: tuple[str, ...] = ()
    #: The normalised claims, built once with the parse (handed out by step 5).
    claims: Claims | None = None


_new_psa_evidence = fast_constructor(PsaEvidence)
#: Certified keys whose implied Instance ID a PsaScheme remembers.
_IMPLIED_KEPT = 4096


def psa_instance_id(key: Any) -> bytes | None:
    """The PSA Instance ID a key implies (RFC 9783 section 4.2.1; PSA Attestation API 2.0
    table 4): 0x01 followed by SHA-256 of the IAK public key, the EC point uncompressed
    (0x04 || x || y) as ``psa_export_public_key`` gives it, or the raw EdDSA key; for a
    symmetric (COSE_Mac0) IAK, SHA-256 of SHA-256 of the key. None for other key types."""
    if isinstance(key, (bytes, bytearray)):
        digest = hashlib.sha256(hashlib.sha256(bytes(key)).digest()).digest()
    elif isinstance(key, ec.EllipticCurvePublicKey):
        digest = hashlib.sha256(
            key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)).digest()
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        digest = hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).digest()
    else:
        return None
    return bytes((UEID_TYPE_RAND,)) + digest


def _normalise(parsed: ParsedPsa) -> Claims:
    # Step 5 (RFC 9783 section 4): class_id is the Implementation ID (section 4.2.2), the
    # lifecycle outside the secured and non-PSA-RoT-debug ranges is a finding (4.3.1).
    finding = lifecycle_finding(parsed.security_lifecycle)
    return new_claims(
        profile=parsed.profile.name,
        nonce=parsed.nonce,
        instance_id=parsed.instance_id,
        class_id=parsed.implementation_id,
        security_lifecycle=parsed.security_lifecycle,
        software_components=parsed.software_components,
        debug_enabled=debug_enabled(parsed.security_lifecycle),
        raw=parsed.raw,
        annotations=parsed.annotations,
        findings=(finding,) if finding is not None else (),
    )


class PsaScheme:
    """Arm PSA attestation tokens: RFC 9783, plus the legacy ``http://arm.com/psa/2.0.0`` and
    ``PSA_IOT_PROFILE_1`` profiles (reported in ``Claims.profile`` and an annotation)."""

    name: ClassVar[str] = "psa"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE_EAT_CWT, MEDIA_TYPE_PSA)
    profiles: ClassVar[tuple[str, ...]] = (PROFILE_RFC9783, PROFILE_PSA_2_0_0, PROFILE_IOT_1)

    def __init__(self) -> None:
        # A memo of instance_id_for_key: a warm verified-chain cache hands back the same key
        # object for every token of a device, and hashing its encoded point each time cost a
        # tenth of an x5chain appraisal. Keyed by the key object's id with the object held
        # in the entry, so an id cannot be reused while its entry exists.
        self._implied: dict[int, tuple[Any, bytes | None]] = {}

    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions
               ) -> PsaEvidence:
        """Step 1: parse the token (RFC 9783 section 5: COSE_Sign1 or COSE_Mac0 over a CWT
        claims set).

        Raises:
            EvidenceError: the COSE structure or its CBOR is malformed (a subclass says how),
                or the payload is not a claims map.
            UnknownProfile: the claims set does not follow a PSA profile.
        """
        msg = decode_cose(data, limits=limits, options=options)
        claims_set = strict_loads(msg.payload, limits=limits)
        if not isinstance(claims_set, dict):
            raise MalformedClaims(
                f"the PSA claims set must be a CBOR map, found {type(claims_set).__name__}",
                step="1")
        profile, notes = detect_profile(claims_set)
        parsed: ParsedPsa | None = None
        error: ClaimsError | None = None
        try:
            parsed = parse_psa_claims(claims_set, profile, notes)
        except ClaimsError as err:
            error = err
        # The Instance ID is only a hint for step 2 (the key must still verify); the nonce is
        # offered to step 4 only once the claims set is well-formed.
        instance_id = (parsed.instance_id if parsed is not None
                       else claims_set.get(profile.instance_id))
        hints = new_key_hints(
            instance_id=instance_id if type(instance_id) is bytes else None,
            kid=msg.kid, x5chain=msg.x5chain)
        return _new_psa_evidence(
            message=msg, profile=profile, claims_set=claims_set, key_hints=hints,
            nonce=parsed.nonce if parsed is not None else None, parsed=parsed,
            claims_error=error, profile_notes=notes,
            claims=_normalise(parsed) if parsed is not None else None)

    def verify_integrity(self, decoded: PsaEvidence, key: KeyAnchor, *,
                         options: VerifyOptions) -> tuple[str, ...]:
        """Step 3: the COSE_Sign1 signature (IAK public key) or COSE_Mac0 tag (symmetric IAK),
        RFC 9783 section 5 / RFC 9052 sections 4.4 and 6.3; then the claim rules' verdict.

        Raises:
            AlgorithmError: the key type does not fit the COSE structure, or the algorithm is
                missing, unprotected (without the legacy option) or does not match the key.
            SignatureInvalid: the signature or MAC does not verify.
            UnknownCriticalHeader: ``crit`` names a header this verifier does not understand.
            ClaimsError: the authenticated claims set breaks the profile (a subclass says how).
        """
        notes = verify_cose_integrity(decoded.message, key, options=options)
        # 3.2: the authenticated claims set must be well-formed before step 4 uses its nonce.
        if decoded.claims_error is not None:
            raise decoded.claims_error
        return notes

    def extract_claims(self, decoded: PsaEvidence, *, now: int, options: VerifyOptions
                       ) -> Claims:
        """Step 5: the profile's claim rules (RFC 9783 section 4) and normalised claims.

        The security lifecycle outside the secured and non-PSA-RoT-debug ranges becomes a
        finding on the ``configuration`` claim (docs/schemes.md), not a failure.

        Raises:
            ClaimsError: a claim breaks the profile (MissingClaim, InvalidClaim).
        """
        if decoded.claims_error is not None:
            raise decoded.claims_error
        if decoded.claims is None:
            raise RuntimeError("extract_claims called on evidence that was not decoded")
        return decoded.claims

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        """0x01 || SHA-256 of the IAK public key (SHA-256 twice for a symmetric IAK)."""
        public = key.public_key
        hit = self._implied.get(id(public))
        if hit is not None and hit[0] is public:
            return hit[1]
        implied = psa_instance_id(public)
        if len(self._implied) >= _IMPLIED_KEPT:
            self._implied.clear()
        self._implied[id(public)] = (public, implied)
        return implied
