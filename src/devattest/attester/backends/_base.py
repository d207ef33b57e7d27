"""The SecureElement interface: where the attesting key lives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SecureElementProperties:
    """What the backend guarantees about its key."""

    #: The key lives in dedicated hardware (TPM, secure element, HSM).
    hardware_backed: bool
    #: The private key cannot be exported from the backend.
    non_exportable: bool
    #: Backend name: ``tpm2``, ``pkcs11`` or ``unsafe_software``.
    backend: str


class SecureElement(Protocol):
    """An attesting key held by a secure element.

    ``sign`` returns the COSE signature (raw r||s for ECDSA) so a SecureElement is also a
    :class:`devattest.cose.Signer`.
    """

    @property
    def key_id(self) -> bytes: ...

    @property
    def alg(self) -> int:
        """COSE algorithm of the key (ES256 for P-256)."""
        ...

    @property
    def properties(self) -> SecureElementProperties: ...

    def public_key(self) -> Any:
        """The public key as a ``cryptography`` public-key object."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashing it with the alg's hash) inside the secure element."""
        ...
