"""Latest claims against the Reference Values: what the device page highlights."""

from __future__ import annotations

import base64
import json

import pytest

from devattest.dashboard.claims import annotated_claims, compare, ear_payload
from devattest.model import ComponentReference, ReferenceValues, ReferenceValueSet

IMPL = bytes(range(32))
GOOD_BL, GOOD_PROT, BAD = b"\xaa" * 32, b"\xbb" * 32, b"\xdd" * 32
SIGNER, OTHER_SIGNER = b"\xcc" * 32, b"\xee" * 32


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _refs(*, required_extra: bool = False) -> ReferenceValues:
    comps = [ComponentReference("BL", frozenset({GOOD_BL}), frozenset({SIGNER})),
             ComponentReference("PRoT", frozenset({GOOD_PROT}), frozenset({SIGNER}),
                                min_security_version=2)]
    if required_extra:
        comps.append(ComponentReference("ARoT", frozenset({b"\x01" * 32})))
    return ReferenceValues.of([ReferenceValueSet(IMPL, tuple(comps))])


def _claims(bl: bytes = GOOD_BL, signer: bytes = SIGNER, extra: bool = False) -> dict[str, object]:
    comps = [{"measurement_type": "BL", "measurement_value": _b64(bl), "signer_id": _b64(signer)},
             {"measurement_type": "PRoT", "measurement_value": _b64(GOOD_PROT),
              "signer_id": _b64(SIGNER), "security_version": 3}]
    if extra:
        comps.append({"measurement_type": "Debug", "measurement_value": _b64(b"\x02" * 32)})
    return {"profile": "tag:psacertified.org,2023:psa#tfm", "implementation_id": _b64(IMPL),
            "software_components": comps, "client_id": 1}


def test_shows_a_tampered_measurement_against_the_expected_digests() -> None:
    view = compare(_claims(bl=BAD), _refs())
    bl = view.components[0]
    assert bl.measurement_ok is False
    assert bl.measured == BAD.hex()
    assert bl.expected == (GOOD_BL.hex(),)
    assert view.components[1].measurement_ok is True
    assert view.mismatches == 1
    assert view.class_known and view.class_id == IMPL.hex()


def test_flags_an_unexpected_signer_an_unknown_component_and_a_missing_one() -> None:
    view = compare(_claims(signer=OTHER_SIGNER, extra=True), _refs(required_extra=True))
    by = {c.measurement_type: c for c in view.components}
    assert by["BL"].signer_ok is False and by["BL"].measurement_ok is True
    assert by["Debug"].unknown_component
    assert view.missing == ("ARoT",)
    assert view.mismatches == 3
    assert by["PRoT"].min_security_version == "2"


def test_class_without_reference_values_is_said_so_and_judges_nothing() -> None:
    view = compare(_claims(), ReferenceValues.of([]))
    assert not view.class_known
    assert all(c.measurement_ok is None for c in view.components)
    view = compare(_claims(), None)
    assert view.mismatches == 0


def test_other_claims_are_listed_without_the_compared_ones() -> None:
    names = [k for k, _ in compare(_claims(), _refs()).other]
    assert names == ["client_id"]


def test_reads_annotated_claims_from_an_ear_payload() -> None:
    payload = {"submods": {"psa": {"ear_devattest": {"annotated-evidence": {
        "claims": {"client_id": 1}}}}}}
    token = ".".join([_b64(b'{"alg":"ES256"}'), _b64(json.dumps(payload).encode()), "sig"])
    assert annotated_claims(ear_payload(token)) == ("psa", {"client_id": 1})
    assert annotated_claims({"submods": {"psa": {}}}) is None
    assert annotated_claims({}) is None


@pytest.mark.parametrize("token", ["", "a.b", "a.!!!.c", "a." + _b64(b"[1]") + ".c"])
def test_rejects_a_malformed_stored_ear(token: str) -> None:
    with pytest.raises(ValueError):
        ear_payload(token)
