"""One error tree for devattest, named by who is at fault.

* :class:`EvidenceError` - the Attester (or an attacker) sent something malformed.
* :class:`VerificationError` - the Evidence is well-formed but fails a check:
  signature, trust chain, freshness, claim rules, Reference Values or Appraisal Policy.
* :class:`PolicyError` - an Appraisal Policy itself is broken (the operator is at fault).
* :class:`ConfigurationError` - devattest is misconfigured (the operator is at fault).
* :class:`StoreError` and :class:`TransportError` - infrastructure failures.

Every error has a stable machine-readable ``code`` (used in EAR reasons, API responses
and tests) and a human ``diagnostics()``. Misuse of the API by a programmer raises
:class:`UsageError` (also a ``ValueError``) or the ordinary Python exceptions; never a
result, because it says nothing about the Evidence.
"""

from __future__ import annotations

from typing import ClassVar, Final

#: Characters (or bytes) of an untrusted value that :func:`shown` puts in a message.
SHOWN_MAX: Final = 40


def shown(value: object) -> str:
    """A bounded rendering of a value from untrusted input, for an error message.

    Every message that quotes a value from Evidence, a result or a provisioning document
    formats it here, never with ``str()``, ``repr()`` or ``!r`` on the value itself: a huge
    integer cannot be printed in less than quadratic time (Python refuses above 4300 digits
    and raises ``ValueError``), and a long string or a deep container would make the message
    as large as the input. Scalars are shown as ``repr`` would (strings and byte strings cut
    to :data:`SHOWN_MAX`, integers beyond 64 bits by their size), containers by their type
    and length, anything else by its type name. Never raises.
    """
    if value is None or value is True or value is False:
        return repr(value)
    if isinstance(value, int):
        if -(1 << 64) <= value < (1 << 64):
            return int.__repr__(value)
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str | bytes | bytearray):
        if len(value) <= SHOWN_MAX:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:SHOWN_MAX]!r}... ({len(value)} {unit})"
    name = type(value).__name__
    if name in ("CBORTag", "CBORSimpleValue"):  # cbor2's types, without importing cbor2
        number = getattr(value, "tag" if name == "CBORTag" else "value", None)
        if type(number) is int:
            return f"{'CBOR tag' if name == 'CBORTag' else 'simple value'} {shown(number)}"
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"a {name} of length {len(value)}"
    return f"a value of type {name}"


class DevattestError(Exception):
    """Root of every error devattest raises on purpose."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str = "", *, step: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip().splitlines()[0]
        #: The numbered verification step (e.g. ``"3"``) where the error was raised, if any.
        self.step = step

    def diagnostics(self) -> str:
        """A human explanation, suitable for a CLI or a dashboard."""
        where = f" (step {self.step})" if self.step else ""
        return f"{self.code}{where}: {self.message}"


# --------------------------------------------------------------------------------------
# The Attester (or an attacker) is at fault: the bytes are not acceptable Evidence.
# --------------------------------------------------------------------------------------
class EvidenceError(DevattestError):
    """The Evidence is malformed."""

    code = "evidence_malformed"


class UnsupportedMediaType(EvidenceError):
    """No evidence scheme is registered for this media type."""

    code = "unsupported_media_type"


class TokenTooLarge(EvidenceError):
    """The token exceeds the configured maximum size."""

    code = "token_too_large"


class NestingTooDeep(EvidenceError):
    """CBOR nesting exceeds the configured maximum depth."""

    code = "nesting_too_deep"


class DuplicateMapKey(EvidenceError):
    """A CBOR map contains the same key twice."""

    code = "duplicate_map_key"


class TrailingBytes(EvidenceError):
    """Bytes follow the end of the CBOR item."""

    code = "trailing_bytes"


class TruncatedEvidence(EvidenceError):
    """The CBOR item ends before its declared length (truncated, or a length claims more
    bytes than the token holds)."""

    code = "truncated"


class InvalidCbor(EvidenceError):
    """The bytes are not well-formed CBOR."""

    code = "invalid_cbor"


class UnexpectedTag(EvidenceError):
    """A CBOR tag is missing, unexpected or not allowed here."""

    code = "unexpected_tag"


class MalformedCose(EvidenceError):
    """The COSE structure does not have the shape RFC 9052 requires."""

    code = "malformed_cose"


class TooManyItems(EvidenceError):
    """A CBOR array or map holds more entries than the configured maximum."""

    code = "too_many_items"


class UnsupportedCbor(EvidenceError):
    """The CBOR is well-formed but uses a feature devattest refuses as Evidence (map keys
    that are arrays, maps, tagged items or simple values)."""

    code = "unsupported_cbor"


class IntegerTooLarge(EvidenceError):
    """A CBOR bignum (tag 2 or 3) exceeds the configured maximum size."""

    code = "integer_too_large"


class MalformedClaims(EvidenceError):
    """The claims set is not a well-formed map of the expected types."""

    code = "malformed_claims"


# --------------------------------------------------------------------------------------
# The Evidence is well-formed but a verification check fails.
# --------------------------------------------------------------------------------------
class VerificationError(DevattestError):
    """The Evidence failed verification."""

    code = "verification_failed"


class AlgorithmError(VerificationError):
    """The signing algorithm is missing, unknown, unprotected or does not match the key."""

    code = "algorithm_rejected"


class UnknownCriticalHeader(VerificationError):
    """The COSE ``crit`` header names a parameter this verifier does not understand."""

    code = "unknown_critical_header"


class SignatureInvalid(VerificationError):
    """The signature or MAC does not verify."""

    code = "signature_invalid"


class KeyNotFound(VerificationError):
    """No Trust Anchor matches the Evidence's key identity."""

    code = "key_not_found"


class DeviceNotBound(KeyNotFound):
    """The device has no bound identity (Instance ID) and the Verifier requires one: no key
    is trusted for it yet (``require_device_binding``; docs/service.md)."""

    code = "device_not_bound"


class ChainError(VerificationError):
    """The attestation key's certificate chain is not valid."""

    code = "chain_invalid"


class UntrustedChain(ChainError):
    """The certificate chain does not lead to a trusted Trust Anchor."""

    code = "chain_untrusted"


class CertificateExpired(ChainError):
    """A certificate in the chain is outside its validity period."""

    code = "certificate_expired"


class CertificateRevoked(ChainError):
    """A certificate in the chain is revoked."""

    code = "certificate_revoked"


class KeyPurposeError(ChainError):
    """A certificate lacks the required key usage or key purpose."""

    code = "key_purpose_invalid"


class KeyMismatch(ChainError):
    """The certified key does not match the key identity the Evidence claims."""

    code = "key_mismatch"


class HardwareBackingRequired(VerificationError):
    """The Appraisal Policy requires a hardware-backed attestation key."""

    code = "hardware_backing_required"


class FreshnessError(VerificationError):
    """The Evidence is not fresh."""

    code = "not_fresh"


class NonceMismatch(FreshnessError):
    """The Evidence's nonce is not the one the Verifier issued."""

    code = "nonce_mismatch"


class NonceReplayed(FreshnessError):
    """The nonce was already consumed."""

    code = "nonce_replayed"


class NonceExpired(FreshnessError):
    """The nonce expired before the Evidence arrived."""

    code = "nonce_expired"


class TokenExpired(FreshnessError):
    """The token's ``exp`` is in the past, or its ``iat`` in the future."""

    code = "token_expired"


class ClaimsError(VerificationError):
    """A claim breaks the rules of the Evidence's profile."""

    code = "claims_invalid"


class MissingClaim(ClaimsError):
    """A claim the profile makes mandatory is absent."""

    code = "missing_claim"


class InvalidClaim(ClaimsError):
    """A claim has the wrong type, length or value."""

    code = "invalid_claim"


class UnknownProfile(ClaimsError):
    """The token names a profile this scheme does not implement."""

    code = "unknown_profile"


class ProfileMismatch(UnknownProfile):
    """The token's profile belongs to another evidence scheme than the one its media type
    selected (scheme confusion): it is refused, never appraised by the wrong scheme."""

    code = "profile_mismatch"


class ReferenceValueError(VerificationError):
    """The claims do not match the Reference Values."""

    code = "reference_value_mismatch"


class NoReferenceValues(ReferenceValueError):
    """No Reference Values are provisioned for this device class."""

    code = "no_reference_values"


class UnknownMeasurement(ReferenceValueError):
    """A measurement is not among the Reference Values."""

    code = "unknown_measurement"


class SignerMismatch(ReferenceValueError):
    """A component's signer ID is not among the Reference Values."""

    code = "signer_mismatch"


class RollbackDetected(ReferenceValueError):
    """A component's version or security version is below the minimum."""

    code = "rollback_detected"


class MissingComponent(ReferenceValueError):
    """A component the Reference Values require is not measured."""

    code = "missing_component"


class LifecycleNotAllowed(ReferenceValueError):
    """The security lifecycle state is not allowed."""

    code = "lifecycle_not_allowed"


class SoftwareNotAppraised(ReferenceValueError):
    """No software component was compared with a Reference Value, so the software the
    Attester runs cannot be vouched for (docs/ear.md, "nothing is affirmed that was not
    appraised")."""

    code = "software_not_appraised"


class PolicyViolation(VerificationError):
    """The Appraisal Policy rejected the Evidence."""

    code = "policy_violation"


# --------------------------------------------------------------------------------------
# TPM 2.0 quote evidence (scheme ``tpm``; TPM 2.0 Library Part 2 section 10.12).
# --------------------------------------------------------------------------------------
class MalformedTpmStructure(EvidenceError):
    """A TPM structure (TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, PCR selection) is
    malformed, truncated, oversized or of an unexpected type."""

    code = "tpm_structure_malformed"


class MalformedEventLog(EvidenceError):
    """The measured-boot event log (TCG PC Client or devattest compact) is malformed."""

    code = "event_log_malformed"


class AttestationKeyAttributes(KeyPurposeError):
    """The TPM attestation key is not a ``restricted|sign|fixedTPM`` key, so it could have
    signed data that the TPM did not generate."""

    code = "ak_attributes_invalid"


class PcrSelectionMismatch(ClaimsError):
    """The quote's PCR selection is not exactly the one the Verifier requested."""

    code = "pcr_selection_mismatch"


class PcrDigestMismatch(ClaimsError):
    """The quote's ``pcrDigest`` does not match the PCR values carried in the Evidence."""

    code = "pcr_digest_mismatch"


class EventLogMismatch(ClaimsError):
    """Replaying the event log does not give the quoted PCR values (an unlogged extend, or
    an event hidden from or edited in the log)."""

    code = "event_log_mismatch"


class QuoteReplayed(FreshnessError):
    """The TPM quote is not newer than one already seen from this TPM (its clock did not
    advance)."""

    code = "quote_replayed"


class TpmClockRegression(FreshnessError):
    """A TPM's resetCount or restartCount went backwards: its state was rolled back or it
    is not the same TPM."""

    code = "tpm_clock_regression"


class CredentialActivationFailed(VerificationError):
    """The device did not return the credential the Verifier sealed to its EK and AK name."""

    code = "credential_activation_failed"


class CredentialActivationReplayed(CredentialActivationFailed):
    """A credential-activation answer was presented for a challenge that is already spent
    (or was never issued): each challenge admits one answer."""

    code = "credential_activation_replayed"


class EndorsementKeyUntrusted(VerificationError):
    """The TPM's endorsement key is neither registered nor certified by a trusted TPM
    manufacturer CA, so credential activation against it proves nothing."""

    code = "ek_untrusted"


# --------------------------------------------------------------------------------------
# The caller (a programmer) is at fault: an argument no call could succeed with.
# --------------------------------------------------------------------------------------
class UsageError(DevattestError, ValueError):
    """An API was called with an unusable argument (an empty nonce, a naive ``now``). It is
    raised, never turned into an Attestation Result: it says nothing about the Evidence."""

    code = "usage_error"


# --------------------------------------------------------------------------------------
# The operator is at fault.
# --------------------------------------------------------------------------------------
class PolicyError(DevattestError):
    """An Appraisal Policy is malformed or failed to evaluate."""

    code = "policy_error"


class VerifierMalfunction(DevattestError):
    """The Verifier failed internally (AR4SI -1); the Evidence was not appraised."""

    code = "verifier_malfunction"


class ConfigurationError(DevattestError):
    """devattest is misconfigured."""

    code = "configuration_error"


class RegistryConflict(ConfigurationError):
    """Two evidence schemes claim the same media type or name."""

    code = "registry_conflict"


class ProvisioningError(DevattestError):
    """Provisioned material (Trust Anchors, Reference Values, CoRIM) is invalid."""

    code = "provisioning_invalid"


class OnboardingRefused(ProvisioningError):
    """A device is not issued owner credentials: no fresh, affirming attestation result is
    bound to its key."""

    code = "onboarding_refused"


class ProvisioningSchemaError(ProvisioningError):
    """A provisioning document (devattest JSON/YAML) breaks its schema.

    ``path`` names the offending field, e.g. ``reference_values[0].components[1].signer_ids[0]``.
    """

    code = "provisioning_schema_invalid"

    def __init__(self, message: str = "", *, path: str = "", step: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, step=step)
        self.path = path


class CorimError(ProvisioningError):
    """A CoRIM (draft-ietf-rats-corim) is invalid.

    ``reason`` is a stable machine-readable sub-code naming the exact defect (e.g.
    ``psa_class_id_type``); tests and API responses match on it.
    """

    code = "corim_invalid"

    def __init__(self, message: str = "", *, reason: str = "", step: str | None = None) -> None:
        super().__init__(message, step=step)
        self.reason = reason or self.code

    def diagnostics(self) -> str:
        where = f" (step {self.step})" if self.step else ""
        return f"{self.code}/{self.reason}{where}: {self.message}"


class CorimMalformed(CorimError):
    """The CoRIM is not well-formed CBOR, breaks the CoRIM/CoMID CDDL or a decoding limit."""

    code = "corim_malformed"


class CorimUnsupported(CorimError):
    """The CoRIM is well-formed but uses a feature devattest does not implement."""

    code = "corim_unsupported"


class CorimSignatureInvalid(CorimError):
    """The COSE_Sign1 signature over the CoRIM does not verify."""

    code = "corim_signature_invalid"


class CorimSignatureRequired(CorimError):
    """The caller requires a signed and verified CoRIM, and this one is not."""

    code = "corim_signature_required"


class CorimProfileViolation(CorimError):
    """A CoMID triple breaks the rules of the CoRIM profile (e.g. the PSA profile)."""

    code = "corim_profile_violation"


class CorimNotValid(CorimError):
    """The CoRIM or its signature is outside its validity period."""

    code = "corim_not_valid_now"


# --------------------------------------------------------------------------------------
# A Relying Party is handed an Attestation Result (EAR) it cannot accept: the Verifier that
# issued it, or an attacker, is at fault.
# --------------------------------------------------------------------------------------
class ResultError(DevattestError):
    """An Attestation Result (EAR) is malformed or fails verification."""

    code = "result_invalid"


class MalformedResult(ResultError):
    """The EAR is not a well-formed token or claims-set (draft-ietf-rats-ear section 3)."""

    code = "result_malformed"


class UnknownResultProfile(ResultError):
    """The EAR names an ``eat_profile`` this Relying Party does not implement."""

    code = "result_profile_unknown"


class ResultAlgorithmRejected(ResultError):
    """The EAR's signing algorithm is missing, not allowed, or does not match the key."""

    code = "result_algorithm_rejected"


class ResultSignatureInvalid(ResultError):
    """The EAR's signature does not verify with the Verifier's key."""

    code = "result_signature_invalid"


class ResultExpired(ResultError):
    """The EAR is expired, not yet valid, or issued in the future."""

    code = "result_expired"


# --------------------------------------------------------------------------------------
# Infrastructure.
# --------------------------------------------------------------------------------------
class StoreError(DevattestError):
    """The store failed."""

    code = "store_error"


class TransportError(DevattestError):
    """The transport (HTTP client, MQTT) failed."""

    code = "transport_error"


# Issue 13 (defects 1 and 5): a hostile message refused alone, never a stopped worker.
class MalformedMessage(TransportError):
    """A transport message (MQTT) is not acceptable: too large, not UTF-8 JSON, nested too
    deeply, not a JSON object, or a field of the wrong type or holding control characters.
    Only that message is refused (and dead-lettered); it never stops a worker.

    ``reason`` is a stable sub-code from a small fixed set (``too_large``, ``not_json``,
    ``not_utf8``, ``too_deep``, ``not_object``, ``bad_field``, ``control_character``,
    ``bad_topic``, ``unexpected``); metrics are labelled with it.
    """

    code = "malformed_message"

    def __init__(self, message: str = "", *, reason: str = "", step: str | None = None) -> None:
        super().__init__(message, step=step)
        self.reason = reason or "bad_field"

    def diagnostics(self) -> str:
        return f"{self.code}/{self.reason}: {self.message}"


class SecureElementError(DevattestError):
    """The secure element (TPM, PKCS#11 token) failed or refused an operation."""

    code = "secure_element_error"


# --------------------------------------------------------------------------------------
# Device lifecycle (events reported by devices or operators).
# --------------------------------------------------------------------------------------
class LifecycleError(DevattestError):
    """A lifecycle event or operator action is not acceptable."""

    code = "lifecycle_error"


class LifecycleTransitionRefused(LifecycleError):
    """The event or action is not allowed in the device's current lifecycle state (for
    example, any event from a decommissioned device)."""

    code = "lifecycle_transition_refused"


class MalformedLifecycleEvent(LifecycleError):
    """A lifecycle event message is malformed: unknown kind, missing or mistyped fields."""

    code = "lifecycle_event_malformed"
