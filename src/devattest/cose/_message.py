"""COSE_Sign1 / COSE_Mac0 decode, verify and create. (To be implemented: see package doc.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from devattest.model import DecodeLimits, VerifyOptions


@dataclass(frozen=True, slots=True)
class CoseMessage:
    """A strictly decoded COSE_Sign1 or COSE_Mac0."""

    kind: Literal["sign1", "mac0"]
    protected_bytes: bytes
    protected: Mapping[int, Any]
    unprotected: Mapping[int, Any]
    payload: bytes
    #: The signature (raw r||s for ECDSA) or the MAC tag.
    signature: bytes
    #: Whether the COSE tag (18/17) was present.
    tagged: bool
    #: Whether the CWT tag (61) wrapped the message.
    cwt_tagged: bool = False

    @property
    def alg(self) -> int | None:
        """The algorithm from the protected header (None if absent there)."""
        v = self.protected.get(1)
        return v if isinstance(v, int) else None

    @property
    def kid(self) -> bytes | None:
        v = self.protected.get(4, self.unprotected.get(4))
        return v if isinstance(v, bytes) else None

    @property
    def x5chain(self) -> tuple[bytes, ...]:
        v = self.protected.get(33, self.unprotected.get(33))
        if isinstance(v, bytes):
            return (v,)
        if isinstance(v, list) and all(isinstance(c, bytes) for c in v):
            return tuple(v)
        return ()


def decode_cose(data: bytes, *, limits: DecodeLimits, options: VerifyOptions,
                expected: Literal["sign1", "mac0"] | None = None) -> CoseMessage:
    raise NotImplementedError


def verify_sign1(msg: CoseMessage, public_key: Any, *, options: VerifyOptions,
                 external_aad: bytes = b"") -> tuple[str, ...]:
    raise NotImplementedError


def verify_mac0(msg: CoseMessage, key: bytes, *, options: VerifyOptions,
                external_aad: bytes = b"") -> tuple[str, ...]:
    raise NotImplementedError


def create_sign1(payload: bytes, signer: Any, *, kid: bytes | None = None,
                 x5chain: tuple[bytes, ...] = (), tagged: bool = True, cwt_tag: bool = False,
                 protected_extra: Mapping[int, Any] | None = None,
                 unprotected_extra: Mapping[int, Any] | None = None,
                 alg_in_protected: bool = True) -> bytes:
    raise NotImplementedError


def create_mac0(payload: bytes, key: bytes, *, alg: int = 5, kid: bytes | None = None,
                tagged: bool = True, cwt_tag: bool = False,
                protected_extra: Mapping[int, Any] | None = None,
                unprotected_extra: Mapping[int, Any] | None = None,
                alg_in_protected: bool = True) -> bytes:
    raise NotImplementedError
