"""EAR claims-sets: emitting -03, reading -03/-02, and rejecting inconsistent results."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from devattest.ear import (
    DEVATTEST_CBOR_KEY,
    EAR_PROFILE,
    cbor_claims_to_result,
    claims_to_result,
    result_to_cbor_claims,
    result_to_claims,
)
from devattest.errors import MalformedResult, UnknownResultProfile
from devattest.model import Appraisal, Status, TrustVector
from tests.unit.ear._results import NOW, make_result, sign_raw_jwt


def test_emits_the_03_claim_names_and_profile() -> None:
    claims = result_to_claims(make_result())
    assert claims["eat_profile"] == EAR_PROFILE == "tag:ietf.org,2026:rats/ear#03"
    assert claims["iat"] == NOW and claims["exp"] == NOW + 300
    assert claims["ear_verifier_id"] == {"developer": "https://example.org/v", "build": "v 1"}
    assert claims["eat_nonce"] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    assert claims["ear_status"] == "affirming"
    sub = claims["submods"]["psa"]
    assert sub["ear_status"] == "affirming"
    assert sub["ear_trustworthiness_vector"] == {
        "instance-identity": 2, "executables": 2, "hardware": 2}
    assert sub["ear_appraisal_policy_ids"] == ["urn:devattest:policy:default"]
    assert sub["ear_devattest"]["reasons"] == [
        {"code": "legacy_profile", "message": "PSA_IOT_PROFILE_1 seen"}]
    assert not any(k.startswith("ear.") for k in claims)


def test_emits_cbor_integer_keys() -> None:
    claims = result_to_cbor_claims(make_result())
    assert claims[265] == EAR_PROFILE and claims[6] == NOW and claims[4] == NOW + 300
    assert claims[10] == bytes(range(32)) and claims[1000] == 2
    assert claims[1004] == {0: "https://example.org/v", 1: "v 1"}
    sub = claims[266]["psa"]
    assert sub[1000] == 2 and sub[1001] == {0: 2, 2: 2, 4: 2}
    assert sub[1003] == ["urn:devattest:policy:default"]
    assert sub[DEVATTEST_CBOR_KEY]["reasons"][0]["code"] == "legacy_profile"


def test_json_round_trip_preserves_the_result() -> None:
    result = make_result()
    assert claims_to_result(result_to_claims(result)) == dataclasses.replace(
        result, profile=EAR_PROFILE)


def test_cbor_round_trip_preserves_bytes_in_annotated_evidence() -> None:
    sub = dataclasses.replace(make_result().submods["psa"],
                              annotated_evidence={"iid": b"\x01" * 33, 7: [b"\x02"]},
                              appraisal_policy_ids=("a", "b"), appraisal_policy_id="a",
                              failed_step="3", nonce=b"n" * 8, profile="tag:x",
                              extensions={-80000: {"k": b"v"}})
    result = make_result(submods={"psa": sub}, raw_evidence=b"raw")
    assert cbor_claims_to_result(result_to_cbor_claims(result)) == result


def test_all_policy_ids_are_emitted_in_order() -> None:
    sub = dataclasses.replace(make_result().submods["psa"], appraisal_policy_id="a",
                              appraisal_policy_ids=("a", "b", "c"))
    claims = result_to_claims(make_result(submods={"psa": sub}))
    assert claims["submods"]["psa"]["ear_appraisal_policy_ids"] == ["a", "b", "c"]


def test_overall_status_can_be_left_out() -> None:
    assert "ear_status" not in result_to_claims(make_result(), overall_status=False)
    assert 1000 not in result_to_cbor_claims(make_result(), overall_status=False)


def test_json_bytes_in_extensions_become_base64url() -> None:
    sub = dataclasses.replace(make_result().submods["psa"], annotated_evidence={"b": b"\xff"})
    claims = result_to_claims(make_result(submods={"psa": sub}))
    assert claims["submods"]["psa"]["ear_devattest"]["annotated-evidence"] == {"b": "_w"}


def test_result_without_submods_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one submod"):
        result_to_claims(make_result(submods={}))


def _claims(**over: Any) -> dict[str, Any]:
    c = result_to_claims(make_result())
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_rejects_overall_status_inflated_above_a_contraindicated_submod() -> None:
    c = _claims()
    c["submods"]["psa"]["ear_status"] = "contraindicated"
    c["ear_status"] = "affirming"
    with pytest.raises(MalformedResult, match="overall ear_status"):
        claims_to_result(c)


def test_rejects_submod_status_inflated_above_its_trust_vector() -> None:
    c = _claims()
    c["submods"]["psa"]["ear_trustworthiness_vector"]["executables"] = 96
    with pytest.raises(MalformedResult, match="worst part is contraindicated"):
        claims_to_result(c)


def test_a_status_more_severe_than_the_vector_is_accepted() -> None:
    c = _claims(ear_status=None)
    c["submods"]["psa"]["ear_status"] = "contraindicated"  # e.g. a policy veto
    assert claims_to_result(c).status is Status.CONTRAINDICATED


def test_overall_status_defaults_to_the_worst_submod() -> None:
    warn = Appraisal(status=Status.WARNING, trust_vector=TrustVector(executables=33))
    c = result_to_claims(make_result(submods={"a": make_result().submods["psa"], "b": warn}),
                         overall_status=False)
    assert claims_to_result(c).status is Status.WARNING


@pytest.mark.parametrize(("name", "value", "match"), [
    ("eat_profile", "tag:example.com,2020:other", "unknown EAR profile"),
    ("iat", 1.5e9, "iat is not an integer"),
    ("exp", 1.9e9, "exp is not an integer"),
    ("iat", True, "iat is not an integer"),
    ("ear_verifier_id", {"developer": "x"}, "developer and build"),
    ("submods", {}, "submods"),
    ("eat_nonce", "not base64 !", "not valid base64"),
])
def test_rejects_malformed_top_level_claims(name: str, value: Any, match: str) -> None:
    c = _claims()
    c[name] = value
    err = UnknownResultProfile if name == "eat_profile" else MalformedResult
    with pytest.raises(err, match=match):
        claims_to_result(c)


def test_rejects_missing_iat() -> None:
    c = _claims()
    del c["iat"]
    with pytest.raises(MalformedResult, match="iat is missing"):
        claims_to_result(c)


@pytest.mark.parametrize(("name", "value", "match"), [
    ("ear_status", "fine", "not a trustworthiness tier"),
    ("ear_trustworthiness_vector", {"kernel": 2}, "unknown trustworthiness claim"),
    ("ear_trustworthiness_vector", {"hardware": 300}, "-128..127"),
    ("ear_trustworthiness_vector", {"hardware": True}, "-128..127"),
    ("ear_trustworthiness_vector", {}, "non-empty map"),
    ("ear_appraisal_policy_ids", [], "non-empty list"),
    ("ear_appraisal_policy_ids", "one", "non-empty list"),
])
def test_rejects_malformed_submod_claims(name: str, value: Any, match: str) -> None:
    c = _claims()
    c["submods"]["psa"][name] = value
    with pytest.raises(MalformedResult, match=match):
        claims_to_result(c)


def test_rejects_submod_without_status() -> None:
    c = _claims()
    del c["submods"]["psa"]["ear_status"]
    with pytest.raises(MalformedResult, match="has no ear_status"):
        claims_to_result(c)


def test_reads_02_names() -> None:
    c = {
        "eat_profile": "tag:ietf.org,2025-07:ear", "iat": NOW,
        "ear.verifier-id": {"developer": "d", "build": "b"},
        "submods": {"x": {"ear.status": "warning",
                          "ear.trustworthiness-vector": {"configuration": 32},
                          "ear.appraisal-policy-id": "p1",
                          "ear.veraison.policy-claims": {"k": "v"}}},
    }
    r = claims_to_result(c)
    sub = r.submods["x"]
    assert (r.status, sub.status, sub.appraisal_policy_id) == (
        Status.WARNING, Status.WARNING, "p1")
    assert sub.trust_vector == TrustVector(configuration=32)
    assert sub.extensions == {"ear_veraison_policy_claims": {"k": "v"}}


def test_trustee_ear_is_read_as_an_alias_of_the_veraison_profile() -> None:
    """An EAR from Confidential Containers' Trustee (its shape: -02 dotted names, a single
    text policy id, ``iss``, its own ``ear.trustee.identifiers`` extension and AR4SI values
    such as 33 and 97) was UnknownResultProfile; Veraison's EAR library reads it as an alias
    of its own profile, and so does devattest, signature included."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from devattest.ear import TRUSTEE_PROFILE, verify_ear_jwt

    key = ec.generate_private_key(ec.SECP256R1())
    c = {
        "eat_profile": "tag:github.com,2024:confidential-containers/Trustee",
        "iat": NOW, "exp": NOW + 300, "iss": "CoCo-Attestation-Service",
        "ear.verifier-id": {"developer": "https://confidentialcontainers.org",
                            "build": "attestation-service 0.1.0"},
        "submods": {"cpu0": {
            "ear.status": "contraindicated",
            "ear.trustworthiness-vector": {"instance-identity": 0, "configuration": 2,
                                           "executables": 33, "hardware": 97},
            "ear.appraisal-policy-id": "default",
            "ear.trustee.identifiers": {"validated": {"container_images": ["nginx:latest"]}},
            "ear.veraison.annotated-evidence": {"init_data": "DezN7Q2H7ERw"}}},
    }
    for r in (claims_to_result(c), verify_ear_jwt(sign_raw_jwt(key, {"alg": "ES256"}, c),
                                                  key.public_key(), now=NOW)):
        assert r.profile == TRUSTEE_PROFILE
        assert (r.status, r.exp) == (Status.CONTRAINDICATED, NOW + 300)
        assert r.verifier_id.developer == "https://confidentialcontainers.org"
        assert r.extensions == {"iss": "CoCo-Attestation-Service"}
        sub = r.submods["cpu0"]
        assert sub.trust_vector == TrustVector(instance_identity=0, configuration=2,
                                               executables=33, hardware=97)
        assert sub.appraisal_policy_id == "default"
        assert sub.extensions == {
            "ear_trustee_identifiers": {"validated": {"container_images": ["nginx:latest"]}},
            "ear_veraison_annotated_evidence": {"init_data": "DezN7Q2H7ERw"}}


def test_unknown_claims_are_kept_not_fatal() -> None:
    c = _claims(x_custom={"a": 1})
    c["submods"]["psa"]["x_sub"] = [1]
    r = claims_to_result(c)
    assert r.extensions == {"x_custom": {"a": 1}}
    assert r.submods["psa"].extensions == {"x_sub": [1]}
    assert result_to_claims(r)["x_custom"] == {"a": 1}


def test_cbor_rejects_text_status_and_float_iat() -> None:
    c = result_to_cbor_claims(make_result())
    c[266]["psa"][1000] = "affirming"
    with pytest.raises(MalformedResult, match="trustworthiness tier"):
        cbor_claims_to_result(c)
    c = result_to_cbor_claims(make_result())
    c[6] = float(NOW)
    with pytest.raises(MalformedResult, match="iat is not an integer"):
        cbor_claims_to_result(c)
