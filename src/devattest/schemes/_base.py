"""The evidence-scheme plugin interface (Veraison-style: schemes keyed by media type)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from devattest.model import Claims, DecodeLimits, KeyAnchor, KeyHints, VerifyOptions


@runtime_checkable
class DecodedEvidence(Protocol):
    """What a scheme's ``decode`` returns: scheme-private, but always carries key hints."""

    @property
    def key_hints(self) -> KeyHints: ...

    @property
    def nonce(self) -> bytes | tuple[bytes, ...] | list[bytes] | None:
        """The freshness nonce as carried, before claim rules (checked in step 4). EAT may
        carry several (RFC 9711 section 4.1): any one of them may match."""
        ...


class EvidenceScheme(Protocol):
    """An evidence format. Scheme code is pure: it never touches a store, a clock or a network.

    The appraisal core calls the methods in this order (see ``devattest.verifier.core``):
    ``decode`` (step 1), then, with the key the core found (step 2), ``verify_integrity``
    (step 3), then ``extract_claims`` (step 5). Each raises a specific
    :class:`devattest.errors.DevattestError` subclass.
    """

    #: Short unique name, e.g. ``"psa"``.
    name: ClassVar[str]
    #: Media types this scheme handles (exact strings, parameters included, lower-case).
    media_types: ClassVar[tuple[str, ...]]
    #: The profiles (``Claims.profile``: an ``eat_profile`` value, or the scheme's own name
    #: for its format) this scheme appraises. The core refuses a token whose profile belongs
    #: to another registered scheme, or to none (no scheme confusion, docs/schemes.md).
    profiles: ClassVar[tuple[str, ...]]

    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions
               ) -> DecodedEvidence:
        """Step 1: parse the bytes under strict limits. Raises EvidenceError."""
        ...

    def verify_integrity(self, decoded: Any, key: KeyAnchor, *, options: VerifyOptions
                         ) -> tuple[str, ...]:
        """Step 3: check the signature or MAC with ``key``.

        Returns annotations (e.g. ``"alg accepted from unprotected header"``).
        Raises SignatureInvalid, AlgorithmError or UnknownCriticalHeader.
        """
        ...

    def extract_claims(self, decoded: Any, *, now: int, options: VerifyOptions) -> Claims:
        """Step 5: apply the profile's claim rules and return normalised claims.

        Raises ClaimsError subclasses (or TokenExpired for ``iat``/``exp``).
        """
        ...

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        """The instance identity a key implies (PSA: 0x01 || SHA-256 of the public key), used
        to bind a certified key to the token's claimed identity. None if not applicable."""
        ...
