"""Client certificates for device mTLS under uvicorn, and their revocation.

uvicorn does not put the peer certificate in the ASGI scope. :class:`TlsHttpToolsProtocol`
(pass it as uvicorn's ``http`` protocol; ``devattest serve --tls-*`` does) adds the ASGI TLS
extension, ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings, leaf first),
read from the connection's ``ssl_object``. The chain was verified by the TLS handshake
against ``ssl_ca_certs``; :func:`peer_certificate_der` hands the leaf to the authenticator,
which checks it against the CRLs of :class:`ClientRevocation` when one is configured.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from devattest.errors import ConfigurationError
from devattest.service.http import BoundedHttpToolsProtocol

_UNSET: Any = object()


class TlsHttpToolsProtocol(BoundedHttpToolsProtocol):
    """uvicorn's httptools protocol (with devattest's slow-client bounds) plus the ASGI TLS
    extension."""

    _tls_chain: Any = _UNSET

    def on_message_begin(self) -> None:
        super().on_message_begin()
        chain = self._tls_chain
        if chain is _UNSET:
            # The handshake is over before the first request: read the peer once per
            # connection, not once per request.
            ssl_object = self.transport.get_extra_info("ssl_object")
            if ssl_object is None:
                chain = None
            else:
                der = ssl_object.getpeercert(binary_form=True)
                chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
            self._tls_chain = chain
        if chain is None:
            return
        extensions = dict(self.scope.get("extensions") or {})
        extensions["tls"] = {"client_cert_chain": chain, "tls_version": None,
                             "cipher_suite": None}
        self.scope["extensions"] = extensions  # type: ignore[typeddict-unknown-key]


def peer_certificate_der(scope: dict[str, Any]) -> bytes | None:
    """The client's leaf certificate (DER) from the ASGI TLS extension, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(chain[0])


class CertificateRevoked(Exception):
    """A client certificate is revoked, or its revocation status cannot be established."""


@dataclass(frozen=True, slots=True)
class _CrlSet:
    stamp: tuple[int, int, int]
    by_issuer: dict[x509.Name, x509.CertificateRevocationList]


class ClientRevocation:
    """CRLs (RFC 5280 section 5) for device client certificates, re-read when the file
    changes, so a revocation needs no restart (replace the file atomically, e.g. ``mv``).

    Fail closed: a certificate whose issuer has no CRL in the file, a CRL past its
    ``nextUpdate``, or a file that no longer loads refuses the certificate.
    """

    def __init__(self, crl_file: Path, ca_file: Path) -> None:
        """Load the CA bundle and the CRLs.

        Raises:
            ConfigurationError: a file is missing or unreadable, or a CRL is not signed by
                a CA of the bundle.
        """
        self._crl_file = crl_file
        try:
            self._cas = tuple(x509.load_pem_x509_certificates(ca_file.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the client CA bundle {ca_file}: {exc}") \
                from exc
        self._lock = threading.Lock()
        self._current: _CrlSet | None = self._load()
        self._error: str | None = None

    def _stamp(self) -> tuple[int, int, int]:
        st = os.stat(self._crl_file)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> _CrlSet:
        try:
            stamp = self._stamp()
            crls = _read_crls(self._crl_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the client CRL file {self._crl_file}: "
                                     f"{exc}") from exc
        by_issuer: dict[x509.Name, x509.CertificateRevocationList] = {}
        for crl in crls:
            # RFC 5280 6.3.3 (f): the CRL must be signed by the certificate's issuer.
            if not any(ca.subject == crl.issuer and crl.is_signature_valid(
                    ca.public_key()) for ca in self._cas):  # type: ignore[arg-type]
                raise ConfigurationError(
                    f"{self._crl_file}: a CRL for {crl.issuer.rfc4514_string()} is not "
                    "signed by a CA of the client CA bundle")
            old = by_issuer.get(crl.issuer)
            if old is None or crl.last_update_utc > old.last_update_utc:
                by_issuer[crl.issuer] = crl
        return _CrlSet(stamp, by_issuer)

    def _crls(self) -> dict[x509.Name, x509.CertificateRevocationList]:
        try:
            stamp = self._stamp()
        except OSError as exc:
            raise CertificateRevoked(f"the CRL file is unreadable: {exc}") from None
        with self._lock:
            if self._current is None or self._current.stamp != stamp:
                try:
                    self._current, self._error = self._load(), None
                except ConfigurationError as exc:
                    self._current, self._error = None, exc.message
            if self._current is None:
                raise CertificateRevoked(f"the CRL file is unusable: {self._error}")
            return self._current.by_issuer

    def check(self, cert: x509.Certificate, *, now: datetime) -> None:
        """Refuse ``cert`` unless a current CRL of its issuer does not list it.

        Raises:
            CertificateRevoked: revoked, no CRL for the issuer, a stale CRL, or an unusable
                CRL file.
        """
        # RFC 5280 6.3.3 (a)-(b): a CRL from the certificate's issuer, current at `now`.
        crl = self._crls().get(cert.issuer)
        if crl is None:
            raise CertificateRevoked("no CRL for the client certificate's issuer")
        if crl.next_update_utc is None or now > crl.next_update_utc:
            raise CertificateRevoked("the CRL for the client certificate's issuer is stale")
        # RFC 5280 6.3.3 (i)-(j): the serial must not be listed.
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CertificateRevoked("the client certificate is revoked")


def _read_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every PEM CRL in ``data``, or the one DER CRL it is."""
    marker = b"-----BEGIN X509 CRL-----"
    if marker not in data:
        return [x509.load_der_x509_crl(data)]
    return [x509.load_pem_x509_crl(marker + block) for block in data.split(marker)[1:]]
