"""Who is calling: bearer API tokens (hashed at rest) or a device client certificate.

Roles: ``admin`` (everything), ``provisioner`` (Trust Anchors, Reference Values, policies,
devices), ``relying-party`` (challenges, evidence, results, history, webhooks), ``device``
(challenges and evidence for its own device ID, and its own latest result).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devattest.service.problems import Forbidden, Unauthorized
from devattest.service.tls import CertificateRevoked, ClientRevocation
from devattest.store import Store, TokenRepository, hash_token


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    role: str
    #: The device this caller may act for (role ``device`` only).
    device_id: str | None = None
    token_id: str | None = None
    #: ``token`` or ``mtls``.
    via: str = "token"

    def require(self, *roles: str) -> None:
        """Raises: Forbidden unless the caller is an admin or has one of ``roles``."""
        if self.role != "admin" and self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do this")

    def require_device_access(self, device_id: str, *roles: str) -> None:
        """Allow ``roles`` (and admins) for any device, and a device for itself only.

        Raises:
            Forbidden: a device acting for another device, or a role not allowed.
        """
        if self.role == "device":
            if self.device_id != device_id:
                raise Forbidden("a device credential may only act for its own device ID")
            return
        self.require(*roles)


class Authenticator:
    """Resolves bearer tokens (with a short positive cache) and device certificates."""

    def __init__(self, store: Store, *, cache_seconds: float, mtls_device_auth: bool,
                 revocation: ClientRevocation | None = None) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._mtls = mtls_device_auth
        self._revocation = revocation
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, peer_cert_der: bytes | None
                     ) -> Principal:
        """The caller, from the ``Authorization`` header or the TLS client certificate.

        Raises:
            Unauthorized: no usable credential.
        """
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("use 'Authorization: Bearer <token>'")
            return self._by_token(token.strip())
        if self._mtls and peer_cert_der is not None:
            return _device_from_certificate(peer_cert_der, revocation=self._revocation)
        raise Unauthorized()

    def cached(self, authorization: str | None) -> Principal | None:
        """The caller from the positive cache, without I/O (None: call
        :meth:`authenticate`)."""
        if not self._ttl or not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        hit = self._cache.get(hash_token(token))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _by_token(self, token: str) -> Principal:
        key = hash_token(token)
        now = time.monotonic()
        if self._ttl:
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        with self._store.read() as s:
            record = TokenRepository(s).authenticate(token)
            principal = None if record is None else Principal(
                role=record.role, device_id=record.device_id, token_id=record.id)
        if principal is None:
            raise Unauthorized("unknown or revoked token")
        if self._ttl:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = (now + self._ttl, principal)
        return principal

    def forget(self) -> None:
        """Drop cached look-ups (after a revocation in this process)."""
        with self._lock:
            self._cache.clear()


def _device_from_certificate(der: bytes, *, revocation: ClientRevocation | None = None
                             ) -> Principal:
    """The device a verified client certificate names.

    The TLS layer already verified the chain against ``ssl_ca_certs`` (and OpenSSL's
    ``ssl_client`` purpose). The subject CN is the device ID; the certificate is not bound
    to the device's attestation key (docs/service.md, "mTLS for devices").
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise Unauthorized("unreadable client certificate") from None
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Unauthorized("client certificate outside its validity period")
    # RFC 5280 4.2.1.12: when the certificate restricts its purposes, TLS client
    # authentication must be one of them (again here, whatever the TLS layer checked).
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    except ValueError:
        raise Unauthorized("client certificate has malformed extensions") from None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise Unauthorized("client certificate is not for TLS client authentication")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str) or not cns[0].value:
        raise Unauthorized("client certificate has no single subject CN (the device ID)")
    if revocation is not None:
        try:
            revocation.check(cert, now=now)
        except CertificateRevoked as exc:
            raise Unauthorized(str(exc)) from None
    return Principal(role="device", device_id=cns[0].value, via="mtls")
