"""CoRIM conformance: Veraison's psa-iot CoRIMs and the draft-ietf-rats-corim-11 examples."""

from __future__ import annotations

import base64
import json

import cbor_diag
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from devattest import errors
from devattest.provisioning import parse_comid, parse_corim
from tests._vectors import VECTORS

VERAISON = VECTORS / "veraison-services-psa-iot" / "corim"
DRAFT = VECTORS / "draft-ietf-rats-corim-11" / "examples"
IMPL_ID = b"acme-implementation-id-000000001"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "==")


def _src(name: str) -> dict:
    return json.loads((VERAISON / "src" / name).read_text())


def _diag(name: str) -> bytes:
    return cbor_diag.diag2cbor((DRAFT / name).read_text())


# --------------------------------------------------------------------------------------
# Veraison psa-iot: the valid CoRIM.
# --------------------------------------------------------------------------------------
def test_veraison_valid_psa_corim_gives_reference_values_from_its_source():
    corim = parse_corim((VERAISON / "corim-psa-valid.cbor").read_bytes())
    assert corim.rules == "psa"
    assert corim.profile == "tag:arm.com,2025:psa#1.0.0"
    assert corim.corim_id == "00000000-0000-0000-065a-0000000000001"
    assert not corim.signed and not corim.verified
    assert corim.notes == ()
    rvs = corim.reference_values.for_class(IMPL_ID)
    assert rvs is not None and len(corim.reference_values.sets) == 1
    assert rvs.reject_unknown_components
    expected = {}
    for m in _src("comid-psa-refval.json")["triples"]["reference-values"][0]["measurements"]:
        v = m["value"]
        expected[v["name"]] = (_b64(v["digests"][0][1]), _b64(v["cryptokeys"][0]["value"]))
    got = {c.measurement_type: c for c in rvs.components}
    assert set(got) == set(expected) == {"BL", "PRoT", "ARoT"}
    for name, (digest, signer) in expected.items():
        assert got[name].measurement_values == frozenset({digest})
        assert got[name].signer_ids == frozenset({signer})
        assert got[name].required


def test_veraison_valid_psa_corim_gives_attestation_keys_by_instance_id():
    corim = parse_corim((VERAISON / "corim-psa-valid.cbor").read_bytes())
    src = _src("comid-psa-ta.json")["triples"]["attester-verification-keys"]
    assert len(corim.trust_anchors.keys) == len(src) == 2
    for entry in src:
        iid = base64.b64decode(entry["environment"]["instance"]["value"])
        anchor = corim.trust_anchors.by_instance_id(iid)
        assert anchor is not None
        want = load_pem_public_key(entry["verification-keys"][0]["value"].encode())
        assert anchor.public_key.public_numbers() == want.public_numbers()


# --------------------------------------------------------------------------------------
# Veraison psa-iot: every bad CoRIM refused with its own reason (Veraison's corim_test.go).
# --------------------------------------------------------------------------------------
BAD = [
    ("corim-psa-bad-class.cbor", "psa_class_id_type", "class ID: expected psa.impl-id, got uuid"),
    ("corim-psa-bad-instance.cbor", "psa_instance_type", "instance: expected UEID, got uuid"),
    ("corim-psa-bad-ta-no-instance.cbor", "psa_instance_missing",
     "instance not set for trust anchor"),
    ("corim-psa-bad-refval-instance.cbor", "psa_refval_instance",
     "instance set for reference value"),
    ("corim-psa-bad-ta-cert.cbor", "psa_key_type",
     "trust anchor must be a PKIX base64 key, found: pkix-base64-cert"),
    ("corim-psa-bad-refval-mkey.cbor", "psa_measurement_key", "measurement 1 key: expected"),
    ("corim-psa-bad-refval-mval.cbor", "psa_measurement_no_digests",
     "measurement 0 value: no digests"),
]


@pytest.mark.parametrize(("name", "reason", "message"), BAD, ids=[b[0] for b in BAD])
def test_veraison_bad_psa_corim_is_refused_with_its_reason(name, reason, message):
    with pytest.raises(errors.CorimProfileViolation) as info:
        parse_corim((VERAISON / name).read_bytes())
    assert info.value.reason == reason
    assert message in info.value.message
    assert isinstance(info.value, errors.ProvisioningError)


def test_every_veraison_bad_corim_is_covered_and_reasons_are_distinct():
    on_disk = {p.name for p in VERAISON.glob("corim-psa-bad-*.cbor")}
    assert on_disk == {b[0] for b in BAD}
    assert len({b[1] for b in BAD}) == len(BAD)


# --------------------------------------------------------------------------------------
# draft-ietf-rats-corim-11 examples.
# --------------------------------------------------------------------------------------
def test_draft_psa_refval_example_parses_under_psa_rules():
    corim = parse_comid(_diag("comid-psa-refval.diag"), profile="psa")
    rvs = corim.reference_values.for_class(IMPL_ID)
    assert rvs is not None
    (prot,) = rvs.components
    assert prot.measurement_type == "PRoT"
    # Two reference triples for PRoT are alternatives: either digest is acceptable.
    assert prot.measurement_values == {
        bytes.fromhex("9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa"),
        bytes.fromhex("a3fe9f414586c0d3cacbe3b6920a09d8718e503bca22e23fef882203bf765065"),
    }
    assert prot.signer_ids == {
        bytes.fromhex("5378796307535df3ec8d8b15a2e2dc5641419c3d3060cfe32238c0fa973f7aa3")}


def test_draft_corim_1_generic_reference_values_by_class_id_and_by_model():
    data = _diag("corim-1.diag")
    corim = parse_corim(data)
    assert corim.rules == "generic"
    assert corim.corim_id == "284e6c3e-5d9f-4f6b-851f-5a4247f243a7"
    rvs = corim.reference_values.for_class(bytes.fromhex("67b28b6c34cc40a19117ab5b05911e37"))
    assert rvs is not None
    (comp,) = rvs.components
    assert comp.measurement_values == {
        bytes.fromhex("44aa336af4cb14a879432e53dd6571c7fa9bccafb75f488259262d6ea3a4d91b")}
    assert comp.min_version == "1.0.0"
    by_model = parse_corim(data, class_key="model")
    assert by_model.reference_values.for_class("ACME RoadRunner") is not None


def test_draft_firmware_example_keys_classes_by_model_and_keeps_svn_floor():
    corim = parse_corim(_diag("corim-firmware-cd.diag"))
    assert corim.profile == "2.16.840.1.113741.1.15.6"
    rvs = corim.reference_values.for_class("fwY_n5x")
    assert rvs is not None
    assert rvs.components[0].min_security_version == 1
    assert len(next(iter(rvs.components[0].measurement_values))) == 48


COMIDS = sorted(p.name for p in DRAFT.glob("comid-*.diag"))
CORIMS = [*sorted(p.name for p in DRAFT.glob("corim-*.diag")), "payload-corim-4.diag"]


@pytest.mark.parametrize("name", COMIDS)
def test_draft_comid_example_parses_under_generic_rules(name):
    corim = parse_comid(_diag(name))
    for rvs in corim.reference_values.sets:
        assert rvs.components, "a class without usable measurements must not be provisioned"


@pytest.mark.parametrize("name", CORIMS)
def test_draft_corim_example_parses_under_generic_rules(name):
    corim = parse_corim(_diag(name))
    assert corim.tag_ids


def test_draft_generic_example_is_refused_under_psa_rules():
    with pytest.raises(errors.CorimProfileViolation) as info:
        parse_comid(_diag("comid-1.diag"), profile="psa")
    assert info.value.reason == "psa_class_id_type"


def test_draft_measurements_devattest_cannot_enforce_leave_the_component_unknown():
    corim = parse_comid(_diag("comid-raw-value.diag"))
    assert corim.reference_values.sets == ()
    assert any("no usable measurements" in n for n in corim.notes)
