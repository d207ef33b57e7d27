"""Rebuild the seed corpus (``fuzz/corpus/<target>/``) from the public vectors and the
project's own builders, and the regression inputs (``fuzz/regressions/<target>/``: inputs
that once broke a target's contract): ``python -m fuzz.seeds``. Files are named by their
SHA-1 (as libFuzzer names corpus files), kept small, and committed. Signed seeds differ per
run (ECDSA is randomised), so only targets without seeds are filled unless ``--force``."""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2

from fuzz.targets import EC_KEY, HMAC_KEY, NONCE, NOW, TARGETS

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"
REGRESSIONS = ROOT / "regressions"
VECTORS = ROOT.parent.parent / "shared" / "vectors"
MAX_SEED = 64 * 1024


def _files(pattern: str) -> Iterator[bytes]:
    for p in sorted(VECTORS.glob(pattern)):
        if p.is_file() and p.stat().st_size <= MAX_SEED:
            yield p.read_bytes()


def _diag(pattern: str) -> Iterator[bytes]:
    import cbor_diag

    for text in _files(pattern):
        try:
            yield cbor_diag.diag2cbor(text.decode())
        except Exception:  # a vector the converter cannot read is skipped
            continue


def _psa_claims() -> dict[str, Any]:
    return {
        "profile_id": "tag:psacertified.org,2023:psa#tfm",
        "client_id": 1, "security_lifecycle": "sl_secured",
        "implementation_id": bytes(32), "boot_seed": bytes(32), "challenge": NONCE,
        "instance_id": b"\x01" + bytes(32), "certification_reference": "1234567890123-12345",
        "sw_components": [{"sw_component_type": "BL", "measurement_value": bytes(32),
                           "signer_id": bytes(32), "version": "1.2.3"}],
    }


def psa() -> Iterator[bytes]:
    from devattest.schemes.psa import create_psa_token, encode_psa_claims

    yield from _files("draft-psa-token/*.cbor")
    yield from _files("tf-m-tools-iat-verifier/data/iat*.cbor")
    yield from _files("tf-m-tools-iat-verifier/data/*claim*.cbor")
    yield from _files("veraison-services-psa-iot/*.cbor")
    claims = _psa_claims()
    yield create_psa_token(claims, EC_KEY)
    yield create_psa_token(claims, HMAC_KEY)
    yield create_psa_token(claims, EC_KEY, kid=b"kid-1")
    yield encode_psa_claims(claims)


def eat() -> Iterator[bytes]:
    from devattest.schemes.eat import create_eat, encode_eat_claims

    yield from _diag("ietf-rats-eat/Example-Tokens/*.diag")
    full = {"eat_nonce": NONCE[:16], "ueid": b"\x01" + bytes(16), "hwmodel": "0102",
            "iat": NOW - 10, "exp": NOW + 60, "dbgstat": 1, "oemboot": True,
            "eat_profile": "urn:ietf:rfc:rfc9711"}
    yield create_eat(full, EC_KEY)
    yield create_eat({"eat_nonce": [NONCE[:16], NONCE[16:]]}, EC_KEY, cwt_tag=True)
    yield create_eat({"eat_nonce": NONCE[:16]}, HMAC_KEY, kid=b"k")
    yield encode_eat_claims(full)


def cose() -> Iterator[bytes]:
    from devattest.cose import PrivateKeySigner, create_mac0, create_sign1

    yield from _files("draft-psa-token/*.cbor")
    payload = cbor2.dumps({10: NONCE, 1: "issuer"})
    yield create_sign1(payload, PrivateKeySigner(EC_KEY), kid=b"kid", x5chain=(b"c1", b"c2"))
    yield create_sign1(payload, PrivateKeySigner(EC_KEY), tagged=False)
    yield create_mac0(payload, HMAC_KEY, kid=b"kid")
    yield create_sign1(payload, PrivateKeySigner(EC_KEY), cwt_tag=True)


def cbor() -> Iterator[bytes]:
    yield from cose()
    yield cbor2.dumps({1: [1, 2.5, None, True, {"a": b"b"}], -3: cbor2.CBORTag(1, 0)})
    yield cbor2.dumps([2**64 - 1, -(2**64), "x" * 30, b"\0" * 30])


def _tpm_built() -> Any:
    import sys

    sys.path.insert(0, str(ROOT.parent))
    from tests.unit.tpm._build import BOOT, build, ecc_public, ecdsa_signature

    b = build(nonce=b"n" * 32, key=EC_KEY)
    return b, BOOT, ecc_public, ecdsa_signature


def _tcg_log() -> bytes:
    banks = [0x000B]
    spec = (b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
            + b"".join(struct.pack("<HH", a, 32) for a in banks) + b"\0")
    out = [struct.pack("<II", 0, 3) + b"\0" * 20 + struct.pack("<I", len(spec)) + spec]
    for pcr, etype, data in [(0, 0x80000008, b"firmware"), (4, 0x80000003, b"bootloader"),
                             (7, 0x800000E0, b"secureboot")]:
        out.append(struct.pack("<III", pcr, etype, 1))
        out.append(struct.pack("<H", 0x000B) + hashlib.sha256(data).digest())
        out.append(struct.pack("<I", len(data)) + data)
    return b"".join(out)


def tpm() -> Iterator[bytes]:
    b, _, _, _ = _tpm_built()
    yield b.evidence
    m = cbor2.loads(b.evidence)
    m[4] = _tcg_log()
    yield cbor2.dumps(m, canonical=True)


def tpm_structures() -> Iterator[bytes]:
    b, _, ecc_public, ecdsa_signature = _tpm_built()
    m = cbor2.loads(b.evidence)
    yield m[1]
    yield m[2]
    yield m[5]
    yield ecc_public(EC_KEY.public_key())
    yield ecdsa_signature(EC_KEY, b"x")


def tpm_eventlog() -> Iterator[bytes]:
    _, boot, _, _ = _tpm_built()
    yield _tcg_log()
    yield cbor2.dumps(boot)


def corim() -> Iterator[bytes]:
    yield from _files("veraison-services-psa-iot/corim/*.cbor")
    yield from _diag("draft-ietf-rats-corim-11/examples/*.diag")


def _result() -> Any:
    from devattest.model import KeyAnchor, TrustAnchors
    from devattest.policy import DefaultPolicy
    from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token
    from devattest.verifier import verify

    token = create_psa_token(_psa_claims(), EC_KEY)
    return verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=NONCE,
                  trust_anchors=TrustAnchors.of(keys=[KeyAnchor(EC_KEY.public_key())]),
                  reference_values=None, policy=DefaultPolicy(), now=NOW)


def ear_jwt() -> Iterator[bytes]:
    from devattest.ear import sign_ear_jwt

    yield from _files("veraison-ear/*.jwt")
    yield sign_ear_jwt(_result(), EC_KEY, kid="k1").encode()


def ear_cwt() -> Iterator[bytes]:
    from devattest.cose import PrivateKeySigner
    from devattest.ear import sign_ear_cwt

    yield from _diag("draft-ietf-rats-ear/*/ear-cbor-*.diag")
    yield sign_ear_cwt(_result(), PrivateKeySigner(EC_KEY), kid=b"k1")


def mqtt() -> Iterator[bytes]:
    from devattest.transport.mqtt import challenge_message, event_message, evidence_message

    yield evidence_message("c" * 32, b"\xd2\x84\x43\xa1\x01\x26\xa0\x41\x00\x40",
                           "application/psa-attestation-token")
    yield event_message("firmware_update", event_id="e1",
                        details={"firmware_version": "1.1", "slot": 2})
    yield event_message("boot", event_id="e2")
    yield challenge_message("c" * 32, NONCE, datetime.fromtimestamp(NOW, UTC))
    yield json.dumps({"kind": "ownership_transfer", "details": {"owner": "acme"}}).encode()


def provisioning() -> Iterator[bytes]:
    refvals = {"reference_values": [{"class_id": "00" * 32, "allowed_lifecycles": ["0x3000"],
                                     "components": [{"measurement_type": "BL",
                                                     "measurement_values": ["aa" * 32],
                                                     "min_version": "1.2",
                                                     "signer_ids": ["bb" * 32]}]}]}
    yield json.dumps(refvals).encode()
    yield from _files("veraison-services-psa-iot/*endorsements.json")
    yield (b"reference_values:\n  - class_id: model-a\n    components:\n"
           b"      - measurement_type: BL\n")


def hostile() -> Iterator[tuple[str, bytes]]:
    """Inputs that broke a parser's contract (issue 13's hostile-input review and this
    harness's own findings), kept in the corpus so that every run replays them."""
    big = 1 << 20000  # a bignum past Python's 4,300-digit int-to-string limit
    claims = dict(_psa_claims(), client_id=big)
    from devattest.cose import PrivateKeySigner, create_sign1
    from devattest.schemes.eat import create_eat
    from devattest.schemes.psa import create_psa_token, psa_claims_map

    # issue 13 defect 2: bignums and a simple value as a map key reach "verifier malfunction"
    yield "psa", create_psa_token(claims, EC_KEY)
    bad_alg = cbor2.dumps({1: big})
    yield "psa", cbor2.dumps(cbor2.CBORTag(18, [bad_alg, {}, cbor2.dumps(
        psa_claims_map(_psa_claims())), bytes(64)]))
    yield "cose", cbor2.dumps(cbor2.CBORTag(18, [bad_alg, {}, b"payload", bytes(64)]))
    yield "eat", create_eat({"eat_nonce": NONCE[:16], 273: [[big, b"x"]]}, EC_KEY)
    yield "eat", create_sign1(cbor2.dumps({10: NONCE[:16], cbor2.CBORSimpleValue(6): 1}),
                              PrivateKeySigner(EC_KEY))
    # issue 13 defect 3: an affirmed EAT whose unknown claim is a bignum cannot be signed;
    # verify_ear_cwt raises a bare ValueError on a bignum alg
    yield "eat", create_eat({"eat_nonce": NONCE[:16], -70000: big}, EC_KEY)
    yield "ear_cwt", cbor2.dumps(cbor2.CBORTag(18, [bad_alg, {}, b"\xa0", bytes(64)]))
    # issue 13 defect 1: deeply nested JSON on .../events and .../evidence
    yield "mqtt", b'{"kind":"boot","details":' + b"[" * 3000 + b"]" * 3000 + b"}"
    # issue 13 defect 4: provisioning documents nested deeply (JSON, YAML)
    yield "provisioning", b"[" * 1000 + b"]" * 1000
    yield "provisioning", b"- " * 2000 + b"x\n"
    # found by this harness: a YAML mapping used as a mapping key (TypeError: unhashable)
    yield "provisioning", b"{{}}"
    yield "provisioning", b"? [a]\n: 1\n"


GENERATORS = {name: globals()[name] for name in TARGETS}


def write(name: str, seeds: Iterator[bytes], *, force: bool) -> int:
    out = CORPUS / name
    if out.is_dir() and any(out.iterdir()) and not force:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for seed in seeds:
        if 0 < len(seed) <= MAX_SEED:
            (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m fuzz.seeds", description=__doc__)
    ap.add_argument("--force", action="store_true", help="rewrite targets that have seeds")
    ap.add_argument("targets", nargs="*", default=sorted(GENERATORS))
    args = ap.parse_args()
    for name in args.targets:
        print(f"{name}: {write(name, GENERATORS[name](), force=args.force)} seeds")
    for name, data in hostile():
        if name in args.targets:
            (REGRESSIONS / name).mkdir(parents=True, exist_ok=True)
            (REGRESSIONS / name / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    main()
