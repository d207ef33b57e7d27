"""Trust Anchors (RFC 9334 section 7.1): the keys and CA certificates a Verifier trusts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509


@dataclass(frozen=True, slots=True)
class KeyAnchor:
    """A raw verification key trusted for one attesting identity.

    ``public_key`` is a ``cryptography`` public-key object for signatures, or ``bytes`` for a
    symmetric (COSE_Mac0) key.
    """

    public_key: Any
    #: PSA Instance ID (0x01 || SHA-256(public key)) or another UEID this key attests for.
    instance_id: bytes | None = None
    #: COSE ``kid`` the Attester puts in its header, if any.
    kid: bytes | None = None
    #: Free-text label for results and logs (manufacturer, device ID ...).
    label: str = ""
    #: True only when the key is known to live in a secure element.
    hardware_backed: bool = False
    #: Who vouches for this key: ``"manufacturer:<name>"`` or ``"owner:<name>"``.
    authority: str = ""


@dataclass(frozen=True, slots=True)
class CertificateAnchor:
    """A CA certificate trusted to certify attestation keys, with its current CRLs."""

    certificate: x509.Certificate
    #: ``"manufacturer:<name>"`` or ``"owner:<name>"``.
    authority: str = ""
    crls: tuple[x509.CertificateRevocationList, ...] = ()


@dataclass(frozen=True)
class TrustAnchors:
    """An immutable set of Trust Anchors with precomputed look-up indexes.

    A new set is built when anchors or CRLs change; anything cached against a set (such as
    verified certificate chains) is therefore invalidated with it.
    """

    keys: tuple[KeyAnchor, ...] = ()
    certificates: tuple[CertificateAnchor, ...] = ()
    #: Extra data for chain validation, owned by ``devattest.crypto`` (e.g. a chain cache).
    extensions: Mapping[str, Any] = field(default_factory=dict)
    _by_instance_id: dict[bytes, KeyAnchor] = field(init=False, repr=False, compare=False)
    _by_kid: dict[bytes, KeyAnchor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_iid: dict[bytes, KeyAnchor] = {}
        by_kid: dict[bytes, KeyAnchor] = {}
        for anchor in self.keys:
            if anchor.instance_id is not None:
                by_iid[anchor.instance_id] = anchor
            if anchor.kid is not None:
                by_kid[anchor.kid] = anchor
        object.__setattr__(self, "_by_instance_id", by_iid)
        object.__setattr__(self, "_by_kid", by_kid)

    @classmethod
    def of(cls, keys: Iterable[KeyAnchor] = (), certificates: Iterable[CertificateAnchor] = ()
           ) -> TrustAnchors:
        return cls(keys=tuple(keys), certificates=tuple(certificates))

    def by_instance_id(self, instance_id: bytes) -> KeyAnchor | None:
        return self._by_instance_id.get(instance_id)

    def by_kid(self, kid: bytes) -> KeyAnchor | None:
        return self._by_kid.get(kid)

    @property
    def empty(self) -> bool:
        return not self.keys and not self.certificates
