"""devattest's own JSON/YAML reference-value and trust-anchor formats."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from devattest.errors import ProvisioningError, ProvisioningSchemaError
from devattest.model import ComponentReference, ReferenceValues, ReferenceValueSet
from devattest.provisioning import (
    dump_reference_values,
    load_reference_values_file,
    load_trust_anchors_file,
    loads_document,
    parse_reference_values,
    parse_trust_anchors,
)

IMPL = "61636d652d696d706c656d656e746174696f6e2d69642d303030303030303031"
D1 = "aa" * 32
D2 = "bb" * 32
SIGNER = "cc" * 32

YAML_DOC = f"""
format: devattest.reference-values/v1
classes:
  - implementation_id: "{IMPL}"
    components:
      - measurement_type: BL
        measurement_values: ["{D1}", "{D2}"]
        signer_ids: ["{SIGNER}"]
        min_version: "1.2.0"
        min_security_version: 3
      - measurement_type: ARoT
        required: false
    allowed_lifecycles: [0x3000, 0x3001]
    reject_unknown_components: false
  - hardware_model: ACME RoadRunner
    components: []
"""


def _schema_error(doc, parse=parse_reference_values) -> ProvisioningSchemaError:
    with pytest.raises(ProvisioningSchemaError) as info:
        parse(doc)
    assert isinstance(info.value, ProvisioningError)
    return info.value


def _good():
    return loads_document(YAML_DOC)


def test_yaml_reference_values_parse_into_the_model():
    rv = parse_reference_values(_good())
    psa = rv.for_class(bytes.fromhex(IMPL))
    assert psa is not None
    bl, arot = psa.components
    assert bl == ComponentReference(
        measurement_type="BL", measurement_values=frozenset({bytes.fromhex(D1),
                                                             bytes.fromhex(D2)}),
        signer_ids=frozenset({bytes.fromhex(SIGNER)}), min_version="1.2.0",
        min_security_version=3, required=True)
    assert arot.required is False and arot.measurement_values == frozenset()
    assert psa.allowed_lifecycles == frozenset({0x3000, 0x3001})
    assert psa.reject_unknown_components is False
    model = rv.for_class("ACME RoadRunner")
    assert model is not None and model.reject_unknown_components is True


def test_json_and_yaml_give_the_same_reference_values():
    as_json = json.dumps(_good())
    assert parse_reference_values(loads_document(as_json, fmt="json")) == \
        parse_reference_values(_good())


def test_dump_round_trips():
    rv = parse_reference_values(_good())
    dumped = dump_reference_values(rv)
    assert parse_reference_values(dumped) == rv
    # Through JSON and YAML text too, deterministically.
    assert parse_reference_values(loads_document(json.dumps(dumped), fmt="json")) == rv
    assert parse_reference_values(loads_document(yaml.safe_dump(dumped))) == rv
    assert dump_reference_values(parse_reference_values(dumped)) == dumped


def test_dump_of_a_model_built_in_code_round_trips():
    rv = ReferenceValues.of([ReferenceValueSet(
        class_id=b"\x01" * 32, source="corim:x",
        components=(ComponentReference("PRoT", frozenset({b"\x02" * 48})),))])
    assert parse_reference_values(dump_reference_values(rv)) == rv


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d["classes"][0]["components"][0]["signer_ids"].__setitem__(0, "zz"),
     "classes[0].components[0].signer_ids[0]"),
    (lambda d: d["classes"][0]["components"][0].__setitem__("min_security_version", -1),
     "classes[0].components[0].min_security_version"),
    (lambda d: d["classes"][0]["components"][0].__setitem__("min_version", 1.10),
     "classes[0].components[0].min_version"),
    (lambda d: d["classes"][0]["components"][0].__setitem__("min_version", "1.x"),
     "classes[0].components[0].min_version"),
    (lambda d: d["classes"][0]["components"][1].__setitem__("requierd", True),
     "classes[0].components[1].requierd"),
    (lambda d: d["classes"][0]["components"][1].__setitem__("required", "yes"),
     "classes[0].components[1].required"),
    (lambda d: d["classes"][0]["components"][1].pop("measurement_type"),
     "classes[0].components[1].measurement_type"),
    (lambda d: d["classes"][0]["components"][1].__setitem__("measurement_type", "BL"),
     "classes[0].components[1].measurement_type"),
    (lambda d: d["classes"][0].__setitem__("hardware_model", "x"), "classes[0]"),
    (lambda d: d["classes"][1].pop("hardware_model"), "classes[1]"),
    (lambda d: d["classes"].append({"implementation_id": IMPL, "components": []}),
     "classes[2]"),
    (lambda d: d["classes"][0]["allowed_lifecycles"].append(True),
     "classes[0].allowed_lifecycles[2]"),
    (lambda d: d.__setitem__("format", "devattest.reference-values/v9"), "format"),
    (lambda d: d.__setitem__("extra", 1), "extra"),
    (lambda d: d.pop("classes"), "classes"),
])
def test_schema_errors_name_the_path_of_the_bad_field(mutate, path):
    doc = _good()
    mutate(doc)
    err = _schema_error(doc)
    assert err.path == path
    assert path in err.message


def test_duplicate_yaml_keys_are_refused():
    err = _schema_error(None, parse=lambda _: loads_document("classes: []\nclasses: []\n"))
    assert "duplicate key" in err.message


def test_duplicate_json_keys_are_refused():
    err = _schema_error(None, parse=lambda _: loads_document('{"classes": [], "classes": []}',
                                                             fmt="json"))
    assert "duplicate key" in err.message


def test_yaml_alias_bomb_is_refused_before_expansion():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    err = _schema_error(None, parse=lambda _: loads_document(bomb))
    assert "aliases are not allowed" in err.message


def test_yaml_python_tags_are_refused():
    err = _schema_error(None, parse=lambda _: loads_document("!!python/object/apply:os.system "
                                                             "['true']"))
    assert "not valid YAML" in err.message


def test_oversized_document_is_refused():
    err = _schema_error(None, parse=lambda _: loads_document(" " * (4 * 1024 * 1024 + 1)))
    assert "larger than" in err.message


def test_json_nan_is_refused():
    with pytest.raises(ProvisioningSchemaError):
        loads_document('{"classes": NaN}', fmt="json")


def test_load_reference_values_file_reads_yaml_and_json(tmp_path):
    y = tmp_path / "rv.yaml"
    y.write_text(YAML_DOC)
    j = tmp_path / "rv.json"
    j.write_text(json.dumps(_good()))
    assert load_reference_values_file(y) == load_reference_values_file(j)


# --------------------------------------------------------------------------------------
# Trust Anchors.
# --------------------------------------------------------------------------------------
def _pem(key) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _ca(ca: bool = True) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME root")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_trust_anchors_from_pem_jwk_and_ca_certificates():
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    nums = p256.public_numbers()
    doc = {
        "format": "devattest.trust-anchors/v1",
        "keys": [
            {"instance_id": "01" + "ab" * 32, "public_key": _pem(p256),
             "manufacturer": "acme", "hardware_backed": True, "label": "dev-1"},
            {"kid": "0102", "jwk": {"kty": "EC", "crv": "P-256",
                                     "x": _b64u(nums.x.to_bytes(32, "big")),
                                     "y": _b64u(nums.y.to_bytes(32, "big"))}},
            {"instance_id": "01" + "cd" * 32, "jwk": {"kty": "OKP", "crv": "Ed25519",
                                                     "x": _b64u(ed.public_bytes_raw())}},
            {"kid": "03", "jwk": {"kty": "oct", "k": _b64u(b"k" * 32)}},
        ],
        "certificates": [{"certificate": _ca(), "owner": "fleet-ops"}],
    }
    ta = parse_trust_anchors(doc)
    a = ta.by_instance_id(bytes.fromhex("01" + "ab" * 32))
    assert a is not None and a.public_key == p256
    assert a.authority == "manufacturer:acme" and a.hardware_backed and a.label == "dev-1"
    b = ta.by_kid(b"\x01\x02")
    assert b is not None and b.public_key.public_numbers() == nums
    c = ta.by_instance_id(bytes.fromhex("01" + "cd" * 32))
    assert c is not None and c.public_key.public_bytes_raw() == ed.public_bytes_raw()
    d = ta.by_kid(b"\x03")
    assert d is not None and d.public_key == b"k" * 32
    assert ta.certificates[0].authority == "owner:fleet-ops"


def test_trust_anchor_private_pem_key_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    err = _schema_error({"keys": [{"instance_id": "01", "public_key": pem}]},
                        parse=parse_trust_anchors)
    assert err.path == "keys[0].public_key" and "private key" in err.message


def test_trust_anchor_private_jwk_is_refused():
    err = _schema_error({"keys": [{"kid": "01", "jwk": {"kty": "EC", "crv": "P-256", "x": "a",
                                                        "y": "b", "d": "c"}}]},
                        parse=parse_trust_anchors)
    assert err.path == "keys[0].jwk.d"


def test_trust_anchor_jwk_point_off_curve_is_refused():
    err = _schema_error({"keys": [{"kid": "01", "jwk": {"kty": "EC", "crv": "P-256",
                                                        "x": _b64u(b"\x01" * 32),
                                                        "y": _b64u(b"\x01" * 32)}}]},
                        parse=parse_trust_anchors)
    assert err.path == "keys[0].jwk"


def test_trust_anchor_short_mac_key_is_refused():
    err = _schema_error({"keys": [{"kid": "01", "jwk": {"kty": "oct", "k": _b64u(b"k" * 8)}}]},
                        parse=parse_trust_anchors)
    assert err.path == "keys[0].jwk.k"


def test_trust_anchor_key_without_lookup_identity_is_refused():
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    err = _schema_error({"keys": [{"public_key": _pem(p256)}]}, parse=parse_trust_anchors)
    assert err.path == "keys[0]"


def test_trust_anchor_duplicate_instance_id_is_refused():
    p256 = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    err = _schema_error({"keys": [{"instance_id": "01", "public_key": p256},
                                  {"instance_id": "01", "public_key": p256}]},
                        parse=parse_trust_anchors)
    assert err.path == "keys[1].instance_id"


def test_leaf_certificate_is_refused_as_a_ca_anchor():
    err = _schema_error({"certificates": [{"certificate": _ca(ca=False),
                                           "manufacturer": "acme"}]},
                        parse=parse_trust_anchors)
    assert err.path == "certificates[0].certificate" and "not a CA" in err.message


def test_ca_certificate_needs_manufacturer_or_owner():
    err = _schema_error({"certificates": [{"certificate": _ca()}]}, parse=parse_trust_anchors)
    assert err.path == "certificates[0]"


def test_empty_trust_anchor_document_is_refused():
    assert _schema_error({}, parse=parse_trust_anchors).path == "$"


def test_load_trust_anchors_file(tmp_path):
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    f = tmp_path / "ta.yaml"
    f.write_text(yaml.safe_dump({"keys": [{"instance_id": "01ff", "public_key": _pem(p256)}]}))
    assert load_trust_anchors_file(f).by_instance_id(b"\x01\xff") is not None
