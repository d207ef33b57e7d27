"""Evidence as the appraisal core sees it, once a scheme has decoded it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devattest.model._fast import fast_constructor


@dataclass(frozen=True, slots=True)
class SoftwareComponent:
    """One measured software component (PSA ``sw-component``, EAT ``measurements``, a TPM
    event-log component)."""

    measurement_value: bytes
    measurement_type: str | None = None
    signer_id: bytes | None = None
    version: str | None = None
    security_version: int | None = None
    measurement_desc: str | None = None


@dataclass(frozen=True, slots=True)
class KeyHints:
    """Where the Evidence says its verification key can be found."""

    #: PSA Instance ID / EAT UEID claimed by the Evidence.
    instance_id: bytes | None = None
    #: COSE ``kid`` header (label 4).
    kid: bytes | None = None
    #: COSE ``x5chain`` header (label 33), leaf first, DER certificates.
    x5chain: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Claims:
    """Claims normalised by a scheme; the raw claims set is kept, unknown claims included.

    Scheme code builds this only after the claims set has passed the profile's rules, so a
    ``Claims`` object is well-formed by construction.
    """

    #: Profile seen in (or inferred for) the token, e.g. ``tag:psacertified.org,2023:psa#tfm``.
    profile: str
    #: The freshness nonce carried by the Evidence.
    nonce: bytes | None
    #: Instance ID / UEID.
    instance_id: bytes | None = None
    #: Device-class identifier used to look up Reference Values (PSA implementation ID, or
    #: a hardware-model string).
    class_id: bytes | str | None = None
    security_lifecycle: int | None = None
    software_components: tuple[SoftwareComponent, ...] = ()
    #: Whether the debug state (where reported) permits debugging of the RoT.
    debug_enabled: bool | None = None
    boot_count: int | None = None
    iat: int | None = None
    exp: int | None = None
    #: Every claim, keyed by its name where the scheme knows one (else the integer key).
    raw: Mapping[str | int, Any] = field(default_factory=dict)
    #: Notices the scheme wants reported (e.g. a legacy profile, an unprotected alg).
    annotations: tuple[str, ...] = ()
    #: State the profile says cannot affirm, as AR4SI findings (see :class:`Finding`), e.g. a
    #: PSA security lifecycle outside the secured range.
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    """One AR4SI trustworthiness finding: ``claim`` (a TrustVector field name) gets ``value``,
    for the reason ``code`` / ``message``."""

    claim: str
    value: int
    code: str
    message: str


# Hot-path constructors (same objects, about half the cost; see ``model._fast``).
new_software_component = fast_constructor(SoftwareComponent)
new_key_hints = fast_constructor(KeyHints)
new_claims = fast_constructor(Claims)
