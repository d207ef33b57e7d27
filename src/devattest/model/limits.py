"""Denial-of-service bounds and verification options, in one typed config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Strict limits applied to every piece of Evidence before and while it is decoded.

    Each violation raises its own :class:`devattest.errors.EvidenceError` subclass.
    """

    #: Maximum size of a token in bytes (default 64 KiB).
    max_token_size: int = 64 * 1024
    #: Maximum CBOR container nesting depth.
    max_depth: int = 16
    #: Maximum number of entries in one CBOR map or array.
    max_container_items: int = 1024
    #: Maximum number of certificates in an ``x5chain``.
    max_chain_length: int = 8
    #: Maximum magnitude, in bits, of a CBOR bignum (tags 2 and 3, RFC 8949 section 3.4.3).
    #: Plain CBOR integers reach 64 bits; nothing in Evidence needs more, and a huge integer
    #: costs quadratic time to print.
    max_bignum_bits: int = 64


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """Options that relax or tighten verification. Every relaxation is reported in the result."""

    #: Accept a COSE algorithm outside the protected header (many TF-M tokens have an empty
    #: protected header). Off by default; when used, the result carries a warning annotation.
    allow_unprotected_alg: bool = False
    #: Require the COSE tag (18 for Sign1, 17 for Mac0) on the outer structure.
    require_cose_tag: bool = False
    #: Allowed clock skew, in seconds, for ``iat``/``exp`` checks.
    clock_skew: int = 60


DEFAULT_LIMITS = DecodeLimits()
DEFAULT_OPTIONS = VerifyOptions()
