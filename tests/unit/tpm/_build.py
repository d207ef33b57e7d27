"""Software-built TPM quote Evidence for pure unit tests (no TPM): the same wire format a TPM
produces, signed with a software P-256 key standing in for the AK."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from devattest.model import KeyAnchor
from devattest.schemes.tpm.eventlog import compact_event_data
from devattest.schemes.tpm.structures import object_name

AK_ATTRS = (1 << 16) | (1 << 18) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6)


def tpm2b(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


def ecc_public(key: ec.EllipticCurvePublicKey, attrs: int = AK_ATTRS) -> bytes:
    n = key.public_numbers()
    return (struct.pack(">HHI", 0x0023, 0x000B, attrs) + tpm2b(b"")
            + struct.pack(">HHHHH", 0x0010, 0x0018, 0x000B, 0x0003, 0x0010)
            + tpm2b(n.x.to_bytes(32, "big")) + tpm2b(n.y.to_bytes(32, "big")))


def pcr_select(indices: range | list[int], alg: int = 0x000B) -> bytes:
    bitmap = bytearray(3)
    for i in indices:
        bitmap[i // 8] |= 1 << (i % 8)
    return struct.pack(">IHB", 1, alg, 3) + bytes(bitmap)


def attest(*, nonce: bytes, select: bytes, pcr_digest: bytes, magic: int = 0xFF544347,
           st: int = 0x8018, clock: int = 1000, reset: int = 3, restart: int = 0,
           safe: int = 1) -> bytes:
    return (struct.pack(">IH", magic, st) + tpm2b(b"\x00\x0b" + b"\x11" * 32) + tpm2b(nonce)
            + struct.pack(">QIIB", clock, reset, restart, safe) + struct.pack(">Q", 7)
            + select + tpm2b(pcr_digest))


def ecdsa_signature(key: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return struct.pack(">HH", 0x0018, 0x000B) + tpm2b(r.to_bytes(32, "big")) + tpm2b(
        s.to_bytes(32, "big"))


BOOT = [[0, "devattest.class-id", None, b"unit-class"],
        [0, "bootloader", "1.0.0", hashlib.sha256(b"bl").digest()],
        [4, "kernel", "6.1.0", hashlib.sha256(b"k").digest()]]


def replay_compact(log: list[list[object]], pcrs: range) -> dict[int, bytes]:
    vals = {i: b"\0" * 32 for i in pcrs}
    for pcr, name, version, meas in log:
        d = hashlib.sha256(compact_event_data(name, version, meas)).digest()  # type: ignore[arg-type]
        vals[pcr] = hashlib.sha256(vals[pcr] + d).digest()  # type: ignore[index]
    return vals


@dataclass
class Built:
    evidence: bytes
    anchor: KeyAnchor
    key: ec.EllipticCurvePrivateKey
    ak_public: bytes
    nonce: bytes


def build(*, nonce: bytes = b"n" * 32, log: list[list[object]] | None = None,
          quoted: range = range(8), key: ec.EllipticCurvePrivateKey | None = None,
          attrs: int = AK_ATTRS, **attest_kw: int) -> Built:
    key = key or ec.generate_private_key(ec.SECP256R1())
    log = BOOT if log is None else log
    vals = replay_compact(log, quoted)
    digest = hashlib.sha256(b"".join(vals[i] for i in quoted)).digest()
    at = attest(nonce=nonce, select=pcr_select(quoted), pcr_digest=digest, **attest_kw)
    pub = ecc_public(key.public_key(), attrs)
    ev = cbor2.dumps({1: at, 2: ecdsa_signature(key, at), 3: {0x000B: vals}, 4: log, 5: pub},
                     canonical=True)
    anchor = KeyAnchor(public_key=key.public_key(), instance_id=object_name(0x000B, pub),
                       hardware_backed=True)
    return Built(ev, anchor, key, pub, nonce)
