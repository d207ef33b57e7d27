"""The EAT scheme's steps: constrained-device profile rules, iat/nbf/exp, findings."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.cose import PrivateKeySigner, create_sign1
from devattest.errors import (
    AlgorithmError,
    InvalidClaim,
    MissingClaim,
    SignatureInvalid,
    TokenExpired,
)
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, KeyAnchor, VerifyOptions, ar4si
from devattest.schemes.eat import PROFILE_CONSTRAINED, PROFILE_GENERIC, EatScheme, create_eat

KEY = ec.generate_private_key(ec.SECP256R1())
NONCE = b"\x07" * 16
UEID = "01" + "aa" * 16
NOW = 1_800_000_000
SCHEME = EatScheme()


def run(token: bytes, key: Any = None, *, now: int = NOW,
        options: VerifyOptions = DEFAULT_OPTIONS) -> Any:
    decoded = SCHEME.decode(token, limits=DEFAULT_LIMITS, options=options)
    anchor = KeyAnchor(key if key is not None else KEY.public_key())
    SCHEME.verify_integrity(decoded, anchor, options=options)
    return SCHEME.extract_claims(decoded, now=now, options=options)


def constrained(**extra: Any) -> dict[str, Any]:
    return {"eat_nonce": NONCE, "ueid": UEID, "eat_profile": PROFILE_CONSTRAINED, **extra}


def test_generic_eat_normalises_claims() -> None:
    claims = run(create_eat({"eat_nonce": NONCE, "ueid": UEID, "hwmodel": "0102",
                             "bootcount": 4, "iat": NOW - 5, 9999: "kept"}, KEY))
    assert claims.profile == PROFILE_GENERIC
    assert claims.nonce == NONCE
    assert claims.instance_id == bytes.fromhex(UEID)
    assert claims.class_id == b"\x01\x02"
    assert claims.boot_count == 4
    assert claims.raw[9999] == "kept" and claims.raw["hwmodel"] == b"\x01\x02"


def test_untagged_cwt_is_read_as_sign1() -> None:
    assert run(create_eat({"eat_nonce": NONCE}, KEY, tagged=False)).nonce == NONCE


def test_cwt_tag_61_is_accepted() -> None:
    assert run(create_eat({"eat_nonce": NONCE}, KEY, cwt_tag=True)).nonce == NONCE


def test_mac0_eat_verifies_with_a_symmetric_key() -> None:
    assert run(create_eat({"eat_nonce": NONCE}, b"k" * 32), b"k" * 32).nonce == NONCE


def test_missing_nonce_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"missing mandatory claim eat_nonce \(10\)"):
        run(create_eat({"ueid": UEID}, KEY))


def test_claim_errors_wait_for_the_signature() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureInvalid):
        run(create_eat({"eat_nonce": b"\x01"}, other))


def test_expired_token_is_rejected() -> None:
    with pytest.raises(TokenExpired, match="the token expired at"):
        run(create_eat({"eat_nonce": NONCE, "exp": NOW - 61}, KEY))


def test_expiry_within_clock_skew_is_accepted() -> None:
    run(create_eat({"eat_nonce": NONCE, "exp": NOW - 59}, KEY))


def test_token_issued_in_the_future_is_rejected() -> None:
    with pytest.raises(TokenExpired, match="issued in the future"):
        run(create_eat({"eat_nonce": NONCE, "iat": NOW + 61}, KEY))


def test_token_not_yet_valid_is_rejected() -> None:
    with pytest.raises(TokenExpired, match="not valid before"):
        run(create_eat({"eat_nonce": NONCE, "nbf": NOW + 600}, KEY))


def test_clock_skew_option_is_honoured() -> None:
    token = create_eat({"eat_nonce": NONCE, "iat": NOW + 300}, KEY)
    run(token, options=VerifyOptions(clock_skew=600))


def test_debug_enabled_is_a_configuration_finding() -> None:
    claims = run(create_eat({"eat_nonce": NONCE, "dbgstat": 0}, KEY))
    assert claims.debug_enabled is True
    assert [(f.claim, f.value, f.code) for f in claims.findings] == [
        ("configuration", ar4si.UNSUPPORTABLE_CONFIG, "eat_debug_enabled")]


def test_debug_disabled_has_no_finding() -> None:
    claims = run(create_eat({"eat_nonce": NONCE, "dbgstat": 3}, KEY))
    assert claims.debug_enabled is False and claims.findings == ()


def test_failed_measurement_result_is_an_executables_finding() -> None:
    claims = run(create_eat({"eat_nonce": NONCE, "measres": [["boot", [["os", 2]]]]}, KEY))
    assert [(f.claim, f.value) for f in claims.findings] == [
        ("executables", ar4si.CONTRAINDICATED_RUNTIME)]


def test_non_oem_boot_is_an_executables_finding() -> None:
    claims = run(create_eat({"eat_nonce": NONCE, "oemboot": False}, KEY))
    assert [f.code for f in claims.findings] == ["eat_oemboot_false"]


# -- urn:ietf:rfc:rfc9711 -------------------------------------------------------------------

def test_constrained_profile_token_verifies() -> None:
    assert run(create_eat(constrained(), KEY)).profile == PROFILE_CONSTRAINED


def test_constrained_profile_rejects_mac0() -> None:
    with pytest.raises(AlgorithmError, match="allows only COSE_Sign1"):
        run(create_eat(constrained(), b"k" * 32), b"k" * 32)


def test_constrained_profile_rejects_eddsa() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(AlgorithmError, match="requires ES256, ES384 or ES512"):
        run(create_eat(constrained(), ed), ed.public_key())


def test_constrained_profile_needs_kid_or_ueid() -> None:
    with pytest.raises(MissingClaim, match="requires the COSE kid or the ueid claim"):
        run(create_eat({"eat_nonce": NONCE, "eat_profile": PROFILE_CONSTRAINED}, KEY))
    run(create_eat({"eat_nonce": NONCE, "eat_profile": PROFILE_CONSTRAINED}, KEY, kid=b"k1"))


def test_constrained_profile_rejects_non_preferred_serialization() -> None:
    # bootcount 5 encoded in two bytes (0x18 0x05) instead of one.
    payload = cbor2.dumps({10: NONCE, 256: bytes.fromhex(UEID), 265: PROFILE_CONSTRAINED})
    payload = payload[:1].replace(b"\xa3", b"\xa4") + payload[1:] + b"\x19\x01\x0b\x18\x05"
    token = create_sign1(payload, PrivateKeySigner(KEY))
    with pytest.raises(InvalidClaim, match="requires preferred serialization: claims set"):
        run(token)


def test_constrained_profile_rejects_indefinite_lengths() -> None:
    body = cbor2.dumps({10: NONCE, 256: bytes.fromhex(UEID), 265: PROFILE_CONSTRAINED})
    payload = b"\xbf" + body[1:] + b"\xff"  # the same map, indefinite length
    token = create_sign1(payload, PrivateKeySigner(KEY))
    with pytest.raises(InvalidClaim, match="indefinite length"):
        run(token)


def test_generic_eat_accepts_non_preferred_serialization() -> None:
    payload = b"\xbf" + cbor2.dumps({10: NONCE})[1:] + b"\xff"
    assert run(create_sign1(payload, PrivateKeySigner(KEY))).nonce == NONCE
