"""Attestation-key certificate chains: validation against Trust Anchors, with CRLs and a
bounded verified-chain cache.

:func:`validate_chain` raises one typed error per failure; :func:`check_chain` returns an
inspectable verdict instead. Both are pure: ``now`` is an argument and nothing is fetched.

Steps (numbered once, tagged where they happen; errors carry ``step``):

1. Parse the COSE ``x5chain`` (RFC 9360 section 2: leaf first, each certificate certifying the
   one before it) within size bounds.
2. Find the Trust Anchor that issued (or is) a presented certificate (RFC 5280 6.1.1 (d)).
3. CA constraints on the presented path (RFC 5280 6.1.4 (k)): every issuer is a CA.
4. Validity of every certificate at ``now`` (RFC 5280 6.1.3 (a)(2)).
5. Key usage and key purpose of the leaf (RFC 5280 4.2.1.3, 4.2.1.12).
6. Path validation by ``cryptography.x509.verification``: signatures, basic constraints and
   path length, name constraints (RFC 5280 6.1).
7. Revocation against the issuer's CRL from the Trust Anchors (RFC 5280 6.3), whose own
   signature and validity are checked at ``now``.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as xv

from devattest.crypto.pki import OID_KP_ATTESTATION_KEY, hardware_backend_of
from devattest.errors import (
    CertificateExpired,
    CertificateRevoked,
    ChainError,
    DevattestError,
    HardwareBackingRequired,
    KeyMismatch,
    KeyPurposeError,
    ProvisioningError,
    UntrustedChain,
)
from devattest.model.anchors import CertificateAnchor, KeyAnchor, TrustAnchors

#: Bounds on a presented chain (denial of service).
MAX_CHAIN_CERTIFICATES = 8
MAX_CERTIFICATE_BYTES = 16 * 1024
#: Default size of each Trust Anchors generation's verified-chain cache.
DEFAULT_CACHE_SIZE = 4096
#: Key in ``TrustAnchors.extensions`` for an explicit cache size.
CACHE_SIZE_EXTENSION = "chain_cache_size"

_DER = Encoding.DER


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The non-raising result of :func:`check_chain`."""

    anchor: KeyAnchor | None
    error: DevattestError | None

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------
# Verified-chain cache: one per TrustAnchors object (a "generation")
# --------------------------------------------------------------------------------------
_CacheKey = tuple[bool, bool, tuple[bytes, ...]]


@dataclass(frozen=True, slots=True)
class _Entry:
    anchor: KeyAnchor
    valid_from: dt.datetime
    valid_until: dt.datetime


class _Generation:
    """State derived from one immutable TrustAnchors: its Store, CRL index and chain cache."""

    def __init__(self, anchors: TrustAnchors) -> None:
        size = anchors.extensions.get(CACHE_SIZE_EXTENSION, DEFAULT_CACHE_SIZE)
        self.maxsize = int(size)
        self.entries: OrderedDict[_CacheKey, _Entry] = OrderedDict()
        self.lock = threading.Lock()
        self.by_der = {a.certificate.public_bytes(_DER): a for a in anchors.certificates}
        self.by_subject: dict[x509.Name, list[CertificateAnchor]] = {}
        for a in anchors.certificates:
            self.by_subject.setdefault(a.certificate.subject, []).append(a)
        self.crls: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for a in anchors.certificates:
            for crl in a.crls:
                self.crls.setdefault(crl.issuer, []).append(crl)
        self.store = xv.Store([a.certificate for a in anchors.certificates]) if (
            anchors.certificates) else None

    def get(self, key: _CacheKey, now: dt.datetime) -> KeyAnchor | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            # A cached verdict never outlives a certificate's or a CRL's validity.
            if not entry.valid_from <= now <= entry.valid_until:
                return None
            self.entries.move_to_end(key)
            return entry.anchor

    def put(self, key: _CacheKey, entry: _Entry) -> None:
        if self.maxsize <= 0:
            return
        with self.lock:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.maxsize:
                self.entries.popitem(last=False)


_GENERATIONS: dict[int, _Generation] = {}
_GENERATIONS_LOCK = threading.Lock()


def _generation(anchors: TrustAnchors) -> _Generation:
    # Keyed by object identity: TrustAnchors is immutable, so a changed CRL or anchor means a
    # new object and a fresh cache. The entry is dropped when the object is collected (before
    # its id can be reused).
    key = id(anchors)
    with _GENERATIONS_LOCK:
        gen = _GENERATIONS.get(key)
        if gen is None:
            gen = _Generation(anchors)
            _GENERATIONS[key] = gen
            weakref.finalize(anchors, _GENERATIONS.pop, key, None)
        return gen


def cache_info(anchors: TrustAnchors) -> tuple[int, int]:
    """(entries, maxsize) of the verified-chain cache of ``anchors`` (for metrics)."""
    gen = _generation(anchors)
    return len(gen.entries), gen.maxsize


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def validate_chain(x5chain: tuple[bytes, ...], anchors: TrustAnchors, *, now: dt.datetime,
                   require_purpose: bool = True, require_crl: bool = False) -> KeyAnchor:
    """Validate an attestation-key certificate chain and return the certified key.

    Args:
        x5chain: DER certificates, leaf first (COSE ``x5chain``, RFC 9360).
        anchors: The Trust Anchors, whose ``certificates`` carry their current CRLs.
        now: The validation time (timezone-aware).
        require_purpose: Require the devattest attestation key purpose on the leaf.
        require_crl: Fail when an issuer in the path has no CRL among the anchors.

    Returns:
        A KeyAnchor with the leaf's public key, ``hardware_backed`` from the marker
        extension, ``authority`` from the matching CertificateAnchor, ``label`` the subject.

    Raises:
        UntrustedChain: no Trust Anchor issued the chain (e.g. another manufacturer's CA).
        CertificateExpired: a certificate is outside its validity period at ``now``.
        CertificateRevoked: a certificate is on its issuer's CRL.
        KeyPurposeError: the leaf lacks digitalSignature or the attestation key purpose.
        ChainError: any other path failure (an issuer that is not a CA, a leaf used as a CA,
            path length, name constraints, bad signature, stale or invalid CRL).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if anchors.empty or not anchors.certificates:
        # Fail closed: no certificate Trust Anchors means nothing can be trusted.
        raise UntrustedChain("no certificate Trust Anchors are provisioned", step="2")
    gen = _generation(anchors)
    key = (require_purpose, require_crl, tuple(x5chain))
    cached = gen.get(key, now)
    if cached is not None:
        return cached
    anchor, entry = _validate(x5chain, gen, now=now, require_purpose=require_purpose,
                              require_crl=require_crl)
    gen.put(key, entry)
    return anchor


def check_chain(x5chain: tuple[bytes, ...], anchors: TrustAnchors, *, now: dt.datetime,
                require_purpose: bool = True, require_crl: bool = False) -> ChainVerdict:
    """:func:`validate_chain` returning a verdict instead of raising (for dashboards)."""
    try:
        return ChainVerdict(validate_chain(x5chain, anchors, now=now,
                                           require_purpose=require_purpose,
                                           require_crl=require_crl), None)
    except DevattestError as exc:
        return ChainVerdict(None, exc)


def require_key_match(anchor: KeyAnchor, public_key: Any) -> None:
    """Check that the key the Evidence was verified with is the certified key.

    Raises:
        KeyMismatch: if ``public_key`` is not ``anchor.public_key`` (key substitution).
    """
    try:
        same = public_key.public_numbers() == anchor.public_key.public_numbers()
    except AttributeError:
        same = False
    if not same:
        raise KeyMismatch("the Evidence key is not the key the certificate chain certifies")


def require_hardware_backed(anchor: KeyAnchor) -> None:
    """Check that the certified key lives in a secure element.

    Raises:
        HardwareBackingRequired: if the certificate carries no hardware-backed marker.
    """
    if not anchor.hardware_backed:
        raise HardwareBackingRequired(
            f"{anchor.label or 'the attestation key'} is not certified as hardware-backed")


def _validate(x5chain: tuple[bytes, ...], gen: _Generation, *, now: dt.datetime,
              require_purpose: bool, require_crl: bool) -> tuple[KeyAnchor, _Entry]:
    # 1: parse x5chain (RFC 9360 section 2), bounded.
    if not x5chain:
        raise ChainError("empty x5chain", step="1")
    if len(x5chain) > MAX_CHAIN_CERTIFICATES:
        raise ChainError(f"x5chain has more than {MAX_CHAIN_CERTIFICATES} certificates",
                         step="1")
    certs: list[x509.Certificate] = []
    for i, der in enumerate(x5chain):
        if len(der) > MAX_CERTIFICATE_BYTES:
            raise ChainError(f"certificate {i} is too large", step="1")
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise ChainError(f"certificate {i} is not a DER X.509 certificate", step="1") \
                from exc

    # 2: find the Trust Anchor (RFC 5280 6.1.1 (d)): a presented certificate that is an
    # anchor, or is directly issued by one.
    path, anchor = _anchored_path(certs, x5chain, gen)

    # 3: every issuer in the path is a CA (RFC 5280 6.1.4 (k)).
    for i, cert in enumerate(path[1:], start=1):
        bc = _basic_constraints(cert)
        if bc is None:
            raise ChainError(f"certificate {i} ({cert.subject.rfc4514_string()}) issues "
                             "certificates but has no CA basic constraint", step="3")
        if not bc.ca:
            raise ChainError(f"certificate {i} ({cert.subject.rfc4514_string()}) is an "
                             "end-entity certificate used as a CA", step="3")
    leaf = path[0]
    leaf_bc = _basic_constraints(leaf)
    if leaf_bc is not None and leaf_bc.ca:
        raise KeyPurposeError("the leaf is a CA certificate, not an attestation key", step="3")

    # 4: validity at `now` (RFC 5280 6.1.3 (a)(2)).
    for i, cert in enumerate(path):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CertificateExpired(
                f"certificate {i} ({cert.subject.rfc4514_string()}) is valid from "
                f"{cert.not_valid_before_utc.isoformat()} to "
                f"{cert.not_valid_after_utc.isoformat()}, not at {now.isoformat()}", step="4")

    # 5: key usage digitalSignature, no CA usages (RFC 5280 4.2.1.3); key purpose
    # (RFC 5280 4.2.1.12).
    _check_leaf_purpose(leaf, require_purpose=require_purpose)

    # 6: path validation: signatures, basic constraints, path length, name constraints.
    assert gen.store is not None
    builder = (xv.PolicyBuilder().store(gen.store).time(now)
               .max_chain_depth(MAX_CHAIN_CERTIFICATES)
               .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(),
                                   ee_policy=xv.ExtensionPolicy.permit_all()))
    try:
        verified = builder.build_client_verifier().verify(leaf, path[1:-1])
    except xv.VerificationError as exc:
        raise ChainError(f"path validation failed: {exc}", step="6") from exc
    chain = list(verified.chain)
    top = gen.by_der.get(chain[-1].public_bytes(_DER), anchor)

    # 7: revocation (RFC 5280 6.3) against each issuer's CRL.
    # The verdict is cached for the window in which every certificate and every CRL used
    # is current: an appraisal at a time before a CRL's thisUpdate (or after its
    # nextUpdate) validates again and fails closed there.
    valid_until = min(c.not_valid_after_utc for c in chain)
    valid_from = max(c.not_valid_before_utc for c in chain)
    for i, cert in enumerate(chain[:-1]):
        crl_window = _check_revocation(cert, chain[i + 1], gen, now=now, index=i,
                                       require_crl=require_crl)
        if crl_window is not None:
            valid_from = max(valid_from, crl_window[0])
            valid_until = min(valid_until, crl_window[1])

    try:
        backend = hardware_backend_of(leaf)
    except ProvisioningError as exc:
        raise ChainError("malformed hardware-backed marker", step="5") from exc
    key_anchor = KeyAnchor(public_key=leaf.public_key(), label=leaf.subject.rfc4514_string(),
                           hardware_backed=backend is not None, authority=top.authority)
    return key_anchor, _Entry(key_anchor, valid_from, valid_until)


def _anchored_path(certs: list[x509.Certificate], x5chain: tuple[bytes, ...],
                   gen: _Generation) -> tuple[list[x509.Certificate], CertificateAnchor]:
    for i, cert in enumerate(certs):
        if i > 0 and certs[i - 1].issuer != cert.subject:
            break  # the presented order is broken past this point
        direct = gen.by_der.get(x5chain[i])
        if direct is not None:
            return certs[: i + 1], direct
        for candidate in gen.by_subject.get(cert.issuer, ()):
            try:
                cert.verify_directly_issued_by(candidate.certificate)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return [*certs[: i + 1], candidate.certificate], candidate
    top = certs[-1]
    raise UntrustedChain(f"no Trust Anchor issued {top.issuer.rfc4514_string()} "
                         f"(chain ends at {top.subject.rfc4514_string()})", step="2")


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_leaf_purpose(leaf: x509.Certificate, *, require_purpose: bool) -> None:
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if require_purpose and ku is None:
        raise KeyPurposeError("the leaf has no KeyUsage extension", step="5")
    if ku is not None and (not ku.digital_signature or ku.key_cert_sign or ku.crl_sign):
        raise KeyPurposeError("the leaf's KeyUsage must be digitalSignature only", step="5")
    if not require_purpose:
        return
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise KeyPurposeError("the leaf has no attestation key purpose (no EKU)",
                              step="5") from None
    if OID_KP_ATTESTATION_KEY not in eku:
        raise KeyPurposeError("the leaf's ExtendedKeyUsage lacks the devattest attestation "
                              "key purpose", step="5")


def _check_revocation(cert: x509.Certificate, issuer: x509.Certificate, gen: _Generation, *,
                      now: dt.datetime, index: int, require_crl: bool
                      ) -> tuple[dt.datetime, dt.datetime] | None:
    """Check ``cert`` against its issuer's CRLs; return the window in which all of them are
    current (latest thisUpdate, earliest nextUpdate), or None without a CRL."""
    candidates = gen.crls.get(cert.issuer, [])
    issuer_key = issuer.public_key()
    valid: list[x509.CertificateRevocationList] = []
    for crl in candidates:
        try:
            if crl.is_signature_valid(issuer_key):  # type: ignore[arg-type]
                valid.append(crl)
        except (TypeError, UnsupportedAlgorithm):
            continue
    if candidates and not valid:
        raise ChainError(f"no CRL for {cert.issuer.rfc4514_string()} verifies with its "
                         "issuer's key", step="7")
    if not valid:
        if require_crl:
            raise ChainError(f"no CRL for {cert.issuer.rfc4514_string()}", step="7")
        return None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    for crl in valid:
        # RFC 5280 6.3.3 (a): the CRL must be current at `now`; a stale CRL fails closed.
        next_update = crl.next_update_utc
        if crl.last_update_utc > now or next_update is None or next_update < now:
            raise ChainError(f"the CRL of {cert.issuer.rfc4514_string()} is not current "
                             f"at {now.isoformat()}", step="7")
        until = next_update if until is None else min(until, next_update)
        last = crl.last_update_utc
        since = last if since is None else max(since, last)
        # RFC 5280 6.3.3 (i): the certificate's serial is not on the CRL.
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CertificateRevoked(
                f"certificate {index} ({cert.subject.rfc4514_string()}, serial "
                f"{cert.serial_number:#x}) is revoked by {cert.issuer.rfc4514_string()}",
                step="7")
    assert since is not None and until is not None
    return since, until


def with_crls(anchors: TrustAnchors, authority: str,
              crls: Iterable[x509.CertificateRevocationList]) -> TrustAnchors:
    """A new TrustAnchors (hence a fresh cache generation) in which the certificate anchors of
    ``authority`` carry ``crls`` (replacing their previous CRLs).

    Raises:
        KeyError: if no certificate anchor has that authority.
    """
    crls = tuple(crls)
    if not any(a.authority == authority for a in anchors.certificates):
        raise KeyError(authority)
    updated = tuple(
        CertificateAnchor(a.certificate, a.authority, crls) if a.authority == authority else a
        for a in anchors.certificates)
    return TrustAnchors(keys=anchors.keys, certificates=updated,
                        extensions=dict(anchors.extensions))
