"""UNSAFE: an attestation key in a PEM file. For tests only.

The key is readable by anything that can read the file, so it justifies nothing. Every use
logs a WARNING on the ``devattest.unsafe`` logger, its properties say it is neither
hardware-backed nor non-exportable, and certificates issued for it carry no hardware-backed
marker, so an Appraisal Policy can refuse it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devattest.attester.backends._base import SecureElementProperties
from devattest.cose import ES256
from devattest.crypto.pki import key_identifier
from devattest.errors import ConfigurationError

LOGGER = logging.getLogger("devattest.unsafe")

_PROPERTIES = SecureElementProperties(hardware_backed=False, non_exportable=False,
                                      backend="unsafe_software")


@dataclass(frozen=True, slots=True)
class UnsafeSoftwareConfig:
    """Where the unsafe key lives."""

    #: PEM (PKCS#8, unencrypted) P-256 private key; created when absent and ``create`` is set.
    key_path: str
    create: bool = True


class UnsafeSoftwareKey:
    """UNSAFE test-only SecureElement: a P-256 key in a PEM file. Warns on every use."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, *, source: str = "memory"
                 ) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("unsafe_software supports P-256 keys only")
        self._key = private_key
        self._source = source
        self._public = private_key.public_key()
        self._key_id = key_identifier(self._public)
        self._warn("opened")

    @classmethod
    def generate(cls) -> UnsafeSoftwareKey:
        """A fresh in-memory key (tests)."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def open(cls, config: UnsafeSoftwareConfig) -> UnsafeSoftwareKey:
        """Load the key from ``config.key_path``, creating it (mode 0600) if allowed.

        Raises:
            ConfigurationError: if the file is missing (and ``create`` is off) or not a P-256
                PEM key.
        """
        path = Path(config.key_path)
        if not path.exists():
            if not config.create:
                raise ConfigurationError(f"{path}: no such key file")
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            return cls(key, source=str(path))
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{path}: not an unencrypted PEM private key") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{path}: not an EC private key")
        return cls(loaded, source=str(path))

    def _warn(self, action: str) -> None:
        LOGGER.warning("UNSAFE software attestation key (%s) %s: not hardware-backed, "
                       "for tests only", self._source, action)

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def alg(self) -> int:
        return ES256

    @property
    def properties(self) -> SecureElementProperties:
        return _PROPERTIES

    def public_key(self) -> Any:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """ES256 over ``data``: raw r||s (RFC 9053 section 2.1). Logs a warning."""
        self._warn("used to sign")
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
