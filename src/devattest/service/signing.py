"""The EAR result-signing key: a PEM file, or a key held in a PKCS#11 token.

Both are :class:`ResultSigner` objects: ``sign(result) -> JWT`` and ``jwks()``, the JWK Set
published at ``/.well-known/devattest/keys``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.ear import public_jwk, result_to_claims, sign_ear_jwt
from devattest.errors import ConfigurationError
from devattest.model import AttestationResult

_log = logging.getLogger("devattest.service")


class ResultSigner(Protocol):
    """Signs Attestation Results as EAR JWTs."""

    @property
    def kid(self) -> str: ...

    def sign(self, result: AttestationResult) -> str:
        """The EAR JWT of ``result``."""
        ...

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set."""
        ...


class FileKeySigner:
    """An EC or Ed25519 private key from a PEM file."""

    def __init__(self, key: Any, *, kid: str | None = None) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ConfigurationError("the EAR signing key must be an EC or Ed25519 private key")
        self._key = key
        self._jwk = public_jwk(key, kid=kid)

    @classmethod
    def from_file(cls, path: Path, *, kid: str | None = None, create: bool = False
                  ) -> FileKeySigner:
        """Load the key, generating a P-256 key (mode 0600) first if ``create`` and absent.

        Raises:
            ConfigurationError: the file is missing or does not hold a usable private key.
        """
        if not path.exists():
            if not create:
                raise ConfigurationError(f"EAR signing key file {path} does not exist")
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write a private temp file, then link it into place: several processes starting
            # at once all end up with the one key that won the link.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            try:
                os.link(tmp, path)
                _log.warning("generated a new EAR signing key", extra={"path": str(path)})
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        try:
            loaded: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot load the EAR signing key {path}: {exc}") from exc
        return cls(loaded, kid=kid)

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    def sign(self, result: AttestationResult) -> str:
        return sign_ear_jwt(result, self._key, kid=self.kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(self._jwk)]}


class Pkcs11Signer:
    """An ES256 key inside a PKCS#11 token (the attester's SecureElement backend reused).

    The JWS is assembled here because the private key never leaves the token: the signing
    input is ``BASE64URL(header) . BASE64URL(claims)`` (RFC 7515 section 5.1) and the token's
    raw ``r || s`` signature is exactly the JWS ES256 signature (RFC 7518 section 3.4).
    """

    def __init__(self, *, module: str, token_label: str, pin: str, key_label: str,
                 kid: str | None = None, create: bool = False) -> None:
        """Open the token and find the key (generating it first if ``create``).

        Raises:
            ConfigurationError: no such module or token, or no such key and not ``create``.
            SecureElementError: wrong PIN, an exportable, non-P-256 or ambiguous key.
        """
        from devattest.attester.backends.pkcs11 import Pkcs11Config, Pkcs11Key

        self._se = Pkcs11Key(Pkcs11Config(token_label=token_label, pin=pin, module=module,
                                          key_label=key_label, create=create))
        self._jwk = public_jwk(self._se.public_key(), kid=kid)

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    def sign(self, result: AttestationResult) -> str:
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        signing_input = _b64json(header) + "." + _b64json(result_to_claims(result))
        sig = self._se.sign(signing_input.encode())
        return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(self._jwk)]}

    def close(self) -> None:
        """Close the PKCS#11 session."""
        self._se.close()


def _b64json(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()
