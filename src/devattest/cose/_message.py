"""COSE_Sign1 / COSE_Mac0 (RFC 9052 sections 4.2 and 6.2) decode, verify and create.

Decoding checks structure only (EvidenceError); verifying checks the algorithm, ``crit``
and the signature or MAC (VerificationError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

import cbor2

from devattest.cose import _cbor
from devattest.cose._algorithms import (
    HDR_ALG,
    HDR_CONTENT_TYPE,
    HDR_CRIT,
    HDR_KID,
    HDR_X5CHAIN,
    HS256,
    MAC_ALGS,
    SIGNATURE_ALGS,
    _check_mac_key,
    _compute_mac,
    _verify_mac,
    _verify_signature,
    alg_for_public_key,
    alg_name,
)
from devattest.cose._cbor import _plain_within_limits, _reencode, strict_loads
from devattest.errors import (
    AlgorithmError,
    MalformedCose,
    TokenTooLarge,
    UnexpectedTag,
    UnknownCriticalHeader,
    shown,
)
from devattest.model import DecodeLimits, VerifyOptions
from devattest.model._fast import fast_constructor

# RFC 9052 section 2 (COSE tags) and RFC 8392 section 6 (CWT tag).
TAG_SIGN1: Final = 18
TAG_MAC0: Final = 17
TAG_CWT: Final = 61
_KIND_TAG: Final = {"sign1": TAG_SIGN1, "mac0": TAG_MAC0}
_TAG_KIND: Final[dict[int, Literal["sign1", "mac0"]]] = {TAG_SIGN1: "sign1", TAG_MAC0: "mac0"}

#: Header parameters this implementation understands, for ``crit`` (RFC 9052 section 3.1).
UNDERSTOOD_HEADERS: Final = frozenset({HDR_ALG, HDR_CRIT, HDR_CONTENT_TYPE, HDR_KID, HDR_X5CHAIN})

#: Annotation returned when the legacy ``allow_unprotected_alg`` option was needed.
ANNOTATION_UNPROTECTED_ALG: Final = "cose_alg_unprotected"

_EMPTY: Final[Mapping[int, Any]] = MappingProxyType({})
_loads = _cbor._loads  # cbor2's decoder, thawing tag content on cbor2 6
_CBORTag = cbor2.CBORTag


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
        """The key identifier (header 4), protected or unprotected."""
        v = self.protected.get(4, self.unprotected.get(4))
        return v if isinstance(v, bytes) else None

    @property
    def x5chain(self) -> tuple[bytes, ...]:
        """The X.509 chain (header 33, RFC 9360), leaf first; empty when absent."""
        v = self.protected.get(33, self.unprotected.get(33))
        if isinstance(v, bytes):
            return (v,)
        if isinstance(v, list) and all(isinstance(c, bytes) for c in v):
            return tuple(v)
        return ()


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------
# Decoded protected headers by their bytes: tokens from one device class share them. Only
# headers that passed every check are cached, with what they need from the limits.
_PROTECTED_CACHE: dict[bytes, tuple[Mapping[int, Any], int]] = {}
_PROTECTED_CACHE_MAX: Final = 256
_PROTECTED_CACHEABLE: Final = 64


def decode_cose(data: bytes, *, limits: DecodeLimits, options: VerifyOptions,
                expected: Literal["sign1", "mac0"] | None = None) -> CoseMessage:
    """Strictly decode a COSE_Sign1 or COSE_Mac0, possibly wrapped in the CWT tag 61.

    Args:
        data: The encoded message.
        limits: Decoding bounds.
        options: ``require_cose_tag`` rejects an untagged message.
        expected: The kind required; an untagged message is read as this kind. Without it
            an untagged message is rejected, since Sign1 and Mac0 have the same shape.

    Returns:
        The decoded message. Nothing is verified yet.

    Raises:
        UnexpectedTag: The tag is missing (when required or needed), wrong, or tag 61
            wraps something other than a tagged COSE_Sign1/COSE_Mac0.
        MalformedCose: The array or header shapes break RFC 9052.
        EvidenceError: Any strict-decoding violation (see ``strict_loads``).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > limits.max_token_size:
        raise TokenTooLarge(f"token is {len(data)} bytes, the limit is {limits.max_token_size}")
    fast = _decode_fast(data, limits, options, expected)
    if fast is not None:
        return fast
    # The authoritative path: strict decoding names any violation precisely.
    obj = strict_loads(data, limits=limits)
    # Step 1 (RFC 8392 section 6, RFC 9052 section 2): tags.
    cwt_tagged = False
    if type(obj) is cbor2.CBORTag and obj.tag == TAG_CWT:
        cwt_tagged = True
        obj = obj.value
        if type(obj) is not cbor2.CBORTag:
            raise UnexpectedTag("CWT tag 61 must wrap a tagged COSE message")
    if type(obj) is cbor2.CBORTag:
        kind = _TAG_KIND.get(obj.tag)
        if kind is None:
            raise UnexpectedTag(
                f"CBOR tag {shown(obj.tag)} is not COSE_Sign1 (18) or COSE_Mac0 (17)")
        if expected is not None and kind != expected:
            raise UnexpectedTag(
                f"expected a COSE_{expected.capitalize()}, got tag {shown(obj.tag)}")
        tagged = True
        obj = obj.value
    else:
        if options.require_cose_tag:
            raise UnexpectedTag("the COSE tag (18 or 17) is required")
        if expected is None:
            raise UnexpectedTag("an untagged COSE message needs an expected kind")
        kind = expected
        tagged = False
    # Step 2 (RFC 9052 sections 4.2 and 6.2): [protected bstr, unprotected map,
    # payload bstr, signature/tag bstr].
    if type(obj) is not list or len(obj) != 4:
        raise MalformedCose(f"COSE_{kind.capitalize()} must be an array of 4 items")
    protected_bytes, unprotected, payload, signature = obj
    if type(protected_bytes) is not bytes:
        raise MalformedCose("the protected header must be a byte string")
    if type(unprotected) is not dict:
        raise MalformedCose("the unprotected header must be a map")
    if payload is None:
        raise MalformedCose("detached payloads are not supported")
    if type(payload) is not bytes:
        raise MalformedCose("the payload must be a byte string")
    if type(signature) is not bytes:
        raise MalformedCose("the signature or tag must be a byte string")
    return _message(kind, protected_bytes, unprotected, payload, signature, tagged, cwt_tagged,
                    limits)


def _decode_fast(data: bytes, limits: DecodeLimits, options: VerifyOptions,
                 expected: Literal["sign1", "mac0"] | None) -> CoseMessage | None:
    """The common case in a few microseconds: cbor2's C decoder, a shape check, and a
    byte-for-byte comparison with the preferred encoding of what was decoded (which rules out
    trailing bytes, non-preferred or indefinite lengths, extra tags and duplicate keys in the
    unprotected header). With the native scanner, its verdict replaces the comparison. None
    sends the input to the authoritative path in decode_cose."""
    scan = _cbor._scan
    if scan is not None and scan(data, limits.max_depth, limits.max_container_items,
                                 limits.max_bignum_bits) is not None:
        return None
    try:
        obj = _loads(data)
    except Exception:
        return None
    prefix = b""
    cwt_tagged = tagged = False
    if type(obj) is _CBORTag:
        if obj.tag == TAG_CWT:
            cwt_tagged = True
            prefix = b"\xd8\x3d"
            obj = obj.value
            if type(obj) is not _CBORTag:
                return None
        kind = _TAG_KIND.get(obj.tag)
        if kind is None or (expected is not None and kind != expected):
            return None
        prefix += b"\xd2" if kind == "sign1" else b"\xd1"
        tagged = True
        obj = obj.value
    elif options.require_cose_tag or expected is None:
        return None
    else:
        kind = expected
    if type(obj) is not list or len(obj) != 4:
        return None
    protected_bytes, unprotected, payload, signature = obj
    if (type(protected_bytes) is not bytes or type(unprotected) is not dict
            or type(payload) is not bytes or type(signature) is not bytes):
        return None
    if scan is not None:
        # The whole token is strict CBOR within the limits (_cbor_scan.c).
        return _message(kind, protected_bytes, unprotected, payload, signature, tagged,
                        cwt_tagged, limits)
    # Nesting: each tag around a tag or an array, the array, then the header map.
    enclosing = cwt_tagged + tagged + 1
    if enclosing >= limits.max_depth or limits.max_container_items < 4:
        return None
    if unprotected:
        if not _plain_within_limits(unprotected, limits, len(data), enclosing):
            return None
        unprotected_bytes = _reencode(unprotected)
    else:
        unprotected_bytes = b"\xa0"
    if b"".join((prefix, b"\x84", _bstr_head(len(protected_bytes)), protected_bytes,
                 unprotected_bytes, _bstr_head(len(payload)), payload,
                 _bstr_head(len(signature)), signature)) != data:
        return None
    return _message(kind, protected_bytes, unprotected, payload, signature, tagged, cwt_tagged,
                    limits)


# A frozen dataclass's __init__ costs twice as much on the hot path (see model._fast).
_new_message = fast_constructor(CoseMessage)


def _message(kind: Literal["sign1", "mac0"], protected_bytes: bytes,
             unprotected: dict[Any, Any], payload: bytes, signature: bytes, tagged: bool,
             cwt_tagged: bool, limits: DecodeLimits) -> CoseMessage:
    """Check the headers (RFC 9052 section 3) and build the message."""
    protected = _decode_protected(protected_bytes, limits)
    if unprotected:
        _check_header_map(unprotected, limits, bucket="unprotected")
        if HDR_CRIT in unprotected:
            raise MalformedCose("crit must be in the protected header (RFC 9052 section 3.1)")
        for label in unprotected:
            if label in protected:
                raise MalformedCose(
                    f"header {shown(label)} is in both buckets (RFC 9052 section 3)")
        unprotected_view: Mapping[int, Any] = MappingProxyType(unprotected)
    else:
        unprotected_view = _EMPTY
    return _new_message(kind=kind, protected_bytes=protected_bytes, protected=protected,
                        unprotected=unprotected_view, payload=payload, signature=signature,
                        tagged=tagged, cwt_tagged=cwt_tagged)


def _decode_protected(protected_bytes: bytes, limits: DecodeLimits) -> Mapping[int, Any]:
    """RFC 9052 section 3: a bstr holding a map; the empty bstr is the empty map."""
    if not protected_bytes:
        return _EMPTY
    cached = _PROTECTED_CACHE.get(protected_bytes)
    if cached is not None and limits.max_depth >= 1 and cached[1] <= limits.max_container_items:
        return cached[0]
    header = strict_loads(protected_bytes, limits=limits)
    if type(header) is not dict:
        raise MalformedCose("the protected header must encode a map")
    _check_header_map(header, limits, bucket="protected")
    crit = header.get(HDR_CRIT)
    if crit is not None and (type(crit) is not list or not crit or any(
            type(c) not in (int, str) for c in crit)):
        raise MalformedCose("crit must be a non-empty array of labels (RFC 9052 section 3.1)")
    view: Mapping[int, Any] = MappingProxyType(header)
    if len(protected_bytes) <= _PROTECTED_CACHEABLE and not _has_nested(header):
        if len(_PROTECTED_CACHE) >= _PROTECTED_CACHE_MAX:
            _PROTECTED_CACHE.clear()
        _PROTECTED_CACHE[protected_bytes] = (view, len(header))
    return view


def _has_nested(header: dict[Any, Any]) -> bool:
    return any(type(v) in (list, dict, cbor2.CBORTag) for v in header.values())


def _check_header_map(header: dict[Any, Any], limits: DecodeLimits, *, bucket: str) -> None:
    """RFC 9052 section 3.1: labels are int or tstr; known parameters have their types."""
    for label in header:
        if type(label) is not int and type(label) is not str:
            raise MalformedCose(f"{bucket} header label {shown(label)} is not an int or text")
    alg = header.get(HDR_ALG)
    if alg is not None and type(alg) is not int and type(alg) is not str:
        raise MalformedCose("alg must be an int or text")
    kid = header.get(HDR_KID)
    if kid is not None and type(kid) is not bytes:
        raise MalformedCose("kid must be a byte string")
    if HDR_X5CHAIN in header:
        chain = header[HDR_X5CHAIN]
        # RFC 9360 section 2: a bstr, or an array of two or more bstr (we accept one too).
        if type(chain) is list:
            if not chain or any(type(c) is not bytes for c in chain):
                raise MalformedCose("x5chain must be a byte string or array of byte strings")
            if len(chain) > limits.max_chain_length:
                raise MalformedCose(
                    f"x5chain has {len(chain)} certificates, the limit is "
                    f"{limits.max_chain_length}")
        elif type(chain) is not bytes:
            raise MalformedCose("x5chain must be a byte string or array of byte strings")


# ---------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------
def _resolve_alg(msg: CoseMessage, options: VerifyOptions,
                 understood: frozenset[Any]) -> tuple[int | None, tuple[str, ...]]:
    """The algorithm to verify with, and annotations. None means: absent from both
    buckets, accepted under ``allow_unprotected_alg`` (the caller infers it from the key)."""
    annotations: tuple[str, ...] = ()
    protected = msg.protected
    # Step 1 (RFC 9052 section 3.1): crit lists only parameters we understand.
    crit = protected.get(HDR_CRIT)
    if crit is not None:
        for label in crit:
            if label not in understood:
                raise UnknownCriticalHeader(f"critical header {shown(label)} is not understood")
    # Step 2 (RFC 9052 section 3.1): alg is protected; unprotected only as a reported
    # legacy relaxation.
    alg = protected.get(HDR_ALG)
    if alg is None:
        alg = msg.unprotected.get(HDR_ALG)
        if not options.allow_unprotected_alg:
            if alg is None:
                raise AlgorithmError("no algorithm in the COSE headers")
            raise AlgorithmError("the algorithm is only in the unprotected header")
        if alg is None:
            # Legacy TF-M tokens carry no alg at all; the key decides, and it is reported.
            return None, (f"{ANNOTATION_UNPROTECTED_ALG}: no algorithm in the COSE headers; "
                          "inferred from the key (legacy allow_unprotected_alg option)",)
        annotations = (f"{ANNOTATION_UNPROTECTED_ALG}: algorithm {alg_name(alg)} was accepted "
                       "from the unprotected header (legacy allow_unprotected_alg option)",)
    if type(alg) is not int:
        raise AlgorithmError(f"unsupported algorithm {shown(alg)}")
    # RFC 9053 section 10.1: alg 0 is reserved.
    if alg == 0:
        raise AlgorithmError("algorithm 0 is reserved")
    return alg, annotations


def sig_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """RFC 9052 section 4.4: Sig_structure ["Signature1", protected, external_aad, payload]."""
    return b"".join((b"\x84\x6aSignature1", _bstr_head(len(protected_bytes)), protected_bytes,
                     _bstr_head(len(external_aad)), external_aad,
                     _bstr_head(len(payload)), payload))


def mac_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """RFC 9052 section 6.3: MAC_structure ["MAC0", protected, external_aad, payload]."""
    return b"".join((b"\x84\x64MAC0", _bstr_head(len(protected_bytes)), protected_bytes,
                     _bstr_head(len(external_aad)), external_aad,
                     _bstr_head(len(payload)), payload))


def _bstr_head(n: int) -> bytes:
    if n < 256:
        return _SHORT_BSTR_HEADS[n]
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return _long_bstr_head(n)


def _long_bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


#: RFC 8949 section 3.1: byte-string heads for lengths below 256 (one or two bytes).
_SHORT_BSTR_HEADS: Final = tuple(_long_bstr_head(n) for n in range(256))


def verify_sign1(msg: CoseMessage, public_key: Any, *, options: VerifyOptions,
                 external_aad: bytes = b"",
                 understood_crit: frozenset[Any] = frozenset()) -> tuple[str, ...]:
    """Verify a COSE_Sign1 with an asymmetric public key (RFC 9052 section 4.4).

    Args:
        msg: A message from :func:`decode_cose`.
        public_key: A ``cryptography`` EC (P-256/384/521) or Ed25519 public key.
        options: ``allow_unprotected_alg`` accepts (and reports) an unprotected alg.
        external_aad: Externally supplied data bound into the signature.
        understood_crit: Further header labels the caller processes, for ``crit``.

    Returns:
        Annotations for the result (e.g. that the legacy unprotected alg was accepted).

    Raises:
        AlgorithmError: No, reserved, unknown, unprotected or non-signature algorithm, or
            the key does not match it.
        UnknownCriticalHeader: ``crit`` lists a parameter not understood.
        SignatureInvalid: The signature does not verify.
    """
    if msg.kind != "sign1":
        raise AlgorithmError("verify_sign1 needs a COSE_Sign1")
    alg, annotations = _resolve_alg(msg, options, UNDERSTOOD_HEADERS | understood_crit
                                    if understood_crit else UNDERSTOOD_HEADERS)
    if alg is None:
        alg = alg_for_public_key(public_key)
    # Step 3 (RFC 9053 section 2): only signature algorithms, with a matching key.
    if alg not in SIGNATURE_ALGS:
        raise AlgorithmError(f"{alg_name(alg)} is not a signature algorithm for COSE_Sign1")
    # Step 4 (RFC 9052 section 4.4): verify over the Sig_structure.
    _verify_signature(alg, public_key, sig_structure(msg.protected_bytes, external_aad,
                                                     msg.payload), msg.signature)
    return annotations


def verify_mac0(msg: CoseMessage, key: bytes, *, options: VerifyOptions,
                external_aad: bytes = b"",
                understood_crit: frozenset[Any] = frozenset()) -> tuple[str, ...]:
    """Verify a COSE_Mac0 with a symmetric key (RFC 9052 section 6.3), in constant time.

    Args:
        msg: A message from :func:`decode_cose`.
        key: The symmetric key, as ``bytes``. Public keys (objects or their encodings) are
            refused, which stops the HMAC-keyed-with-the-public-key substitution.
        options: ``allow_unprotected_alg`` accepts (and reports) an unprotected alg.
        external_aad: Externally supplied data bound into the MAC.
        understood_crit: Further header labels the caller processes, for ``crit``.

    Returns:
        Annotations for the result.

    Raises:
        AlgorithmError: No, reserved, unknown, unprotected or non-MAC algorithm, or the
            key is not a symmetric key.
        UnknownCriticalHeader: ``crit`` lists a parameter not understood.
        SignatureInvalid: The MAC does not verify.
    """
    if msg.kind != "mac0":
        raise AlgorithmError("verify_mac0 needs a COSE_Mac0")
    alg, annotations = _resolve_alg(msg, options, UNDERSTOOD_HEADERS | understood_crit
                                    if understood_crit else UNDERSTOOD_HEADERS)
    if alg is None:
        alg = HS256
    # Step 3 (RFC 9053 section 3.1): only MAC algorithms, with a symmetric key.
    if alg not in MAC_ALGS:
        raise AlgorithmError(f"{alg_name(alg)} is not a MAC algorithm for COSE_Mac0")
    # Step 4 (RFC 9052 section 6.3): verify over the MAC_structure.
    _verify_mac(alg, key, mac_structure(msg.protected_bytes, external_aad, msg.payload),
                msg.signature)
    return annotations


# ---------------------------------------------------------------------------------------
# Creation (deterministic CBOR, RFC 8949 section 4.2)
# ---------------------------------------------------------------------------------------
def _headers(alg: int, kid: bytes | None, x5chain: tuple[bytes, ...],
             protected_extra: Mapping[int, Any] | None,
             unprotected_extra: Mapping[int, Any] | None,
             alg_in_protected: bool) -> tuple[bytes, dict[int, Any]]:
    protected: dict[Any, Any] = {}
    unprotected: dict[Any, Any] = {}
    (protected if alg_in_protected else unprotected)[HDR_ALG] = alg
    if protected_extra:
        protected.update(protected_extra)
    if kid is not None:
        unprotected[HDR_KID] = kid
    if x5chain:
        unprotected[HDR_X5CHAIN] = x5chain[0] if len(x5chain) == 1 else list(x5chain)
    if unprotected_extra:
        unprotected.update(unprotected_extra)
    for label in unprotected:
        if label in protected:
            raise ValueError(f"header {label!r} given in both buckets")
    protected_bytes = cbor2.dumps(protected, canonical=True) if protected else b""
    return protected_bytes, unprotected


def _encode_message(tag: int, protected_bytes: bytes, unprotected: dict[int, Any],
                    payload: bytes, signature: bytes, *, tagged: bool, cwt_tag: bool) -> bytes:
    body: Any = [protected_bytes, unprotected, payload, signature]
    if tagged or cwt_tag:
        body = cbor2.CBORTag(tag, body)
    if cwt_tag:
        body = cbor2.CBORTag(TAG_CWT, body)
    return bytes(cbor2.dumps(body, canonical=True))


def create_sign1(payload: bytes, signer: Any, *, kid: bytes | None = None,
                 x5chain: tuple[bytes, ...] = (), tagged: bool = True, cwt_tag: bool = False,
                 protected_extra: Mapping[int, Any] | None = None,
                 unprotected_extra: Mapping[int, Any] | None = None,
                 alg_in_protected: bool = True, external_aad: bytes = b"") -> bytes:
    """Create a COSE_Sign1 (RFC 9052 section 4.2) signed by ``signer``.

    Args:
        payload: The payload bytes (for a CWT, the encoded claims map).
        signer: A :class:`Signer` (``alg`` and ``sign(tbs)``): a private key, TPM or token.
        kid: Key identifier, in the unprotected header.
        x5chain: Certificates (DER, leaf first), in the unprotected header.
        tagged: Emit tag 18. ``cwt_tag`` implies it.
        cwt_tag: Wrap in the CWT tag 61 (RFC 8392 section 6).
        protected_extra: More protected header parameters.
        unprotected_extra: More unprotected header parameters.
        alg_in_protected: Put alg in the protected header (False only for legacy tests).
        external_aad: Externally supplied data bound into the signature.

    Returns:
        The encoded message, in deterministic CBOR.

    Raises:
        ValueError: A header label is given in both buckets.
    """
    protected_bytes, unprotected = _headers(signer.alg, kid, x5chain, protected_extra,
                                            unprotected_extra, alg_in_protected)
    signature = signer.sign(sig_structure(protected_bytes, external_aad, payload))
    return _encode_message(TAG_SIGN1, protected_bytes, unprotected, payload, bytes(signature),
                           tagged=tagged, cwt_tag=cwt_tag)


def create_mac0(payload: bytes, key: bytes, *, alg: int = HS256, kid: bytes | None = None,
                tagged: bool = True, cwt_tag: bool = False,
                protected_extra: Mapping[int, Any] | None = None,
                unprotected_extra: Mapping[int, Any] | None = None,
                alg_in_protected: bool = True, external_aad: bytes = b"") -> bytes:
    """Create a COSE_Mac0 (RFC 9052 section 6.2) with an HMAC key.

    Args:
        payload: The payload bytes.
        key: The symmetric key.
        alg: HS256 (default), HS384 or HS512.
        kid: Key identifier, in the unprotected header.
        tagged: Emit tag 17. ``cwt_tag`` implies it.
        cwt_tag: Wrap in the CWT tag 61.
        protected_extra: More protected header parameters.
        unprotected_extra: More unprotected header parameters.
        alg_in_protected: Put alg in the protected header (False only for legacy tests).
        external_aad: Externally supplied data bound into the MAC.

    Returns:
        The encoded message, in deterministic CBOR.

    Raises:
        AlgorithmError: ``alg`` is not a MAC algorithm or ``key`` is not a symmetric key.
        ValueError: A header label is given in both buckets.
    """
    if alg not in MAC_ALGS:
        raise AlgorithmError(f"{alg_name(alg)} is not a MAC algorithm")
    key = _check_mac_key(key)
    protected_bytes, unprotected = _headers(alg, kid, (), protected_extra, unprotected_extra,
                                            alg_in_protected)
    tag = _compute_mac(alg, key, mac_structure(protected_bytes, external_aad, payload))
    return _encode_message(TAG_MAC0, protected_bytes, unprotected, payload, tag,
                           tagged=tagged, cwt_tag=cwt_tag)
