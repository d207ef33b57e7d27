"""Reference Values (RFC 9334 section 8.3): what good looks like, per device class."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

_ASCII_DIGITS = frozenset("0123456789")
_MAX_DIGITS = 1000


@lru_cache(maxsize=4096)
def version_tuple(version: str) -> tuple[int, ...]:
    """Dotted numeric version -> tuple for comparison; a non-numeric suffix is ignored.

    ``"1.3.5"`` -> ``(1, 3, 5)``; ``"2.1.0-rc1"`` -> ``(2, 1, 0)``. Memoised: fleets report
    a handful of distinct versions.
    """
    out: list[int] = []
    for part in version.replace("-", ".").replace("+", ".").split("."):
        digits = ""
        for ch in part:
            # ASCII only: str.isdigit() also admits "²", which int() refuses.
            if ch not in _ASCII_DIGITS:
                break
            digits += ch
        if not digits and out:
            break
        # Beyond _MAX_DIGITS the value is astronomically past any provisioned minimum
        # (provisioning bounds versions); truncating keeps int() under Python's int-string
        # limit, so a hostile version cannot raise here.
        out.append(int(digits[:_MAX_DIGITS]) if digits else 0)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ComponentReference:
    """The acceptable state of one measured software component."""

    #: Component name, matched against the claim's measurement type ("BL", "PRoT", ...).
    measurement_type: str
    #: Acceptable digests. Empty means any digest is acceptable (version checks only).
    measurement_values: frozenset[bytes] = frozenset()
    #: Acceptable signer IDs. Empty means any signer.
    signer_ids: frozenset[bytes] = frozenset()
    #: Minimum version (dotted numeric, compared numerically) against rollback.
    min_version: str | None = None
    #: Minimum security version number against rollback.
    min_security_version: int | None = None
    #: Whether the component must be present in the Evidence.
    required: bool = True
    #: ``min_version`` parsed once (derived).
    min_version_key: tuple[int, ...] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_version_key",
                           None if self.min_version is None else version_tuple(self.min_version))


@dataclass(frozen=True, slots=True)
class ReferenceValueSet:
    """Reference Values for one device class (PSA implementation ID, or hardware model)."""

    #: The class identifier: PSA implementation ID bytes, or a hardware-model string.
    class_id: bytes | str
    components: tuple[ComponentReference, ...] = ()
    #: Allowed security lifecycle values; None means the profile's default rule only.
    allowed_lifecycles: frozenset[int] | None = None
    #: Whether measured components absent from ``components`` are rejected (default: yes).
    reject_unknown_components: bool = True
    #: Identifier reported in the EAR (e.g. a CoRIM tag ID and version).
    source: str = ""
    #: ``components`` grouped by measurement type (derived).
    by_type: dict[str, tuple[ComponentReference, ...]] = field(
        init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[ComponentReference]] = {}
        for ref in self.components:
            grouped.setdefault(ref.measurement_type, []).append(ref)
        object.__setattr__(self, "by_type", {k: tuple(v) for k, v in grouped.items()})


@dataclass(frozen=True)
class ReferenceValues:
    """All provisioned Reference Values, indexed by class identifier."""

    sets: tuple[ReferenceValueSet, ...] = ()
    _index: dict[bytes | str, ReferenceValueSet] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.class_id: s for s in self.sets})

    @classmethod
    def of(cls, sets: Iterable[ReferenceValueSet]) -> ReferenceValues:
        return cls(sets=tuple(sets))

    def for_class(self, class_id: bytes | str | None) -> ReferenceValueSet | None:
        if class_id is None:
            return None
        return self._index.get(class_id)
