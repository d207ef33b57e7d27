"""PSA claim rules (RFC 9783 section 4; PSA_IOT_PROFILE_1; http://arm.com/psa/2.0.0): one test
per rule, each matching the rule's own message."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.errors import InvalidClaim, MissingClaim, UnknownProfile
from devattest.model import ar4si
from devattest.schemes.psa import (
    IOT_1,
    PROFILE_IOT_1,
    PROFILE_PSA_2_0_0,
    PROFILE_RFC9783,
    PSA_2_0_0,
    RFC9783,
    as_bytes,
    debug_enabled,
    detect_profile,
    lifecycle_finding,
    parse_psa_claims,
    psa_claims_map,
    psa_instance_id,
)

H32 = bytes(range(32))
IID = b"\x01" + bytes(range(32))


def yaml_claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "instance_id": IID,
        "implementation_id": b"\xaa" * 32,
        "challenge": b"\x01" * 32,
        "client_id": 2147483647,
        "security_lifecycle": "sl_secured",
        "profile_id": PROFILE_RFC9783,
        "boot_seed": b"\x00" * 8,
        "sw_components": [
            {"sw_component_type": "PRoT", "measurement_value": b"\x03" * 32,
             "signer_id": b"\x04" * 32, "sw_component_version": "1.2.3",
             "measurement_description": "sha-256"},
        ],
    }
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def rfc(**over: Any) -> dict[int, Any]:
    return psa_claims_map(yaml_claims(**over))


def parse(claims: dict[int, Any]) -> Any:
    profile, notes = detect_profile(claims)
    return parse_psa_claims(claims, profile, notes)


def legacy(**over: Any) -> dict[int, Any]:
    over.setdefault("boot_seed", b"\x07" * 32)
    over.setdefault("profile_id", PROFILE_IOT_1)
    return psa_claims_map(yaml_claims(**over), profile=PROFILE_IOT_1)


# -- the good cases -----------------------------------------------------------------------

def test_rfc9783_token_parses_into_normalised_claims() -> None:
    parsed = parse(rfc())
    assert parsed.profile is RFC9783
    assert parsed.nonce == b"\x01" * 32
    assert parsed.instance_id == IID
    assert parsed.implementation_id == b"\xaa" * 32
    assert parsed.security_lifecycle == 0x3000
    (comp,) = parsed.software_components
    assert comp.measurement_type == "PRoT"
    assert comp.measurement_value == b"\x03" * 32
    assert comp.signer_id == b"\x04" * 32
    assert comp.version == "1.2.3"
    assert comp.measurement_desc == "sha-256"
    assert parsed.raw["boot_seed"] == b"\x00" * 8
    assert parsed.raw["client_id"] == 2147483647
    assert parsed.raw["security_lifecycle_state"] == "secured"
    assert parsed.annotations == ()


def test_optional_claims_may_be_absent() -> None:
    parsed = parse(rfc(boot_seed=None))
    assert "boot_seed" not in parsed.raw


def test_unknown_claims_are_kept_by_integer_key() -> None:
    claims = rfc()
    claims[-70000] = "vendor"
    claims[2401] = b"\x01"
    parsed = parse(claims)
    assert parsed.raw[-70000] == "vendor"
    assert parsed.raw[2401] == b"\x01"


def _unknown_by_rule(claims: dict[int, Any], names: dict[int, str]) -> dict[Any, Any]:
    return {k: v for k, v in claims.items() if k not in names}


@pytest.mark.parametrize("extra", [{}, {-70000: "vendor"}, {268: None, -70000: 1},
                                   {2400: None, 2398: None, 7: b"x"}])
@pytest.mark.parametrize("profile_claim", [True, False])
def test_unknown_claims_are_kept_exactly_beside_null_and_absent_optional_claims(
        extra: dict[int, Any], profile_claim: bool) -> None:
    # The parser skips its unknown-claim scan when the claim count proves there is none:
    # null-valued defined claims (treated as absent) must not hide an unknown one.
    claims = rfc()
    if not profile_claim:
        claims = {k: v for k, v in claims.items() if k != 265}
    claims.update(extra)
    parsed = parse_psa_claims(claims, RFC9783)
    kept = {k: v for k, v in parsed.raw.items() if not isinstance(k, str)}
    assert kept == _unknown_by_rule(claims, RFC9783.names)
    assert ("profile_claim" in parsed.raw) == (265 in claims)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_nonce_sizes_of_psa_hash_type_are_accepted(size: int) -> None:
    assert parse(rfc(challenge=b"\x05" * size)).nonce == b"\x05" * size


# -- profiles ----------------------------------------------------------------------------

def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(UnknownProfile, match=r"unknown PSA profile 'tag:example\.com,2024:x'"):
        detect_profile(rfc(profile_id="tag:example.com,2024:x"))


def test_profile_claim_that_is_not_text_is_an_invalid_profile_id() -> None:
    with pytest.raises(UnknownProfile, match=r"invalid profile ID: the profile claim \(265\)"):
        detect_profile(rfc(profile_id=42))


def test_legacy_profile_1_claim_that_is_not_text_is_an_invalid_profile_id() -> None:
    with pytest.raises(UnknownProfile, match=r"PSA_IOT_PROFILE_1 profile claim \(-75000\)"):
        detect_profile(legacy(profile_id=42))


def test_no_profile_and_no_psa_keys_is_unknown() -> None:
    with pytest.raises(UnknownProfile, match="no PSA profile claim"):
        detect_profile({10: b"\x00" * 32, 1: "issuer"})


def test_profile_1_is_recognised_by_its_keys_without_profile_claim() -> None:
    claims = legacy()
    del claims[-75000]
    profile, notes = detect_profile(claims)
    assert profile is IOT_1
    assert "profile claim absent" in notes[0]


def test_profile_1_with_other_profile_text_is_reported() -> None:
    profile, notes = detect_profile(legacy(profile_id="http://example.com"))
    assert profile is IOT_1
    assert "'http://example.com'" in notes[0]


def test_psa_2_0_0_is_reported_as_legacy_with_boot_seed_2397() -> None:
    claims = psa_claims_map(yaml_claims(profile_id=PROFILE_PSA_2_0_0, boot_seed=b"\x09" * 32))
    assert 2397 in claims and 268 not in claims
    parsed = parse(claims)
    assert parsed.profile is PSA_2_0_0
    assert parsed.raw["boot_seed"] == b"\x09" * 32
    assert "legacy PSA profile 'http://arm.com/psa/2.0.0'" in parsed.annotations[0]


# -- nonce, instance ID, implementation ID -------------------------------------------------

def test_missing_nonce_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"missing mandatory claim nonce \(10\)"):
        parse(rfc(challenge=None))


def test_nonce_of_wrong_size_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"nonce \(10\) must be 32, 48 or 64 bytes, found 31"):
        parse(rfc(challenge=b"\x01" * 31))


def test_nonce_that_is_text_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"nonce \(10\) must be a byte string, found str"):
        parse(rfc(challenge="not-bytes!"))


def test_missing_instance_id_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"missing mandatory claim instance_id \(256\)"):
        parse(rfc(instance_id=None))


def test_instance_id_of_wrong_length_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"instance_id \(256\) must be 33 bytes, found 32"):
        parse(rfc(instance_id=IID[:32]))


def test_instance_id_of_wrong_ueid_type_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"must start with the UEID type 0x01 \(RAND\), "
                                           r"found 0x02"):
        parse(rfc(instance_id=b"\x02" + IID[1:]))


def test_missing_implementation_id_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"implementation_id \(2396\)"):
        parse(rfc(implementation_id=None))


def test_implementation_id_of_wrong_length_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"implementation_id \(2396\) must be 32 bytes, "
                                           r"found 8"):
        parse(rfc(implementation_id=b"\x00" * 8))


# -- client ID and lifecycle ----------------------------------------------------------------

def test_missing_client_id_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"client_id \(2394\)"):
        parse(rfc(client_id=None))


def test_client_id_that_is_not_an_integer_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"client_id \(2394\) must be an integer, found str"):
        parse(rfc(client_id="1"))


def test_client_id_that_is_a_cbor_bool_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"client_id \(2394\) must be an integer, found bool"):
        parse(rfc(client_id=True))


def test_client_id_outside_int32_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match="must be a 32-bit signed integer"):
        parse(rfc(client_id=2**31))


def test_negative_client_id_for_the_nspe_is_accepted() -> None:
    assert parse(rfc(client_id=-1)).client_id == -1


def test_missing_lifecycle_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"security_lifecycle \(2395\)"):
        parse(rfc(security_lifecycle=None))


@pytest.mark.parametrize("value", [0x0100, 0x7000, 0x10000, -1])
def test_lifecycle_outside_the_seven_ranges_is_invalid(value: int) -> None:
    with pytest.raises(InvalidClaim, match="is not a PSA security lifecycle state"):
        parse(rfc(security_lifecycle=value))


@pytest.mark.parametrize("value", [0x3000, 0x30FF, 0x4000, 0x40FF])
def test_secured_and_non_psa_rot_debug_states_can_affirm(value: int) -> None:
    assert lifecycle_finding(value) is None
    assert debug_enabled(value) is False


@pytest.mark.parametrize(("value", "tv", "code"), [
    (0x0000, ar4si.UNSUPPORTABLE_CONFIG, "psa_lifecycle_unknown"),
    (0x1000, ar4si.UNSUPPORTABLE_CONFIG, "psa_lifecycle_assembly_and_test"),
    (0x2001, ar4si.UNSAFE_CONFIG, "psa_lifecycle_psa_rot_provisioning"),
    (0x5000, ar4si.UNSUPPORTABLE_CONFIG, "psa_lifecycle_recoverable_psa_rot_debug"),
    (0x60FF, ar4si.UNSUPPORTABLE_CONFIG, "psa_lifecycle_decommissioned"),
])
def test_other_lifecycle_states_are_configuration_findings(value: int, tv: int,
                                                           code: str) -> None:
    parsed = parse(rfc(security_lifecycle=value))  # a valid value: not a parse failure
    assert parsed.security_lifecycle == value
    finding = lifecycle_finding(value)
    assert finding is not None
    assert (finding.claim, finding.value, finding.code) == ("configuration", tv, code)


def test_recoverable_psa_rot_debug_means_debug_enabled() -> None:
    assert debug_enabled(0x5000) is True


# -- boot seed, certification reference, verification service indicator ----------------------

@pytest.mark.parametrize("size", [7, 33])
def test_boot_seed_outside_8_to_32_bytes_is_invalid(size: int) -> None:
    with pytest.raises(InvalidClaim, match=rf"boot_seed \(268\) must be 8 to 32 bytes, "
                                           rf"found {size}"):
        parse(rfc(boot_seed=b"\x00" * size))


def test_boot_seed_that_is_not_bytes_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"boot_seed \(268\) must be a byte string"):
        parse(rfc(boot_seed=5))


def test_profile_1_boot_seed_is_mandatory() -> None:
    with pytest.raises(MissingClaim, match=r"boot_seed \(-75004\)"):
        parse(psa_claims_map(yaml_claims(boot_seed=None), profile=PROFILE_IOT_1))


def test_profile_1_boot_seed_must_be_32_bytes() -> None:
    with pytest.raises(InvalidClaim, match=r"boot_seed \(-75004\) must be 32 bytes, found 8"):
        parse(legacy(boot_seed=b"\x00" * 8))


def test_certification_reference_in_ean13_5_format_is_accepted() -> None:
    parsed = parse(rfc(certification_reference="0604565272829-10010"))
    assert parsed.raw["certification_reference"] == "0604565272829-10010"


@pytest.mark.parametrize("value", ["0604565272829", "123", "0604565272829-1001",
                                   "060456527282a-10010", "0604565272829-10010\n"])
def test_certification_reference_not_ean13_5_is_invalid(value: str) -> None:
    with pytest.raises(InvalidClaim, match=r"certification_reference \(2398\) .* is not in "
                                           r"EAN-13\+5 format"):
        parse(rfc(certification_reference=value))


def test_profile_1_hardware_version_may_be_ean13_alone() -> None:
    parsed = parse(legacy(hardware_version="0604565272829"))
    assert parsed.raw["certification_reference"] == "0604565272829"


def test_certification_reference_that_is_not_text_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"certification_reference \(2398\) must be a text"):
        parse(rfc(certification_reference=604565272829))


def test_empty_verification_service_indicator_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"verification_service_indicator \(2400\) must be a "
                                           r"non-empty text string"):
        parse(rfc(verification_service=""))


def test_verification_service_indicator_is_kept() -> None:
    parsed = parse(rfc(verification_service="https://psa-verifier.org"))
    assert parsed.raw["verification_service_indicator"] == "https://psa-verifier.org"


# -- software components --------------------------------------------------------------------

def test_missing_software_components_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim, match=r"missing mandatory claim software_components "
                                           r"\(2399\)$"):
        parse(rfc(sw_components=None))


def test_empty_software_components_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"software_components \(2399\) must have at least "
                                           r"one entry"):
        parse(rfc(sw_components=[]))


def test_software_components_that_are_not_an_array_are_invalid() -> None:
    with pytest.raises(InvalidClaim, match="must be an array, found dict"):
        parse(rfc(sw_components={"a": 1}))


def test_software_component_that_is_not_a_map_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match="software component 0 must be a map, found int"):
        parse(rfc(sw_components=[7]))


def test_software_component_without_measurement_value_is_a_missing_claim() -> None:
    comps = [{"sw_component_type": "BL", "signer_id": H32}]
    with pytest.raises(MissingClaim, match=r"software component 0 \(BL\): missing mandatory "
                                           r"measurement value \(2\)"):
        parse(rfc(sw_components=comps))


def test_software_component_measurement_of_wrong_size_is_invalid() -> None:
    comps = [{"measurement_value": b"\x00" * 28, "signer_id": H32}]
    with pytest.raises(InvalidClaim, match=r"software component 0: measurement value \(2\) "
                                           r"must be 32, 48 or 64 bytes, found 28"):
        parse(rfc(sw_components=comps))


def test_software_component_without_signer_id_is_a_missing_claim() -> None:
    comps = [{"measurement_value": H32}]
    with pytest.raises(MissingClaim, match=r"software component 0: missing mandatory signer "
                                           r"ID \(5\)"):
        parse(rfc(sw_components=comps))


def test_software_component_signer_id_of_wrong_size_is_invalid() -> None:
    comps = [{"measurement_value": H32, "signer_id": b"\x00" * 12}]
    with pytest.raises(InvalidClaim, match=r"signer ID \(5\) must be 32, 48 or 64 bytes"):
        parse(rfc(sw_components=comps))


@pytest.mark.parametrize(("field", "label"), [
    ("sw_component_type", r"measurement type \(1\)"),
    ("sw_component_version", r"version \(4\)"),
    ("measurement_description", r"measurement description \(6\)"),
])
def test_software_component_text_fields_must_be_text(field: str, label: str) -> None:
    comps = [{"measurement_value": H32, "signer_id": H32, field: 5}]
    with pytest.raises(InvalidClaim, match=label + " must be a text string, found int"):
        parse(rfc(sw_components=comps))


def test_profile_1_missing_signer_id_is_only_reported() -> None:
    parsed = parse(legacy(sw_components=[{"measurement_value": H32}]))
    assert parsed.software_components[0].signer_id is None
    assert any("RECOMMENDED signer ID (5) is missing" in a for a in parsed.annotations)


def test_profile_1_without_software_components_needs_no_sw_measurements() -> None:
    with pytest.raises(MissingClaim, match=r"software_components \(-75006\): no-software-"
                                           r"measurements \(-75007\) is not indicated"):
        parse(legacy(sw_components=None))


def test_profile_1_no_sw_measurements_allows_no_components() -> None:
    parsed = parse(legacy(sw_components=None, no_sw_measurements=1))
    assert parsed.software_components == ()
    assert parsed.raw["no_sw_measurements"] == 1
    assert any("no software measurements" in a for a in parsed.annotations)


def test_profile_1_no_sw_measurements_with_components_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match="cannot both be present"):
        parse(legacy(no_sw_measurements=1))


def test_profile_1_no_sw_measurements_must_be_one() -> None:
    with pytest.raises(InvalidClaim, match=r"no_sw_measurements \(-75007\) must be 1"):
        parse(legacy(sw_components=None, no_sw_measurements=2))


# -- Instance ID for a key, and the token builder's byte decoding -----------------------------

def test_instance_id_for_ec_key_hashes_the_uncompressed_point() -> None:
    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert psa_instance_id(pub) == b"\x01" + hashlib.sha256(point).digest()


def test_instance_id_for_eddsa_key_hashes_the_raw_key() -> None:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert psa_instance_id(pub) == b"\x01" + hashlib.sha256(raw).digest()


def test_instance_id_for_hmac_key_is_double_hash() -> None:
    key = b"k" * 32
    want = b"\x01" + hashlib.sha256(hashlib.sha256(key).digest()).digest()
    assert psa_instance_id(key) == want


def test_instance_id_for_unsupported_key_is_none() -> None:
    assert psa_instance_id("not a key") is None


@pytest.mark.parametrize(("text", "want"), [
    ("0a0b", b"\x0a\x0b"),
    ("hex:0A0B", b"\x0a\x0b"),
    ("AQID", b"\x01\x02\x03"),
    ("base64:AQID", b"\x01\x02\x03"),
    ("base64:_-8", b"\xff\xef"),
    ("Invalid_data", "Invalid_data"),
])
def test_token_builder_accepts_hex_and_base64(text: str, want: Any) -> None:
    assert as_bytes(text) == want


def test_token_builder_lifecycle_spellings() -> None:
    assert rfc(security_lifecycle="secured_0x3003")[2395] == 0x3003
    assert rfc(security_lifecycle=0x4001)[2395] == 0x4001
    with pytest.raises(ValueError, match="unknown security lifecycle"):
        rfc(security_lifecycle="sl_bogus")


def test_token_builder_rejects_unknown_claim_names() -> None:
    with pytest.raises(ValueError, match="unknown PSA claim 'colour'"):
        psa_claims_map({"colour": "red"})
