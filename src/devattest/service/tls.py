"""Client certificates for device mTLS under uvicorn.

uvicorn does not put the peer certificate in the ASGI scope. :class:`TlsHttpToolsProtocol`
(pass it as uvicorn's ``http`` protocol; ``devattest serve --tls-*`` does) adds the ASGI TLS
extension, ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings, leaf first),
read from the connection's ``ssl_object``. The chain was verified by the TLS handshake
against ``ssl_ca_certs``; :func:`peer_certificate_der` hands the leaf to the authenticator.
"""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
        self.scope["extensions"] = {"tls": {"client_cert_chain": chain,  # type: ignore[typeddict-unknown-key]
                                            "tls_version": None, "cipher_suite": None}}


def peer_certificate_der(scope: dict[str, Any]) -> bytes | None:
    """The client's leaf certificate (DER) from the ASGI TLS extension, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(chain[0])
