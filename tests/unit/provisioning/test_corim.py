"""CoRIM parsing: envelope, signatures, limits, PSA profile and generic CoMID rules."""

from __future__ import annotations

import base64
import datetime as dt

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from devattest import errors
from devattest.model import DecodeLimits
from devattest.provisioning import load_corim_file, parse_comid, parse_corim

T = cbor2.CBORTag
IMPL = b"acme-implementation-id-000000001"
IID = b"\x01" + b"\x11" * 32
SIGNER = b"\x22" * 32
D = b"\x33" * 32
PSA = "tag:arm.com,2025:psa#1.0.0"
KEY = ec.generate_private_key(ec.SECP256R1())
PUB_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sw(name: str = "BL", digests=((1, D),), signer: bytes = SIGNER, extra=None) -> dict:
    mval = {11: name, 13: [T(560, signer)], **(extra or {})}
    if digests is not None:
        mval[2] = [list(d) for d in digests]
    return {0: "psa.software-component", 1: mval}


def refval(measurements, cls=None, instance=None) -> list:
    env = {0: cls if cls is not None else {0: T(560, IMPL)}}
    if instance is not None:
        env[1] = instance
    return [env, measurements]


UEID = T(550, IID)


def attest_key(keys=None, instance=UEID, cls=None) -> list:
    env = {0: cls if cls is not None else {0: T(560, IMPL), 1: "ACME", 2: "RoadRunner"}}
    if instance is not None:
        env[1] = instance
    return [env, keys if keys is not None else [T(554, PUB_PEM)]]


def comid(triples: dict, tag_id="comid-1") -> bytes:
    return cbor2.dumps({1: {0: tag_id}, 4: triples})


def corim(*comids: bytes, profile: str | None = PSA, extra: dict | None = None) -> bytes:
    m = {0: "corim-1", 1: [T(506, c) for c in comids]}
    if profile is not None:
        m[3] = T(32, profile)
    m.update(extra or {})
    return cbor2.dumps(T(501, m))


def sign(payload: bytes, key=KEY, protected: dict | None = None) -> bytes:
    prot = {1: -7, 3: "application/rim+cbor", 8: cbor2.dumps({0: {0: "ACME Ltd."}})}
    if protected is not None:
        prot = protected
    pb = cbor2.dumps(prot)
    tbs = cbor2.dumps(["Signature1", pb, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    return cbor2.dumps(T(18, [pb, {}, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")]))


VALID = corim(comid({0: [refval([sw("BL"), sw("PRoT", digests=((1, b"\x44" * 32),))])],
                     3: [attest_key()]}))


def reason_of(exc_type, data: bytes, **kw) -> str:
    with pytest.raises(exc_type) as info:
        parse_corim(data, **kw)
    return info.value.reason


# --------------------------------------------------------------------------------------
# PSA profile.
# --------------------------------------------------------------------------------------
def test_psa_corim_gives_reference_values_and_keys():
    c = parse_corim(VALID)
    assert c.rules == "psa" and c.tag_ids == ("comid-1@0",)
    rvs = c.reference_values.for_class(IMPL)
    assert rvs is not None and [x.measurement_type for x in rvs.components] == ["BL", "PRoT"]
    assert rvs.components[0].measurement_values == {D}
    assert rvs.components[0].signer_ids == {SIGNER}
    anchor = c.trust_anchors.by_instance_id(IID)
    assert anchor is not None
    assert anchor.public_key.public_numbers() == KEY.public_key().public_numbers()
    assert "ACME RoadRunner" in anchor.label


def test_psa_legacy_impl_id_and_refval_id_are_read():
    m = {0: T(601, {1: "BL", 4: "1.2.0", 5: SIGNER}), 1: {2: [[1, D]]}}
    data = corim(comid({0: [refval([m], cls={0: T(600, IMPL)})]}),
                 profile="http://arm.com/psa/iot/1")
    (bl,) = parse_corim(data).reference_values.for_class(IMPL).components
    assert bl.measurement_type == "BL" and bl.min_version == "1.2.0"
    assert bl.signer_ids == {SIGNER}


def _case_id(value: object) -> str | None:
    """Test IDs without the CoRIM bytes: they hold freshly generated keys, and xdist workers
    must collect the same IDs."""
    return "corim" if isinstance(value, bytes) else None


@pytest.mark.parametrize(("data", "reason"), [
    (corim(comid({0: [refval([sw()], cls={1: "ACME"})]})), "psa_class_id_missing"),
    (corim(comid({0: [refval([sw()], cls={0: T(560, b"short")})]})), "psa_class_id_length"),
    (corim(comid({3: [attest_key(keys=[T(554, PUB_PEM), T(554, PUB_PEM)])]})),
     "psa_key_count"),
    (corim(comid({3: [attest_key(instance=T(550, b"\x02" + b"\x11" * 32))]})),
     "psa_instance_id"),
    (corim(comid({0: [refval([sw(signer=b"\x01" * 20)])]})), "psa_signer_id_length"),
    (corim(comid({0: [refval([sw(extra={15: 1})])]})), "psa_measurement_unsupported"),
    (corim(comid({0: [refval([{0: T(601, {1: "BL", 5: b"x"}), 1: {2: [[1, D]]}}])]})),
     "psa_refval_id"),
    (corim(comid({3: [[*attest_key(), {0: "thing"}]]})), "psa_key_conditions"),
], ids=_case_id)
def test_psa_profile_violations_each_have_their_reason(data, reason):
    assert reason_of(errors.CorimProfileViolation, data) == reason


def test_caller_can_force_psa_rules_on_a_corim_without_profile():
    data = corim(comid({0: [refval([sw()], instance=T(550, IID))]}), profile=None)
    assert parse_corim(data).rules == "generic"
    assert reason_of(errors.CorimProfileViolation, data, profile="psa") == "psa_refval_instance"


def test_psa_bad_digest_length_is_malformed():
    data = corim(comid({0: [refval([sw(digests=((1, b"\x00" * 31),))])]}))
    assert reason_of(errors.CorimMalformed, data) == "digest_length"


def test_psa_attest_key_that_is_not_a_key_is_malformed():
    data = corim(comid({3: [attest_key(keys=[T(554, "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                                   "-----END PUBLIC KEY-----")])]}))
    assert reason_of(errors.CorimMalformed, data) == "key_invalid"


# --------------------------------------------------------------------------------------
# Generic CoMIDs.
# --------------------------------------------------------------------------------------
def test_generic_alternatives_merge_to_the_weakest_floor():
    cls = {0: T(37, b"\x01" * 16), 2: "Gizmo"}
    ms = [{0: "fw", 1: {2: [[1, D]], 1: T(552, 5), 0: {0: "2.0.0"}}},
          {0: "fw", 1: {2: [[1, b"\x55" * 32]], 1: T(553, 3), 0: {0: "1.9.0"}}}]
    c = parse_corim(corim(comid({0: [refval(ms, cls=cls)]}), profile=None))
    (fw,) = c.reference_values.for_class(b"\x01" * 16).components
    assert fw.measurement_values == {D, b"\x55" * 32}
    assert fw.min_security_version == 3 and fw.min_version == "1.9.0"
    assert fw.signer_ids == frozenset()


def test_generic_alternative_without_digest_removes_the_digest_constraint():
    cls = {2: "Gizmo"}
    ms = [{0: "fw", 1: {2: [[1, D]]}}, {0: "fw", 1: {1: 7}}]
    c = parse_corim(corim(comid({0: [refval(ms, cls=cls)]}), profile=None))
    (fw,) = c.reference_values.for_class("Gizmo").components
    assert fw.measurement_values == frozenset()
    assert fw.min_security_version is None


def test_generic_attest_keys_from_base64_key_and_der_certificate():
    der = KEY.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(KEY.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(KEY, hashes.SHA256()))
    triples = {3: [
        [{0: {2: "Gizmo"}, 1: T(550, IID)}, [T(554, base64.b64encode(der).decode())]],
        [{0: {2: "Gizmo"}, 1: T(560, b"serial-42")},
         [T(562, cert.public_bytes(serialization.Encoding.DER))]],
        [{0: {2: "Gizmo"}}, [T(554, "unparsed, no instance")]],
    ]}
    c = parse_corim(corim(comid(triples), profile=None))
    assert c.trust_anchors.by_instance_id(IID) is not None
    assert c.trust_anchors.by_instance_id(b"serial-42") is not None
    assert any("no instance" in n for n in c.notes)


def test_generic_unsupported_key_type_is_refused():
    triples = {3: [[{1: T(550, IID)}, [T(558, {1: 2})]]]}
    assert reason_of(errors.CorimUnsupported, corim(comid(triples), profile=None)) == "key_type"


def test_parse_comid_accepts_a_506_wrapped_comid():
    raw = comid({0: [refval([sw()])]})
    assert parse_comid(cbor2.dumps(T(506, raw)), profile="psa").reference_values.for_class(IMPL)


# --------------------------------------------------------------------------------------
# Envelope, limits and validity.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "reason"), [
    (cbor2.dumps({0: "x"}), "corim_tag"),
    (cbor2.dumps(T(500, {})), "corim_tag"),
    (VALID + b"\x00", "trailing_bytes"),
    (VALID[:-5], "truncated"),
    (cbor2.dumps(T(501, {1: [T(506, comid({0: [refval([sw()])]}))]})), "corim_id"),
    (cbor2.dumps(T(501, {0: "x", 1: []})), "corim_tags"),
    (cbor2.dumps(T(501, {0: "x", 1: [T(999, b"")]})), "tag_type"),
    (cbor2.dumps(T(501, {0: "x", 1: [T(506, {})]})), "comid_not_bstr"),
    (cbor2.dumps(T(501, {0: "x", 1: [T(506, b"\xff\xff")]})), "invalid_cbor"),
    (corim(cbor2.dumps({4: {0: [refval([sw()])]}})), "comid_tag_identity"),
    (corim(cbor2.dumps({1: {0: "t"}, 4: {}})), "comid_triples"),
    (corim(comid({0: [[{}, [sw()]]]})), "environment"),
    (corim(comid({0: [refval([{0: "psa.software-component"}])]})), "measurement_map"),
    (cbor2.dumps(T(501, {0: 5, 1: [T(506, comid({0: [refval([sw()])]}))]})), "corim-id_type"),
], ids=_case_id)
def test_malformed_corims_are_refused_with_their_reason(data, reason):
    assert reason_of(errors.CorimMalformed, data) == reason


def test_oversized_corim_is_refused():
    assert reason_of(errors.CorimMalformed, VALID,
                     limits=DecodeLimits(max_token_size=len(VALID) - 1)) == "too_large"


def test_deeply_nested_comid_is_refused():
    deep: object = 0
    for _ in range(200):
        deep = [deep]
    data = corim(cbor2.dumps({1: {0: "t"}, 4: {99: [deep]}}))
    assert reason_of(errors.CorimMalformed, data) == "too_deep"


def test_rim_validity_is_checked_against_now():
    data = corim(comid({0: [refval([sw()])]}), extra={4: {0: 1_700_000_000, 1: 1_800_000_000}})
    inside = dt.datetime.fromtimestamp(1_750_000_000, tz=dt.UTC)
    c = parse_corim(data, now=inside)
    assert c.not_after == dt.datetime.fromtimestamp(1_800_000_000, tz=dt.UTC)
    after = dt.datetime.fromtimestamp(1_900_000_000, tz=dt.UTC)
    assert reason_of(errors.CorimNotValid, data, now=after) == "not_valid_now"


def test_load_corim_file(tmp_path):
    f = tmp_path / "c.cbor"
    f.write_bytes(VALID)
    assert load_corim_file(f).reference_values.for_class(IMPL) is not None


# --------------------------------------------------------------------------------------
# Signed CoRIMs (section 4.2).
# --------------------------------------------------------------------------------------
def test_unsigned_corim_is_refused_when_signed_is_required():
    assert reason_of(errors.CorimSignatureRequired, VALID,
                     require_signed=True) == "signature_required"


def test_signed_corim_verifies_with_its_key():
    c = parse_corim(sign(VALID), verification_key=KEY.public_key(), require_signed=True)
    assert c.signed and c.verified and c.signer == "ACME Ltd."
    assert c.reference_values.for_class(IMPL) is not None


def test_signed_corim_with_wrong_key_is_refused():
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(errors.CorimSignatureInvalid):
        parse_corim(sign(VALID), verification_key=other)


def test_signed_corim_with_tampered_payload_is_refused():
    signed = bytearray(sign(VALID))
    i = signed.index(D)
    signed[i] ^= 1
    with pytest.raises(errors.CorimSignatureInvalid):
        parse_corim(bytes(signed), verification_key=KEY.public_key())


def test_signed_corim_without_key_is_parsed_but_not_verified():
    c = parse_corim(sign(VALID))
    assert c.signed and not c.verified
    assert reason_of(errors.CorimSignatureRequired, sign(VALID),
                     require_signed=True) == "signature_required"


@pytest.mark.parametrize(("protected", "reason"), [
    ({1: -7, 3: "application/cbor", 8: cbor2.dumps({0: {0: "A"}})}, "content_type"),
    ({1: -7, 3: "application/rim+cbor"}, "no_signer_meta"),
    ({3: "application/rim+cbor", 8: cbor2.dumps({0: {0: "A"}})}, "no_alg"),
    ({1: -7, 3: "application/rim+cbor", 8: cbor2.dumps({0: {}})}, "corim_meta"),
    ({1: -7, 3: "application/rim+cbor", 15: {2: "no iss"}}, "cwt_claims"),
])
def test_signed_corim_header_defects_are_refused(protected, reason):
    assert reason_of(errors.CorimMalformed, sign(VALID, protected=protected)) == reason


def test_signed_corim_with_cwt_claims_names_the_issuer():
    prot = {1: -7, 3: "application/rim+cbor", 15: {1: "ACME CWT", 4: 1_800_000_000}}
    c = parse_corim(sign(VALID, protected=prot), verification_key=KEY.public_key())
    assert c.signer == "ACME CWT" and c.verified
    late = dt.datetime.fromtimestamp(1_900_000_000, tz=dt.UTC)
    assert reason_of(errors.CorimNotValid, sign(VALID, protected=prot), now=late,
                     verification_key=KEY.public_key()) == "not_valid_now"


def test_signed_corim_payload_must_be_an_unsigned_corim():
    assert reason_of(errors.CorimMalformed, sign(cbor2.dumps({0: 1}))) == "payload_tag"


def test_hash_envelope_corim_is_unsupported():
    prot = {1: -7, 258: -16, 259: "application/rim+cbor", 15: {1: "A"}}
    assert reason_of(errors.CorimUnsupported, sign(b"\x00" * 32, protected=prot)) == \
        "detached_payload"


def test_duplicate_map_key_in_a_comid_is_refused():
    # A CoMID listing reference-triples twice: a second, laxer copy must not win silently.
    good = cbor2.dumps([refval([sw()])])
    dup = b"\xa2\x01" + cbor2.dumps({0: "t"}) + b"\x04\xa2\x00" + good + b"\x00" + good
    data = cbor2.dumps(T(501, {0: "x", 1: [T(506, dup)], 3: T(32, PSA)}))
    assert reason_of(errors.CorimMalformed, data) == "duplicate_map_key"
