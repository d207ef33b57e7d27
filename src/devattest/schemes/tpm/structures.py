"""A small strict unmarshaller for the TPM 2.0 structures a quote carries.

Pure Python over ``struct``: no tpm2-pytss, no I/O. Every structure is parsed from a bounded
byte string, every length is checked against the structure's TPM maximum, unknown selectors
are rejected, and trailing bytes are an error. Failures raise
:class:`devattest.errors.MalformedTpmStructure`, never ``IndexError`` or ``struct.error``.

References: TPM 2.0 Library Part 2 (Structures), revision 1.59: section 10.12 (TPMS_ATTEST,
TPMS_CLOCK_INFO, TPMS_QUOTE_INFO), 10.9 (TPML_PCR_SELECTION), 11.3 (TPMT_SIGNATURE) and 12.2
(TPMT_PUBLIC).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct
from typing import Any

from devattest.errors import MalformedTpmStructure

# ----------------------------------------------------------------------------- constants
#: TPM_GENERATED_VALUE (Part 2 section 6.2): magic of every TPM-generated TPMS_ATTEST.
TPM_GENERATED_VALUE = 0xFF544347
#: TPM_ST_ATTEST_QUOTE (Part 2 section 6.9).
TPM_ST_ATTEST_QUOTE = 0x8018

ALG_RSA = 0x0001
ALG_SHA1 = 0x0004
ALG_AES = 0x0006
ALG_SHA256 = 0x000B
ALG_SHA384 = 0x000C
ALG_SHA512 = 0x000D
ALG_NULL = 0x0010
ALG_RSASSA = 0x0014
ALG_RSAPSS = 0x0016
ALG_ECDSA = 0x0018
ALG_ECDAA = 0x001A
ALG_SM2 = 0x001B
ALG_ECSCHNORR = 0x001C
ALG_ECC = 0x0023
ALG_CFB = 0x0043

ECC_NIST_P256 = 0x0003
ECC_NIST_P384 = 0x0004

#: TPMA_OBJECT bits (Part 2 section 8.3).
FIXED_TPM = 1 << 1
FIXED_PARENT = 1 << 4
SENSITIVE_DATA_ORIGIN = 1 << 5
USER_WITH_AUTH = 1 << 6
RESTRICTED = 1 << 16
DECRYPT = 1 << 17
SIGN = 1 << 18

#: Hash algorithms devattest accepts, TPM_ALG_ID -> (hashlib name, digest size).
HASH_ALGS: dict[int, tuple[str, int]] = {
    ALG_SHA1: ("sha1", 20),
    ALG_SHA256: ("sha256", 32),
    ALG_SHA384: ("sha384", 48),
    ALG_SHA512: ("sha512", 64),
}
#: Hash constructors by TPM_ALG_ID (direct, faster than hashlib.new).
HASH_CTORS: dict[int, Callable[[bytes], Any]] = {ALG_SHA1: hashlib.sha1, ALG_SHA256: hashlib.sha256,
                              ALG_SHA384: hashlib.sha384, ALG_SHA512: hashlib.sha512}
HASH_NAMES = {ALG_SHA1: "sha1", ALG_SHA256: "sha256", ALG_SHA384: "sha384",
              ALG_SHA512: "sha512"}
HASH_IDS = {v: k for k, v in HASH_NAMES.items()}

# Size limits (Part 2 / PC Client platform values, rounded up where vendors differ).
MAX_ATTEST_SIZE = 1024  # sizeof(TPMS_ATTEST) is < 1 KiB on every platform
MAX_PUBLIC_SIZE = 1024
MAX_SIGNATURE_SIZE = 1024
MAX_DIGEST = 64  # sizeof(TPMU_HA)
MAX_NAME = 2 + MAX_DIGEST
MAX_ECC_PARAM = 66  # P-521
MAX_RSA_KEY_BYTES = 512  # RSA-4096
MAX_PCR_BANKS = 8
MAX_PCR_SELECT = 4  # 32 PCRs (PC Client: 3, i.e. 24 PCRs)

_U16 = Struct(">H")
_U32 = Struct(">I")
_CLOCK_FW = Struct(">QIIBQ")
_ATTEST_HEAD = Struct(">IHH")
_U64 = Struct(">Q")


class _Reader:
    """Bounds-checked big-endian reader over one structure."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _need(self, n: int) -> int:
        p = self.pos
        if p + n > len(self.data):
            raise MalformedTpmStructure(f"{self.what}: truncated at byte {p}")
        self.pos = p + n
        return p

    def u8(self) -> int:
        return self.data[self._need(1)]

    def u16(self) -> int:
        p = self._need(2)
        return int(_U16.unpack_from(self.data, p)[0])

    def u32(self) -> int:
        p = self._need(4)
        return int(_U32.unpack_from(self.data, p)[0])

    def u64(self) -> int:
        p = self._need(8)
        return int(_U64.unpack_from(self.data, p)[0])

    def raw(self, n: int) -> bytes:
        p = self._need(n)
        return self.data[p:p + n]

    def tpm2b(self, limit: int, field: str) -> bytes:
        size = self.u16()
        if size > limit:
            raise MalformedTpmStructure(
                f"{self.what}: {field} is {size} bytes, the maximum is {limit}")
        return self.raw(size)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedTpmStructure(
                f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def _bounded(data: Any, limit: int, what: str) -> bytes:
    if not isinstance(data, bytes):
        raise MalformedTpmStructure(f"{what} must be a byte string")
    if len(data) > limit:
        raise MalformedTpmStructure(f"{what} is {len(data)} bytes, the maximum is {limit}")
    return data


# ----------------------------------------------------------------------------- PCR selection
@dataclass(frozen=True, slots=True)
class PcrSelection:
    """A TPML_PCR_SELECTION: banks in wire order, each with its selected PCR indices."""

    #: ((hash alg id, (pcr indices ascending)), ...) in the order the TPM hashes them.
    banks: tuple[tuple[int, tuple[int, ...]], ...]

    @classmethod
    def of(cls, **banks: Any) -> PcrSelection:
        """``PcrSelection.of(sha256=range(8))``. Unknown bank names raise ValueError."""
        out = []
        for name, idx in banks.items():
            if name not in HASH_IDS:
                raise ValueError(f"unknown PCR bank {name!r}")
            indices = tuple(sorted(set(int(i) for i in idx)))
            if any(i < 0 or i >= 8 * MAX_PCR_SELECT for i in indices):
                raise ValueError("PCR index out of range")
            out.append((HASH_IDS[name], indices))
        return cls(tuple(out))

    def normalised(self) -> frozenset[tuple[int, frozenset[int]]]:
        """Order-free form for comparing two selections (empty banks dropped)."""
        return frozenset((alg, frozenset(idx)) for alg, idx in self.banks if idx)

    def describe(self) -> str:
        parts = []
        for alg, idx in self.banks:
            parts.append(f"{HASH_NAMES.get(alg, hex(alg))}:{','.join(map(str, idx)) or '-'}")
        return "+".join(parts) or "(empty)"

    def marshal(self) -> bytes:
        """The TPML_PCR_SELECTION encoding (3-byte select bitmaps, PC Client)."""
        out = [_U32.pack(len(self.banks))]
        for alg, idx in self.banks:
            size = max(3, (max(idx) // 8 + 1) if idx else 3)
            bitmap = bytearray(size)
            for i in idx:
                bitmap[i // 8] |= 1 << (i % 8)
            out.append(_U16.pack(alg) + bytes([size]) + bytes(bitmap))
        return b"".join(out)


#: _BITS[byte index][bitmap byte] -> the PCR indices that byte selects.
_BITS = tuple(tuple(tuple(8 * i + bit for bit in range(8) if b & (1 << bit))
                    for b in range(256)) for i in range(MAX_PCR_SELECT))


_ONE_BANK_3 = Struct(">IHB3B")


def _pcr_selection(r: _Reader) -> PcrSelection:
    # Fast path: one bank with a 3-byte select (PC Client's 24 PCRs), the common quote.
    # It performs the same checks as the general loop below (count, bank, sizeofSelect).
    d, p = r.data, r.pos
    if len(d) >= p + 10:
        count, alg, size, b0, b1, b2 = _ONE_BANK_3.unpack_from(d, p)
        if count == 1 and size == 3 and alg in HASH_ALGS:
            r.pos = p + 10
            return PcrSelection(((alg, _BITS[0][b0] + _BITS[1][b1] + _BITS[2][b2]),))
    count = r.u32()
    if count > MAX_PCR_BANKS:
        raise MalformedTpmStructure(f"{r.what}: {count} PCR banks, the maximum is "
                                    f"{MAX_PCR_BANKS}")
    banks = []
    seen: set[int] = set()
    for _ in range(count):
        alg = r.u16()
        if alg not in HASH_ALGS:
            raise MalformedTpmStructure(f"{r.what}: unsupported PCR bank {alg:#06x}")
        if alg in seen:
            raise MalformedTpmStructure(f"{r.what}: PCR bank {alg:#06x} selected twice")
        seen.add(alg)
        size = r.u8()
        if size > MAX_PCR_SELECT:
            raise MalformedTpmStructure(f"{r.what}: sizeofSelect {size} exceeds "
                                        f"{MAX_PCR_SELECT}")
        bitmap = r.raw(size)
        idx: tuple[int, ...] = ()
        for byte_i, b in enumerate(bitmap):
            if b:
                idx += _BITS[byte_i][b]
        banks.append((alg, idx))
    return PcrSelection(tuple(banks))


# ----------------------------------------------------------------------------- TPMS_ATTEST
@dataclass(frozen=True, slots=True)
class ClockInfo:
    """TPMS_CLOCK_INFO (Part 2 section 10.11.1)."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool


@dataclass(frozen=True, slots=True)
class Attest:
    """A TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (Part 2 section 10.12.12)."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    pcr_select: PcrSelection
    pcr_digest: bytes


def parse_attest(data: Any) -> Attest:
    """Unmarshal a TPMS_ATTEST that must be a quote.

    The magic and type are checked here (step 1.3): anything else is not a TPM quote.

    Raises:
        MalformedTpmStructure: truncated, oversized, trailing bytes, wrong magic or type.
    """
    d = _bounded(data, MAX_ATTEST_SIZE, "TPMS_ATTEST")
    n = len(d)
    try:
        magic, st, size = _ATTEST_HEAD.unpack_from(d, 0)
        if magic != TPM_GENERATED_VALUE:
            raise MalformedTpmStructure(f"TPMS_ATTEST magic is {magic:#010x}, not "
                                        "TPM_GENERATED_VALUE: not TPM-generated")
        if st != TPM_ST_ATTEST_QUOTE:
            raise MalformedTpmStructure(
                f"TPMS_ATTEST type is {st:#06x}, not TPM_ST_ATTEST_QUOTE")
        if size > MAX_NAME:
            raise MalformedTpmStructure(
                f"TPMS_ATTEST: qualifiedSigner is {size} bytes, the maximum is {MAX_NAME}")
        p = 8 + size
        signer = d[8:p]
        (size,) = _U16.unpack_from(d, p)
        if size > MAX_DIGEST:
            raise MalformedTpmStructure(
                f"TPMS_ATTEST: extraData is {size} bytes, the maximum is {MAX_DIGEST}")
        p += 2
        extra = d[p:p + size]
        p += size
        clock, reset, restart, safe, fw = _CLOCK_FW.unpack_from(d, p)
    except struct.error:
        raise MalformedTpmStructure("TPMS_ATTEST: truncated") from None
    if len(signer) + len(extra) + 8 + 2 > n:  # pragma: no cover - unpack_from checked
        raise MalformedTpmStructure("TPMS_ATTEST: truncated")
    if safe > 1:
        raise MalformedTpmStructure("TPMS_ATTEST: clockInfo.safe is not a TPMI_YES_NO")
    r = _Reader(d, "TPMS_ATTEST")
    r.pos = p + _CLOCK_FW.size
    sel = _pcr_selection(r)
    p = r.pos
    if p + 2 <= n:
        # pcrDigest (TPM2B_DIGEST), the last field: exactly the remaining bytes.
        (size,) = _U16.unpack_from(d, p)
        if size > MAX_DIGEST:
            raise MalformedTpmStructure(
                f"TPMS_ATTEST: pcrDigest is {size} bytes, the maximum is {MAX_DIGEST}")
        p += 2
        if p + size > n:
            raise MalformedTpmStructure(f"TPMS_ATTEST: truncated at byte {r.pos + 2}")
        if p + size != n:
            raise MalformedTpmStructure(f"TPMS_ATTEST: {n - p - size} trailing bytes")
        digest = d[p:p + size]
    else:
        digest = r.tpm2b(MAX_DIGEST, "pcrDigest")  # raises: truncated
        r.end()  # pragma: no cover - tpm2b raised
    return Attest(magic, st, signer, extra, ClockInfo(clock, reset, restart, bool(safe)), fw,
                  sel, digest)


# ----------------------------------------------------------------------------- TPMT_SIGNATURE
@dataclass(frozen=True, slots=True)
class Signature:
    """A TPMT_SIGNATURE (Part 2 section 11.3.4): ECDSA-family (r, s) or RSA (sig)."""

    sig_alg: int
    hash_alg: int
    #: ECDSA r and s (big-endian), or (RSA signature, b"").
    r: bytes
    s: bytes


_SIG_HEAD = Struct(">HHH")
_ECC_SIG_ALGS = frozenset({ALG_ECDSA, ALG_ECDAA, ALG_SM2, ALG_ECSCHNORR})


def parse_signature(data: Any) -> Signature:
    """Unmarshal a TPMT_SIGNATURE.

    Raises:
        MalformedTpmStructure: unknown scheme, truncated, oversized or trailing bytes.
    """
    d = _bounded(data, MAX_SIGNATURE_SIZE, "TPMT_SIGNATURE")
    # Fast path: a well-formed ECDSA-family signature, in straight-line code; anything else
    # (or any bound exceeded) goes through the reader below, which names the error.
    if len(d) >= 6:
        alg, halg, rs = _SIG_HEAD.unpack_from(d, 0)
        if alg in _ECC_SIG_ALGS and rs <= MAX_ECC_PARAM and len(d) >= 8 + rs:
            (ss,) = _U16.unpack_from(d, 6 + rs)
            if ss <= MAX_ECC_PARAM and len(d) == 8 + rs + ss:
                return Signature(alg, halg, d[6:6 + rs], d[8 + rs:])
    r = _Reader(d, "TPMT_SIGNATURE")
    alg = r.u16()
    if alg in (ALG_ECDSA, ALG_ECDAA, ALG_SM2, ALG_ECSCHNORR):
        halg = r.u16()
        sr = r.tpm2b(MAX_ECC_PARAM, "signatureR")
        ss = r.tpm2b(MAX_ECC_PARAM, "signatureS")
    elif alg in (ALG_RSASSA, ALG_RSAPSS):
        halg = r.u16()
        sr = r.tpm2b(MAX_RSA_KEY_BYTES, "sig")
        ss = b""
    else:
        raise MalformedTpmStructure(f"TPMT_SIGNATURE: unsupported sigAlg {alg:#06x}")
    r.end()
    return Signature(alg, halg, sr, ss)


# ----------------------------------------------------------------------------- TPMT_PUBLIC
@dataclass(frozen=True, slots=True)
class Public:
    """The parts of a TPMT_PUBLIC (Part 2 section 12.2.4) a verifier needs."""

    type: int
    name_alg: int
    object_attributes: int
    auth_policy: bytes
    #: Symmetric algorithm of a storage/EK key (ALG_NULL for signing keys), key bits, mode.
    symmetric: tuple[int, int, int]
    #: Signing scheme and its hash (ALG_NULL, 0 when the key leaves it to the caller).
    scheme: int
    scheme_hash: int
    #: ECC: curve ID; RSA: key bits.
    curve_or_bits: int
    #: RSA exponent (0 means 65537).
    exponent: int
    #: ECC: x, y. RSA: modulus, b"".
    x: bytes
    y: bytes
    #: The exact marshalled bytes (what the name is computed over).
    raw: bytes

    @property
    def name(self) -> bytes:
        """The TPM name: nameAlg (big-endian u16) || H_nameAlg(TPMT_PUBLIC) (Part 1 16)."""
        return object_name(self.name_alg, self.raw)

    def public_key(self) -> Any:
        """The key as a ``cryptography`` public-key object.

        Raises:
            MalformedTpmStructure: the key is not a valid point / modulus.
        """
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            if self.type == ALG_ECC:
                curve: ec.EllipticCurve
                if self.curve_or_bits == ECC_NIST_P256:
                    curve = ec.SECP256R1()
                elif self.curve_or_bits == ECC_NIST_P384:
                    curve = ec.SECP384R1()
                else:
                    raise MalformedTpmStructure(
                        f"TPMT_PUBLIC: unsupported curve {self.curve_or_bits:#06x}")
                return ec.EllipticCurvePublicNumbers(
                    int.from_bytes(self.x, "big"), int.from_bytes(self.y, "big"), curve
                ).public_key()
            return rsa.RSAPublicNumbers(self.exponent or 65537,
                                        int.from_bytes(self.x, "big")).public_key()
        except ValueError as exc:
            raise MalformedTpmStructure(f"TPMT_PUBLIC: invalid public key: {exc}") from None


def object_name(name_alg: int, public_bytes: bytes) -> bytes:
    """nameAlg || H_nameAlg(public area) (TPM 2.0 Part 1 section 16).

    Raises:
        MalformedTpmStructure: the name algorithm is not supported.
    """
    h = HASH_CTORS.get(name_alg)
    if h is None:
        raise MalformedTpmStructure(f"unsupported nameAlg {name_alg:#06x}")
    digest: bytes = h(public_bytes).digest()
    return _U16.pack(name_alg) + digest


def _sym_def_object(r: _Reader) -> tuple[int, int, int]:
    alg = r.u16()
    if alg == ALG_NULL:
        return (alg, 0, 0)
    if alg != ALG_AES:
        raise MalformedTpmStructure(f"{r.what}: unsupported symmetric algorithm {alg:#06x}")
    return (alg, r.u16(), r.u16())


_ECC_SIGN_HEAD = Struct(">HHIH")
_ECC_SIGN_PARMS = Struct(">HHHHHH")


def _fast_ecc_signing_public(raw: bytes) -> Public | None:
    """The common AK shape (ECC, no symmetric, a signing scheme with hash, no KDF, 32/48-byte
    coordinates) in straight-line code; None means "use the general parser"."""
    try:
        typ, name_alg, attrs, psize = _ECC_SIGN_HEAD.unpack_from(raw, 0)
        if typ != ALG_ECC or name_alg not in HASH_ALGS or psize > MAX_DIGEST:
            return None
        p = 10 + psize
        sym, scheme, shash, curve, kdf, xs = _ECC_SIGN_PARMS.unpack_from(raw, p)
        if sym != ALG_NULL or scheme in (ALG_NULL, ALG_ECDAA) or kdf != ALG_NULL \
                or xs > MAX_ECC_PARAM:
            return None
        p += 12
        x = raw[p:p + xs]
        p += xs
        (ys,) = _U16.unpack_from(raw, p)
        p += 2
        y = raw[p:p + ys]
    except struct.error:
        return None
    if len(x) != xs or len(y) != ys or p + ys != len(raw) or ys > MAX_ECC_PARAM:
        return None
    return Public(typ, name_alg, attrs, raw[10:10 + psize], (ALG_NULL, 0, 0), scheme, shash,
                  curve, 0, x, y, raw)


def parse_public(data: Any) -> Public:
    """Unmarshal a TPMT_PUBLIC of an RSA or ECC key.

    Raises:
        MalformedTpmStructure: unsupported type or scheme, truncated, oversized, trailing bytes.
    """
    raw = _bounded(data, MAX_PUBLIC_SIZE, "TPMT_PUBLIC")
    fast = _fast_ecc_signing_public(raw)
    if fast is not None:
        return fast
    r = _Reader(raw, "TPMT_PUBLIC")
    typ = r.u16()
    name_alg = r.u16()
    if name_alg not in HASH_ALGS:
        raise MalformedTpmStructure(f"TPMT_PUBLIC: unsupported nameAlg {name_alg:#06x}")
    attrs = r.u32()
    policy = r.tpm2b(MAX_DIGEST, "authPolicy")
    sym = _sym_def_object(r)
    scheme = r.u16()
    scheme_hash = 0
    if typ == ALG_ECC:
        if scheme != ALG_NULL:
            scheme_hash = r.u16()
            if scheme == ALG_ECDAA:
                r.u16()  # count
        curve = r.u16()
        kdf = r.u16()
        if kdf != ALG_NULL:
            r.u16()
        x = r.tpm2b(MAX_ECC_PARAM, "unique.x")
        y = r.tpm2b(MAX_ECC_PARAM, "unique.y")
        r.end()
        return Public(typ, name_alg, attrs, policy, sym, scheme, scheme_hash, curve, 0, x, y,
                      raw)
    if typ == ALG_RSA:
        if scheme != ALG_NULL:
            scheme_hash = r.u16()
        bits = r.u16()
        exponent = r.u32()
        n = r.tpm2b(MAX_RSA_KEY_BYTES, "unique.rsa")
        r.end()
        return Public(typ, name_alg, attrs, policy, sym, scheme, scheme_hash, bits, exponent,
                      n, b"", raw)
    raise MalformedTpmStructure(f"TPMT_PUBLIC: unsupported key type {typ:#06x}")


__all__ = [
    "TPM_GENERATED_VALUE",
    "TPM_ST_ATTEST_QUOTE",
    "Attest",
    "ClockInfo",
    "PcrSelection",
    "Public",
    "Signature",
    "object_name",
    "parse_attest",
    "parse_public",
    "parse_signature",
]
