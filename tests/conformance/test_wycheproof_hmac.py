"""The COSE_Mac0 tag check, pinned: Wycheproof HMAC-SHA256 vectors through the exact function
``verify_mac0`` calls, and the RFC 9783 Mac0 token with its tag emptied or truncated.

COSE HS256 (RFC 9053 section 3.1, alg 5) is HMAC-SHA256 with the full 256-bit tag; the
truncated variant is another algorithm (HS256/64, alg 4), which devattest does not accept. So
a Wycheproof case with a 128-bit tag is a truncated tag here: whatever Wycheproof says about
it for truncated HMAC, HS256 must reject it. The 256-bit cases are decided by Wycheproof.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import cbor2
import pytest

from devattest.cose import HS256
from devattest.cose._algorithms import _verify_mac
from devattest.errors import SignatureInvalid
from devattest.model import KeyAnchor, Status, TrustAnchors
from devattest.policy import DefaultPolicy
from devattest.schemes.psa import MEDIA_TYPE_PSA
from devattest.verifier import verify
from tests._vectors import VECTORS

HMAC_FILE = VECTORS / "wycheproof" / "testvectors_v1" / "hmac_sha256_test.json"
DRAFT = VECTORS / "draft-psa-token"
NOW = 1_800_000_000
NONCE = b"\x01" * 32

pytestmark = pytest.mark.skipif(not HMAC_FILE.is_file(), reason=f"no test vectors at {VECTORS}")


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = json.loads(HMAC_FILE.read_text())["testGroups"]
    return groups


def _accepted(key: bytes, msg: bytes, tag: bytes) -> bool:
    try:
        _verify_mac(HS256, key, msg, tag)
    except SignatureInvalid:
        return False
    return True


def test_wycheproof_hmac_sha256_full_tags_zero_mismatches() -> None:
    decided = 0
    mismatches = []
    for group in _groups():
        if group["tagSize"] != 256:
            continue
        for case in group["tests"]:
            got = _accepted(bytes.fromhex(case["key"]), bytes.fromhex(case["msg"]),
                            bytes.fromhex(case["tag"]))
            if got != (case["result"] == "valid"):
                mismatches.append((case["tcId"], case["result"], case["comment"]))
            decided += 1
    assert decided > 80
    assert mismatches == []


def test_wycheproof_truncated_hmac_tags_are_never_accepted_for_hs256() -> None:
    """Every 128-bit tag, including the ones Wycheproof calls valid truncated HMACs."""
    truncated_valid = 0
    for group in _groups():
        if group["tagSize"] != 128:
            continue
        for case in group["tests"]:
            key, msg = bytes.fromhex(case["key"]), bytes.fromhex(case["msg"])
            tag = bytes.fromhex(case["tag"])
            assert not _accepted(key, msg, tag), case["tcId"]
            if case["result"] == "valid":
                assert hmac.new(key, msg, hashlib.sha256).digest()[:16] == tag
                truncated_valid += 1
    assert truncated_valid > 20


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_truncated_or_empty_tag_of_a_genuine_hmac_is_rejected(length: int) -> None:
    key, msg = b"k" * 32, b"ToBeMaced"
    full = hmac.new(key, msg, hashlib.sha256).digest()
    assert _accepted(key, msg, full)
    assert not _accepted(key, msg, full[:length])


def test_tag_with_a_trailing_byte_is_rejected() -> None:
    key, msg = b"k" * 32, b"ToBeMaced"
    assert not _accepted(key, msg, hmac.new(key, msg, hashlib.sha256).digest() + b"\0")


def _psa_mac0_with_tag(tag: bytes) -> tuple[bytes, bytes]:
    key = (DRAFT / "tfm-hs-iak.bin").read_bytes()
    msg = cbor2.loads((DRAFT / "psa-mac0.cbor").read_bytes())
    protected, unprotected, payload, genuine = msg.value
    assert len(genuine) == 32
    token = cbor2.dumps(cbor2.CBORTag(msg.tag, [protected, unprotected, payload, tag]))
    return token, key


def _appraise(token: bytes, key: bytes) -> Any:
    return verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=NONCE,
                  trust_anchors=TrustAnchors.of([KeyAnchor(key)]), reference_values=None,
                  policy=DefaultPolicy(), now=NOW)


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_psa_mac0_with_an_empty_or_truncated_tag_is_not_affirmed(length: int) -> None:
    """A prefix compare of the tag would affirm a Mac0 whose tag is empty (zero bytes match
    every MAC) or any prefix of the genuine tag."""
    genuine = cbor2.loads((DRAFT / "psa-mac0.cbor").read_bytes()).value[3]
    token, key = _psa_mac0_with_tag(genuine)
    ok = _appraise(token, key)
    assert "signature_invalid" not in [c for c, _ in ok.reasons]
    token, _ = _psa_mac0_with_tag(genuine[:length])
    result = _appraise(token, key)
    assert result.status is Status.CONTRAINDICATED
    assert [c for c, _ in result.reasons] == ["signature_invalid"]


def test_mac_keyed_with_the_empty_key_is_refused() -> None:
    """Anyone can compute an HMAC under the empty key: a Trust Anchor that is empty bytes
    must not make such a tag verify."""
    from devattest.errors import AlgorithmError

    msg = b"ToBeMaced"
    tag = hmac.new(b"", msg, hashlib.sha256).digest()
    with pytest.raises(AlgorithmError, match="empty MAC key"):
        _verify_mac(HS256, b"", msg, tag)
