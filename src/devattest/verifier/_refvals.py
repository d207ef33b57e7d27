"""Step 6: appraisal of claims against Reference Values (RFC 9334 section 8.3).

Pure and scheme-independent: it sees only the normalised :class:`Claims`.
"""

from __future__ import annotations

from devattest.errors import (
    LifecycleNotAllowed,
    MissingComponent,
    ReferenceValueError,
    RollbackDetected,
    SignerMismatch,
    UnknownMeasurement,
    shown,
)
from devattest.model import Claims, ComponentReference, ReferenceValueSet, SoftwareComponent
from devattest.model.refvals import version_tuple


def _check_component(comp: SoftwareComponent, ref: ComponentReference
                     ) -> ReferenceValueError | None:
    # 6.2: measurement value must be one of the golden digests (if any are given).
    if ref.measurement_values and comp.measurement_value not in ref.measurement_values:
        return UnknownMeasurement(
            f"component {ref.measurement_type!r}: measurement {comp.measurement_value.hex()} "
            "is not a Reference Value", step="6.2")
    # 6.3: signer ID must match (if any are given).
    if ref.signer_ids and comp.signer_id not in ref.signer_ids:
        got = comp.signer_id.hex() if comp.signer_id else "absent"
        return SignerMismatch(
            f"component {ref.measurement_type!r}: signer ID {got} is not an approved signer",
            step="6.3")
    # 6.4: rollback protection, minimum version and minimum security version.
    if ref.min_version is not None:
        if comp.version is None:
            return RollbackDetected(
                f"component {ref.measurement_type!r}: no version reported, minimum is "
                f"{ref.min_version}", step="6.4")
        if version_tuple(comp.version) < ref.min_version_key:  # type: ignore[operator]
            return RollbackDetected(
                f"component {ref.measurement_type!r}: version {shown(comp.version)} is below the "
                f"minimum {ref.min_version}", step="6.4")
    if ref.min_security_version is not None and (
        comp.security_version is None or comp.security_version < ref.min_security_version
    ):
        return RollbackDetected(
            f"component {ref.measurement_type!r}: security version {comp.security_version} is "
            f"below the minimum {ref.min_security_version}", step="6.4")
    return None


def appraise_reference_values(claims: Claims, refs: ReferenceValueSet
                              ) -> list[ReferenceValueError]:
    """Compare normalised claims with one device class's Reference Values.

    Returns every mismatch found (empty when all match); it never raises for a mismatch so
    the result can explain all of them.
    """
    problems: list[ReferenceValueError] = []
    by_type = refs.by_type
    seen: set[str] = set()
    # 6.1: every measured component must be known, and match one of its references.
    for comp in claims.software_components:
        mtype = comp.measurement_type or ""
        candidates = by_type.get(mtype)
        if not candidates:
            if refs.reject_unknown_components:
                problems.append(UnknownMeasurement(
                    f"component {shown(mtype) if mtype else '(unnamed)'} with measurement "
                    f"{comp.measurement_value.hex()} has no Reference Value", step="6.1"))
            continue
        seen.add(mtype)
        if len(candidates) == 1:
            first_error = _check_component(comp, candidates[0])
            if first_error is not None:
                problems.append(first_error)
            continue
        first_error = None
        for ref in candidates:
            err = _check_component(comp, ref)
            if err is None:
                first_error = None
                break
            if first_error is None or isinstance(err, RollbackDetected):
                first_error = err
        if first_error is not None:
            problems.append(first_error)
    # 6.5: every required component must have been measured.
    for mtype, refs_for_type in by_type.items():
        if mtype not in seen and any(r.required for r in refs_for_type):
            problems.append(MissingComponent(
                f"required component {mtype!r} is not measured", step="6.5"))
    # 6.6: the security lifecycle must be one of the allowed states.
    if refs.allowed_lifecycles is not None and (
        claims.security_lifecycle is None
        or claims.security_lifecycle not in refs.allowed_lifecycles
    ):
        lc = claims.security_lifecycle
        problems.append(LifecycleNotAllowed(
            f"security lifecycle {lc:#06x} is not allowed" if lc is not None
            else "security lifecycle not reported", step="6.6"))
    return problems


def compared_components(claims: Claims, refs: ReferenceValueSet) -> int:
    """How many measured components had at least one Reference Value of their type, i.e.
    were compared in 6.1-6.4 (0 means nothing about the software was appraised)."""
    by_type = refs.by_type
    if not by_type:
        return 0
    return sum(1 for comp in claims.software_components
               if by_type.get(comp.measurement_type or ""))
