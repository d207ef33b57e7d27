"""TCG 1.2 SHA-1 event logs (TCG PC Client PFP section 10.2.1, TCG_PCClientPCREvent) built
from the documented structure, with the events real PCs write, and software quotes over the
SHA-1 bank."""

from __future__ import annotations

import hashlib
import struct

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.model import KeyAnchor
from devattest.schemes.tpm.structures import object_name
from tests.unit.tpm._build import Built, attest, ecc_public, ecdsa_signature, pcr_select

EV_POST_CODE = 0x00000001
EV_NO_ACTION = 0x00000003
EV_SEPARATOR = 0x00000004
EV_ACTION = 0x00000005
EV_EVENT_TAG = 0x00000006
EV_S_CRTM_VERSION = 0x00000008
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
EV_EFI_GPT_EVENT = 0x80000006
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008

Event = tuple[int, int, bytes, bytes]  # pcr, type, SHA-1 digest extended, event data


def tcg_pcr_event(pcr: int, etype: int, digest: bytes, data: bytes) -> bytes:
    """TCG_PCR_EVENT: pcrIndex u32, eventType u32, digest[20], eventSize u32, event (LE)."""
    assert len(digest) == 20
    return struct.pack("<II", pcr, etype) + digest + struct.pack("<I", len(data)) + data


def sha1(b: bytes) -> bytes:
    return hashlib.sha1(b).digest()


def _measured(pcr: int, etype: int, data: bytes, image: bytes | None = None) -> Event:
    # Code events extend the image digest, data events the digest of their data (PFP 10.4).
    return pcr, etype, sha1(image if image is not None else data), data


def real_pc_boot(*, option_roms: int = 2, exit_boot_services_twice: bool = True
                 ) -> list[Event]:
    """What a BIOS/early-UEFI PC with a TCG 1.2-format log records: the CRTM version, POST
    code, the firmware volume, option ROMs (EV_EVENT_TAG, PCR 2), separators on PCRs 0-7,
    Secure Boot state, the GPT, the boot loader, and ExitBootServices measured twice (a
    firmware bug seen in the field; both extends are in the log and in the PCR)."""
    ev: list[Event] = [
        _measured(0, EV_S_CRTM_VERSION, "1.02.0017".encode("utf-16-le") + b"\0\0"),
        _measured(0, EV_POST_CODE, b"POST CODE", image=b"post-code-image" * 64),
        _measured(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack("<QQ", 0xFFE00000, 0x200000),
                  image=b"firmware volume" * 512),
    ]
    for i in range(option_roms):
        tagged = struct.pack("<II", 0x1000 + i, 16) + hashlib.md5(
            bytes([i])).digest()
        ev.append(_measured(2, EV_EVENT_TAG, tagged, image=b"option rom %d" % i * 300))
    ev.append(_measured(2, EV_EFI_BOOT_SERVICES_DRIVER, b"\0" * 32, image=b"nic driver" * 99))
    ev += [_measured(pcr, EV_SEPARATOR, b"\0\0\0\0") for pcr in range(8)]
    ev.append(_measured(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
                        b"\x61\xdf\xe4\x8b\xca\x93\xd2\x11\xaa\x0d\x00\xe0\x98\x03\x2b\x8c"
                        + struct.pack("<QQ", 10, 1) + "SecureBoot".encode("utf-16-le")
                        + b"\x01"))
    ev.append(_measured(5, EV_EFI_GPT_EVENT, b"EFI PART" + b"\0" * 84))
    ev.append(_measured(4, EV_EFI_BOOT_SERVICES_APPLICATION, b"\0" * 40,
                        image=b"shimx64.efi" * 1000))
    ev.append(_measured(4, EV_EFI_BOOT_SERVICES_APPLICATION, b"\0" * 40,
                        image=b"grubx64.efi" * 1000))
    ebs = _measured(5, EV_EFI_ACTION, b"Exit Boot Services Invocation")
    ev.append(ebs)
    if exit_boot_services_twice:
        ev.append(ebs)
    ev.append(_measured(5, EV_EFI_ACTION, b"Exit Boot Services Returned with Success"))
    return ev


def tcg12_spec_id_header() -> bytes:
    # TCG 1.2 EFI logs open with an EV_NO_ACTION "Spec ID Event02"-style header (not
    # crypto-agile): informative, never extended.
    return tcg_pcr_event(0, EV_NO_ACTION, b"\0" * 20,
                         b"Spec ID Event02\0" + struct.pack("<IBBBB", 0, 2, 1, 2, 0))


def encode(events: list[Event], *, header: bytes = b"") -> bytes:
    return header + b"".join(tcg_pcr_event(*e) for e in events)


def replay_sha1(events: list[Event], pcrs: range) -> dict[int, bytes]:
    vals = {i: b"\0" * 20 for i in pcrs}
    for pcr, _etype, digest, _data in events:
        if pcr in vals:
            vals[pcr] = sha1(vals[pcr] + digest)
    return vals


def build_sha1_quote(events: list[Event], *, nonce: bytes = b"n" * 32,
                     quoted: range = range(8), header: bytes = b"", bank: int = 0x0004,
                     key: ec.EllipticCurvePrivateKey | None = None) -> Built:
    """TPM quote Evidence over the SHA-1 bank (``bank``), with the SHA-1 log attached."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    vals = replay_sha1(events, quoted)
    digest = hashlib.sha256(b"".join(vals[i] for i in quoted)).digest()
    at = attest(nonce=nonce, select=pcr_select(quoted, alg=bank), pcr_digest=digest)
    pub = ecc_public(key.public_key())
    ev = cbor2.dumps({1: at, 2: ecdsa_signature(key, at), 3: {bank: vals},
                      4: encode(events, header=header), 5: pub}, canonical=True)
    anchor = KeyAnchor(public_key=key.public_key(), instance_id=object_name(0x000B, pub),
                       hardware_backed=True)
    return Built(ev, anchor, key, pub, nonce)
