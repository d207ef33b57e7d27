"""PSA attestation tokens from public sources, through the whole appraisal pipeline.

* RFC 9783 appendix A (draft-tschofenig-rats-psa-token -24): Sign1 (ES256) and Mac0 (HS256).
* TF-M tools iat-verifier ``tests/data``: the shipped tokens (PSA_IOT_PROFILE_1 and PSA 2.0.0,
  most with an empty protected header, so they need the reported legacy option), and the
  YAML claim sources its own tests compile with ``key.pem`` (``tests/test_verifier.py``),
  compiled here with :func:`create_psa_token`. Expected outcomes follow that test file.
* Veraison services ``scheme/psa-iot/test``: ``token/psa.good.cose`` (``ec.p256.jwk``) and
  ``psa-token.cbor`` (``key.pem``).

The RFC 9783 Instance IDs of these vectors are synthetic, so the key is given explicitly: a
single unbound Trust Anchor is the anchor for the token (core step 2.4).

Nothing is affirmed that was not appraised: the RFC 9783 vectors affirm with Reference Values
built from their published claims sources (``sign1-claims.yaml``, ``mac0-claims.yaml``) and
are at most ``warning`` without. The other vectors test the token format, so they are
appraised under the explicit signature-only policy (``AllowUnappraisedSoftware``), and the
result says so.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.model import (
    DEFAULT_OPTIONS,
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    VerifyOptions,
    ar4si,
)
from devattest.policy import AllOf, AllowUnappraisedSoftware, AppraisalPolicy, DefaultPolicy
from devattest.schemes.psa import (
    MEDIA_TYPE_EAT_CWT,
    MEDIA_TYPE_PSA,
    PROFILE_IOT_1,
    PROFILE_PSA_2_0_0,
    PROFILE_RFC9783,
    create_psa_token,
    psa_claims_map,
    psa_instance_id,
)
from devattest.verifier import SIGNATURE_ONLY, verify
from tests._vectors import VECTORS

DRAFT = VECTORS / "draft-psa-token"
TFM = VECTORS / "tf-m-tools-iat-verifier" / "data"
VERAISON = VECTORS / "veraison-services-psa-iot"
NOW = 1_800_000_000
LEGACY = VerifyOptions(allow_unprotected_alg=True)

pytestmark = pytest.mark.skipif(not DRAFT.is_dir(), reason=f"no test vectors at {VECTORS}")


def pem_public(path: Path) -> Any:
    data = path.read_bytes()
    if b"PRIVATE" in data:
        return serialization.load_pem_private_key(data, None).public_key()  # type: ignore[union-attr]
    return serialization.load_pem_public_key(data)


def pem_private(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), None)


def jwk_public(path: Path) -> ec.EllipticCurvePublicKey:
    jwk = json.loads(path.read_text())

    def b64(s: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")

    return ec.EllipticCurvePublicNumbers(b64(jwk["x"]), b64(jwk["y"]),
                                         ec.SECP256R1()).public_key()


def carried_nonce(token: bytes) -> bytes:
    """The nonce inside a token (the Verifier's expected nonce for a replayed vector)."""
    obj = cbor2.loads(token)
    claims = cbor2.loads(obj.value[2])
    nonce = claims.get(10, claims.get(-75008))
    return nonce if isinstance(nonce, bytes) else b"\x00" * 32


#: The explicit signature-only Appraisal Policy, for vectors that test the token format.
SIGNATURE_ONLY_POLICY = AllOf([DefaultPolicy(), AllowUnappraisedSoftware()])


def appraise(token: bytes, key: Any, *, nonce: bytes | None = None,
             media_type: str = MEDIA_TYPE_PSA, options: VerifyOptions = DEFAULT_OPTIONS,
             refs: ReferenceValues | None = None,
             policy: AppraisalPolicy | None = None) -> Any:
    return verify(token, media_type=media_type,
                  expected_nonce=nonce if nonce is not None else carried_nonce(token),
                  trust_anchors=TrustAnchors.of([KeyAnchor(key, label="vector key")]),
                  reference_values=refs, policy=policy or DefaultPolicy(), now=NOW,
                  options=options)


def signature_only(token: bytes, key: Any, **kwargs: Any) -> Any:
    """Appraise under the explicit signature-only policy and check the result says so."""
    result = appraise(token, key, policy=SIGNATURE_ONLY_POLICY, **kwargs)
    if result.status is Status.AFFIRMING:
        sub = only(result)
        assert sub.annotated_evidence["appraisal"] == SIGNATURE_ONLY
        assert sub.trust_vector.executables is None
    return result


def refs_from_claims_source(name: str) -> ReferenceValues:
    """Reference Values for the software components of a published claims source (YAML)."""
    source = yaml.safe_load((DRAFT / name).read_text())
    return ReferenceValues.of([ReferenceValueSet(
        class_id=source["implementation_id"],
        components=tuple(ComponentReference(
            measurement_type=c["sw_component_type"],
            measurement_values=frozenset([c["measurement_value"]]),
            signer_ids=frozenset([c["signer_id"]])) for c in source["sw_components"]))])


def only(result: Any) -> Any:
    (sub,) = result.submods.values()
    return sub


def codes(result: Any) -> list[str]:
    return [code for code, _ in result.reasons]


# -- RFC 9783 appendix A -------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [MEDIA_TYPE_PSA, MEDIA_TYPE_EAT_CWT])
def test_rfc9783_sign1_token_verifies(media_type: str) -> None:
    token = (DRAFT / "psa-sign1.cbor").read_bytes()
    result = appraise(token, pem_public(DRAFT / "tfm-es-iak.pem"), nonce=b"\x01" * 32,
                      media_type=media_type, refs=refs_from_claims_source("sign1-claims.yaml"))
    assert result.status is Status.AFFIRMING, result.reasons
    sub = only(result)
    assert sub.trust_vector.executables == ar4si.APPROVED_RUNTIME
    assert sub.annotated_evidence["profile"] == PROFILE_RFC9783
    claims = sub.annotated_evidence["claims"]
    assert claims["instance_id"] == bytes.fromhex("01" + "02" * 32)
    assert claims["implementation_id"] == b"\x00" * 32
    assert claims["client_id"] == 2147483647
    assert claims["boot_seed"] == b"\x00" * 8
    assert claims["software_components"][0]["measurement_type"] == "PRoT"


def test_rfc9783_mac0_token_verifies() -> None:
    key = (DRAFT / "tfm-hs-iak.bin").read_bytes()
    token = (DRAFT / "psa-mac0.cbor").read_bytes()
    result = appraise(token, key, nonce=b"\x01" * 32,
                      refs=refs_from_claims_source("mac0-claims.yaml"))
    assert result.status is Status.AFFIRMING, result.reasons
    assert only(result).trust_vector.executables == ar4si.APPROVED_RUNTIME


@pytest.mark.parametrize(("token_name", "key_name"), [("psa-sign1.cbor", "tfm-es-iak.pem"),
                                                      ("psa-mac0.cbor", "tfm-hs-iak.bin")])
def test_rfc9783_vector_without_reference_values_is_not_affirmed(token_name: str,
                                                                 key_name: str) -> None:
    # A valid signature says who signed, not what runs: with nothing compared the result is
    # at most warning, executables 33, and the reason says nothing was compared.
    key = (pem_public(DRAFT / key_name) if key_name.endswith(".pem")
           else (DRAFT / key_name).read_bytes())
    result = appraise((DRAFT / token_name).read_bytes(), key, nonce=b"\x01" * 32)
    assert result.status is Status.WARNING, result.reasons
    assert only(result).trust_vector.executables == ar4si.UNRECOGNIZED_RUNTIME
    assert codes(result) == ["software_not_appraised"]


def test_rfc9783_vector_with_reference_values_for_other_software_is_not_affirmed() -> None:
    token = (DRAFT / "psa-sign1.cbor").read_bytes()
    other = ReferenceValues.of([ReferenceValueSet(
        class_id=b"\x00" * 32, components=(
            ComponentReference("PRoT", measurement_values=frozenset([b"\x09" * 32])),))])
    result = appraise(token, pem_public(DRAFT / "tfm-es-iak.pem"), nonce=b"\x01" * 32,
                      refs=other)
    assert result.status is Status.WARNING
    assert codes(result) == ["unknown_measurement"]


def test_rfc9783_mac0_instance_id_is_double_hash_of_the_key() -> None:
    key = (DRAFT / "tfm-hs-iak.bin").read_bytes()
    claims = cbor2.loads(cbor2.loads((DRAFT / "psa-mac0.cbor").read_bytes()).value[2])
    assert psa_instance_id(key) == claims[256]


def test_rfc9783_mac0_key_is_found_by_instance_id() -> None:
    key = (DRAFT / "tfm-hs-iak.bin").read_bytes()
    token = (DRAFT / "psa-mac0.cbor").read_bytes()
    other = KeyAnchor(b"x" * 64, instance_id=b"\x01" + b"\x00" * 32)
    anchors = TrustAnchors.of([other, KeyAnchor(key, instance_id=psa_instance_id(key))])
    result = verify(token, media_type=MEDIA_TYPE_PSA, expected_nonce=b"\x01" * 32,
                    trust_anchors=anchors,
                    reference_values=refs_from_claims_source("mac0-claims.yaml"),
                    policy=DefaultPolicy(), now=NOW)
    assert result.status is Status.AFFIRMING, result.reasons


def test_rfc9783_sign1_claims_yaml_compiles_to_the_vector_payload() -> None:
    source = yaml.safe_load((DRAFT / "sign1-claims.yaml").read_text())
    vector = cbor2.loads(cbor2.loads((DRAFT / "psa-sign1.cbor").read_bytes()).value[2])
    assert psa_claims_map(source) == vector


def test_rfc9783_sign1_token_with_another_key_is_rejected() -> None:
    token = (DRAFT / "psa-sign1.cbor").read_bytes()
    result = appraise(token, ec.generate_private_key(ec.SECP256R1()).public_key(),
                      nonce=b"\x01" * 32)
    assert codes(result) == ["signature_invalid"]


def test_rfc9783_sign1_token_with_a_wrong_nonce_is_rejected() -> None:
    token = (DRAFT / "psa-sign1.cbor").read_bytes()
    result = appraise(token, pem_public(DRAFT / "tfm-es-iak.pem"), nonce=b"\x02" * 32)
    assert codes(result) == ["nonce_mismatch"]


def test_rfc9783_token_created_with_our_builder_verifies() -> None:
    source = yaml.safe_load((DRAFT / "sign1-claims.yaml").read_text())
    token = create_psa_token(source, pem_private(DRAFT / "tfm-es-iak.pem"))
    result = appraise(token, pem_public(DRAFT / "tfm-es-iak.pem"), nonce=b"\x01" * 32,
                      refs=refs_from_claims_source("sign1-claims.yaml"))
    assert result.status is Status.AFFIRMING, result.reasons


# -- TF-M tools: the shipped tokens ------------------------------------------------------------

GOOD_TFM_SIGN1 = {
    "iat.cbor": PROFILE_IOT_1,
    "psa-2_0_0_sign1-token.cbor": PROFILE_PSA_2_0_0,
}


@pytest.mark.parametrize("name", sorted(GOOD_TFM_SIGN1))
def test_tfm_good_sign1_tokens_verify(name: str) -> None:
    token = (TFM / name).read_bytes()
    result = signature_only(token, pem_public(TFM / "key.pem"), options=LEGACY)
    assert result.status is Status.AFFIRMING, result.reasons
    sub = only(result)
    assert sub.annotated_evidence["profile"] == GOOD_TFM_SIGN1[name]
    assert any("legacy PSA profile" in n for n in sub.annotated_evidence["notices"])


def test_tfm_hmac_token_verifies() -> None:
    token = (TFM / "iat-hmac.cbor").read_bytes()
    result = signature_only(token, (TFM / "hmac.key").read_bytes(), options=LEGACY)
    assert result.status is Status.AFFIRMING, result.reasons


def test_tfm_token_without_alg_is_rejected_without_the_legacy_option() -> None:
    token = (TFM / "psa-2_0_0_sign1-token.cbor").read_bytes()
    result = appraise(token, pem_public(TFM / "key.pem"))
    assert codes(result) == ["algorithm_rejected"]


def test_tfm_token_without_alg_reports_the_legacy_option() -> None:
    token = (TFM / "psa-2_0_0_sign1-token.cbor").read_bytes()
    notices = only(appraise(token, pem_public(TFM / "key.pem"), options=LEGACY)
                   ).annotated_evidence["notices"]
    assert any(n.startswith("cose_alg_unprotected") for n in notices)


def test_tfm_good_token_signed_by_the_alternative_key_is_rejected() -> None:
    token = (TFM / "iat.cbor").read_bytes()
    result = appraise(token, pem_public(TFM / "key-alt.pem"), options=LEGACY)
    assert codes(result) == ["signature_invalid"]


# Each negative token fails for its own reason (code, message fragment).
BAD_TFM_TOKENS = {
    # Trailing byte after the COSE_Sign1 (tf-m-tools: "Bad COSE").
    "malformed.cbor": ("trailing_bytes", "follow the CBOR item"),
    # An older claim numbering: no PSA_IOT_PROFILE_1 client ID (tf-m-tools: "missing
    # MANDATORY claim").
    "missing-claim.cbor": ("missing_claim", "missing mandatory claim client_id (-75001)"),
    # The software components array is empty and no-sw-measurements is absent (tf-m-tools:
    # "NO_MEASUREMENTS claim is not present").
    "missing-sw-comps.cbor": ("invalid_claim",
                              "software_components (-75006) must have at least one entry"),
    # The profile claim is a byte string (tf-m-tools: "Invalid PROFILE_ID").
    "invalid-profile-id.cbor": ("unknown_profile", "invalid profile ID"),
    # A well-formed claims set without measurements, in the "unknown" lifecycle state 0x0002:
    # it cannot affirm; the lifecycle is a configuration finding.
    "no-sw-measurements.cbor": ("psa_lifecycle_unknown", "security lifecycle 0x0002"),
    # The older claim numbering, with a sub-module (software component) missing its type and
    # an integer implementation ID.
    "submod-missing-claim.cbor": ("invalid_claim",
                                  "implementation_id (-75003) must be a byte string"),
}


@pytest.mark.parametrize("name", sorted(BAD_TFM_TOKENS))
def test_tfm_bad_tokens_fail_each_with_its_own_reason(name: str) -> None:
    code, fragment = BAD_TFM_TOKENS[name]
    result = appraise((TFM / name).read_bytes(), pem_public(TFM / "key.pem"), options=LEGACY)
    assert result.status is Status.CONTRAINDICATED
    assert result.reasons[0][0] == code
    assert fragment in result.reasons[0][1]


def test_tfm_bad_token_reasons_are_distinct() -> None:
    seen = set()
    for name in BAD_TFM_TOKENS:
        result = appraise((TFM / name).read_bytes(), pem_public(TFM / "key.pem"),
                          options=LEGACY)
        seen.add(result.reasons[0])
    assert len(seen) == len(BAD_TFM_TOKENS)


def test_tfm_no_sw_measurements_token_is_a_valid_claims_set_with_no_components() -> None:
    result = appraise((TFM / "no-sw-measurements.cbor").read_bytes(),
                      pem_public(TFM / "key.pem"), options=LEGACY)
    sub = only(result)
    assert sub.annotated_evidence["claims"]["no_sw_measurements"] == 1
    assert sub.trust_vector.configuration == 96
    assert sub.trust_vector.instance_identity == 2


# -- TF-M tools: the YAML sources its tests compile -------------------------------------------

def compile_tfm(name: str) -> bytes:
    source = yaml.safe_load((TFM / name).read_text())
    return create_psa_token(source, pem_private(TFM / "key.pem"), profile=PROFILE_IOT_1)


# tests/test_verifier.py: yaml -> (expected outcome code, message fragment); None = verifies.
TFM_YAML = {
    "valid-iat.yaml": None,
    "iat.yaml": None,
    "missing-signer-id.yaml": None,  # only a warning: signer ID is RECOMMENDED in profile 1
    "unexpected-claim.yaml": None,  # an unknown key in a software component is kept
    "invalid-profile-id.yaml": ("unknown_profile", "invalid profile ID"),
    "missing-claim.yaml": ("missing_claim", "missing mandatory claim instance_id (-75009)"),
    "submod-missing-claim.yaml": ("missing_claim",
                                  "software component 0 (BL): missing mandatory measurement"),
    "missing-sw-comps.yaml": ("missing_claim", "no-software-measurements (-75007) is not "
                                               "indicated"),
    "invalid-type-length.yaml": ("unknown_profile", "found int"),
    "invalid-hw-version.yaml": ("invalid_claim", "is not in EAN-13 or EAN-13+5 format"),
}


@pytest.mark.parametrize("name", sorted(TFM_YAML))
def test_tfm_yaml_sources_give_the_tfm_expected_outcome(name: str) -> None:
    token = compile_tfm(name)
    result = signature_only(token, pem_public(TFM / "key.pem"))
    expected = TFM_YAML[name]
    if expected is None:
        assert result.status is Status.AFFIRMING, result.reasons
    else:
        assert result.status is Status.CONTRAINDICATED
        assert result.reasons[0][0] == expected[0]
        assert expected[1] in result.reasons[0][1]


def test_tfm_missing_signer_id_is_reported() -> None:
    sub = only(appraise(compile_tfm("missing-signer-id.yaml"), pem_public(TFM / "key.pem")))
    assert any("RECOMMENDED signer ID (5) is missing" in n
               for n in sub.annotated_evidence["notices"])


def test_tfm_psa_2_0_0_yaml_compiles_to_the_shipped_token_claims() -> None:
    source = yaml.safe_load((TFM / "psa-2_0_0_token.yaml").read_text())
    shipped = cbor2.loads(cbor2.loads((TFM / "psa-2_0_0_sign1-token.cbor").read_bytes()).value[2])
    compiled = psa_claims_map(source)
    # The shipped token spells the measurement description "SHA256", the YAML "sha-256".
    for comps in (compiled[2399], shipped[2399]):
        for comp in comps:
            comp.pop(6)
    assert compiled == shipped


def test_cca_tokens_are_out_of_scope() -> None:
    pytest.skip("Arm CCA tokens (tag 907, CCA platform profile) are not a PSA profile and "
                "are out of scope for the psa scheme")


# -- Veraison services --------------------------------------------------------------------------

def test_veraison_psa_good_cose_verifies() -> None:
    token = (VERAISON / "token" / "psa.good.cose").read_bytes()
    result = signature_only(token, jwk_public(VERAISON / "token" / "ec.p256.jwk"))
    assert result.status is Status.AFFIRMING, result.reasons
    assert only(result).annotated_evidence["profile"] == PROFILE_PSA_2_0_0


def test_veraison_psa_token_cbor_verifies() -> None:
    token = (VERAISON / "psa-token.cbor").read_bytes()
    result = signature_only(token, pem_public(VERAISON / "key.pem"))
    assert result.status is Status.AFFIRMING, result.reasons
    assert only(result).annotated_evidence["profile"] == PROFILE_IOT_1
