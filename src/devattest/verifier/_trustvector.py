"""The documented rules that derive the AR4SI trustworthiness vector (docs/ear.md).

Each failure maps to exactly one (claim, value) pair; the values are draft-ietf-rats-ar4si
section 2.3 values as named in ``devattest.model.ar4si``.
"""

from __future__ import annotations

from devattest import errors as e
from devattest.model import Status, ar4si

#: Error class -> (trust-vector claim, AR4SI value). The most specific class wins.
_RULES: tuple[tuple[type[e.DevattestError], str, int], ...] = (
    # Malformed or unsupported Evidence cannot be cryptographically validated.
    (e.EvidenceError, "instance_identity", ar4si.CRYPTO_VALIDATION_FAILED),
    (e.SignatureInvalid, "instance_identity", ar4si.CRYPTO_VALIDATION_FAILED),
    (e.AlgorithmError, "instance_identity", ar4si.CRYPTO_VALIDATION_FAILED),
    (e.UnknownCriticalHeader, "instance_identity", ar4si.CRYPTO_VALIDATION_FAILED),
    (e.KeyNotFound, "instance_identity", ar4si.UNRECOGNIZED_INSTANCE),
    (e.UntrustedChain, "instance_identity", ar4si.UNRECOGNIZED_INSTANCE),
    (e.ChainError, "instance_identity", ar4si.UNTRUSTWORTHY_INSTANCE),
    (e.HardwareBackingRequired, "hardware", ar4si.UNRECOGNIZED_HARDWARE),
    # Stale or replayed Evidence says nothing about the device now.
    (e.FreshnessError, "instance_identity", ar4si.CRYPTO_VALIDATION_FAILED),
    (e.ClaimsError, "configuration", ar4si.UNSUPPORTABLE_CONFIG),
    (e.NoReferenceValues, "executables", ar4si.UNRECOGNIZED_RUNTIME),
    (e.UnknownMeasurement, "executables", ar4si.UNRECOGNIZED_RUNTIME),
    (e.MissingComponent, "executables", ar4si.UNRECOGNIZED_RUNTIME),
    (e.SignerMismatch, "executables", ar4si.CONTRAINDICATED_RUNTIME),
    (e.RollbackDetected, "executables", ar4si.CONTRAINDICATED_RUNTIME),
    (e.LifecycleNotAllowed, "configuration", ar4si.UNSUPPORTABLE_CONFIG),
    (e.ReferenceValueError, "executables", ar4si.UNRECOGNIZED_RUNTIME),
    # TPM: a quote whose PCRs the event log cannot explain says nothing true about what ran.
    (e.EventLogMismatch, "executables", ar4si.CONTRAINDICATED_RUNTIME),
    (e.PcrDigestMismatch, "executables", ar4si.CONTRAINDICATED_RUNTIME),
    # TPM: counters going backwards mean a rolled-back or substituted TPM.
    (e.TpmClockRegression, "hardware", ar4si.CONTRAINDICATED_HARDWARE),
)


def claim_for_error(error: e.DevattestError) -> tuple[str, int]:
    """The (claim, value) pair an error sets. Unknown errors are a verifier malfunction."""
    best: tuple[type[e.DevattestError], str, int] | None = None
    for cls, claim, value in _RULES:
        if isinstance(error, cls) and (best is None or issubclass(cls, best[0])):
            best = (cls, claim, value)
    if best is None:
        return "instance_identity", ar4si.VERIFIER_MALFUNCTION
    return best[1], best[2]


def worse(a: int | None, b: int) -> int:
    """The less trustworthy of two claim values (higher tier wins; ties keep the larger)."""
    if a is None:
        return b
    ta, tb = Status.from_claim(a).tier, Status.from_claim(b).tier
    if tb > ta:
        return b
    if ta > tb:
        return a
    return max(a, b)
