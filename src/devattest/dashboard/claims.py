"""The latest claims of a device set against its Reference Values, for display.

Pure: takes the annotated-evidence claims an EAR carries (``ear_devattest`` /
``annotated-evidence``, bytes as base64url) and the provisioned
:class:`~devattest.model.ReferenceValues`, and says, per software component, which measured
digest and signer were expected. Appraisal itself happened in the verifier (RFC 9334 section
8.3); this only explains it to a person, and never decides trust.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devattest.model import ReferenceValues, ReferenceValueSet


@dataclass(frozen=True, slots=True)
class ComponentRow:
    """One measured software component against its Reference Values."""

    measurement_type: str
    measured: str
    expected: tuple[str, ...]
    measurement_ok: bool | None
    signer: str
    expected_signers: tuple[str, ...]
    signer_ok: bool | None
    version: str = ""
    security_version: str = ""
    min_security_version: str = ""
    #: True when the component has no Reference Value at all.
    unknown_component: bool = False


@dataclass(frozen=True, slots=True)
class ClaimsView:
    """What the dashboard shows of the latest claims."""

    profile: str
    class_id: str
    class_known: bool
    components: tuple[ComponentRow, ...]
    #: Required components the Reference Values name but the Evidence lacks.
    missing: tuple[str, ...]
    #: Every other claim, as (name, display value).
    other: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def mismatches(self) -> int:
        """How many components differ from their Reference Values."""
        return sum(1 for c in self.components
                   if c.measurement_ok is False or c.signer_ok is False
                   or c.unknown_component) + len(self.missing)


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _hex(value: Any) -> str:
    raw = _b64(value)
    return raw.hex() if raw is not None else ("" if value is None else str(value))


def _display(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)[:400]


def annotated_claims(ear_payload: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The (submodule name, claims) of the first submodule that carries annotated evidence."""
    submods = ear_payload.get("submods")
    if not isinstance(submods, Mapping):
        return None
    for name, sub in submods.items():
        ext = sub.get("ear_devattest") if isinstance(sub, Mapping) else None
        ann = ext.get("annotated-evidence") if isinstance(ext, Mapping) else None
        claims = ann.get("claims") if isinstance(ann, Mapping) else None
        if isinstance(claims, Mapping):
            return str(name), claims
    return None


def _component(comp: Mapping[str, Any], refs: ReferenceValueSet | None) -> ComponentRow:
    mtype = str(comp.get("measurement_type", ""))
    measured = _hex(comp.get("measurement_value"))
    signer = _hex(comp.get("signer_id"))
    candidates = refs.by_type.get(mtype, ()) if refs is not None else ()
    expected = tuple(sorted({v.hex() for r in candidates for v in r.measurement_values}))
    signers = tuple(sorted({v.hex() for r in candidates for v in r.signer_ids}))
    min_svn = sorted({str(r.min_security_version) for r in candidates
                      if r.min_security_version is not None})
    unknown = refs is not None and not candidates
    return ComponentRow(
        measurement_type=mtype, measured=measured, expected=expected,
        measurement_ok=None if refs is None or not expected else measured in expected,
        signer=signer, expected_signers=signers,
        signer_ok=None if refs is None or not signers or not signer else signer in signers,
        version=str(comp.get("version", "")),
        security_version=str(comp.get("security_version", "")),
        min_security_version=", ".join(min_svn), unknown_component=unknown)


_SHOWN_ELSEWHERE = frozenset({"software_components", "implementation_id", "profile"})


def compare(claims: Mapping[str, Any], reference_values: ReferenceValues | None) -> ClaimsView:
    """Set PSA-style claims against the Reference Values of their class.

    Args:
        claims: annotated-evidence claims (bytes as base64url).
        reference_values: what is provisioned now (None: nothing provisioned).
    """
    impl = _b64(claims.get("implementation_id"))
    refs = None
    if reference_values is not None:
        refs = reference_values.for_class(impl) if impl is not None else None
        if refs is None and isinstance(claims.get("hardware_model"), str):
            refs = reference_values.for_class(claims["hardware_model"])
    raw_components = claims.get("software_components")
    comps: Sequence[Any] = raw_components if isinstance(raw_components, list) else []
    rows = tuple(_component(c, refs) for c in comps if isinstance(c, Mapping))
    present = {r.measurement_type for r in rows}
    missing = tuple(sorted({r.measurement_type for r in refs.components
                            if r.required and r.measurement_type not in present})
                    ) if refs is not None else ()
    other = tuple((k, _display(v)) for k, v in sorted(claims.items())
                  if k not in _SHOWN_ELSEWHERE)
    return ClaimsView(profile=str(claims.get("profile", "")),
                      class_id=impl.hex() if impl is not None else "",
                      class_known=refs is not None, components=rows, missing=missing,
                      other=other)


def ear_payload(token: str) -> dict[str, Any]:
    """The payload of an EAR JWT this service signed and stored (read back from its own
    database; the signature was made by this service and is not re-checked here).

    Raises:
        ValueError: not a JWS compact serialisation with a JSON object payload.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWS compact serialisation")
    raw = _b64(parts[1])
    if raw is None:
        raise ValueError("payload is not base64url")
    decoded = json.loads(raw)
    if not isinstance(decoded, dict):
        raise ValueError("payload is not a JSON object")
    return decoded
