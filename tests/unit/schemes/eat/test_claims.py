"""RFC 9711 claim parsing: one test per rule, unknown claims kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devattest.errors import InvalidClaim
from devattest.schemes.eat import (
    DebugStatus,
    IntendedUse,
    Location,
    MeasurementResult,
    Version,
    first_non_preferred,
    parse_eat_claims,
)

N8 = b"\x01" * 8
UEID = b"\x01" + b"\x02" * 16


def parse(**claims: Any) -> Any:
    return parse_eat_claims({10: N8, **{int(k[1:]): v for k, v in claims.items()}})


def test_nonce_single_and_array() -> None:
    assert parse_eat_claims({10: N8}).nonce == (N8,)
    assert parse_eat_claims({10: [N8, b"\x02" * 64]}).nonce == (N8, b"\x02" * 64)


@pytest.mark.parametrize(("value", "message"), [
    (b"\x01" * 7, r"eat_nonce \(10\) must be 8 to 64 bytes, found 7"),
    (b"\x01" * 65, r"eat_nonce \(10\) must be 8 to 64 bytes, found 65"),
    ("text-nonce", r"eat_nonce \(10\) must be a byte string, found str"),
    ([N8], r"eat_nonce \(10\) array must hold two or more nonces"),
])
def test_nonce_rules(value: Any, message: str) -> None:
    with pytest.raises(InvalidClaim, match=message):
        parse_eat_claims({10: value})


def test_ueid_rules() -> None:
    assert parse(k256=UEID).ueid == UEID
    with pytest.raises(InvalidClaim, match=r"ueid \(256\) must be 7 to 33 bytes, found 6"):
        parse(k256=b"\x01" * 6)
    with pytest.raises(InvalidClaim, match=r"ueid \(256\) has unknown UEID type 0x04"):
        parse(k256=b"\x04" * 10)


# RFC 9711 section 4.2.1, Table 1: the identifier after the type byte has the type's length.
VALID_UEIDS = [b"\x01" + b"\xaa" * 16, b"\x01" + b"\xaa" * 24, b"\x01" + b"\xaa" * 32,
               b"\x02" + b"\xbb" * 6, b"\x02" + b"\xbb" * 8,
               b"\x03" + bytes([3, 5, 2, 0, 9, 9, 1, 0, 1, 2, 3, 4, 5, 6])]


@pytest.mark.parametrize("ueid", VALID_UEIDS)
def test_ueid_of_each_type_and_length_is_accepted(ueid: bytes) -> None:
    assert parse(k256=ueid).ueid == ueid
    assert parse(k257={"s": ueid}).sueids == {"s": ueid}


@pytest.mark.parametrize(("ueid", "message"), [
    (b"\x01" + b"\xaa" * 15, r"RAND UEID of 15 bytes .* requires 16 or 24 or 32"),
    (b"\x01" + b"\xaa" * 20, r"RAND UEID of 20 bytes"),
    (b"\x01" + b"\xaa" * 31, r"RAND UEID of 31 bytes"),
    (b"\x02" + b"\xbb" * 15, r"IEEE EUI UEID of 15 bytes .* requires 6 or 8"),
    (b"\x02" + b"\xbb" * 7, r"IEEE EUI UEID of 7 bytes"),
    (b"\x03" + b"\x01" * 15, r"IMEI UEID of 15 bytes .* requires 14"),
    (b"\x03" + b"\x01" * 13, r"IMEI UEID of 13 bytes"),
    (b"\x03" + b"35209900176148", r"not all decimal digit values"),  # ASCII digits
    (b"\x00" + b"\xaa" * 16, r"unknown UEID type 0x00"),
    (b"\x00" + b"\xaa" * 32, r"unknown UEID type 0x00"),
])
def test_ueid_of_the_wrong_length_for_its_type_is_refused(ueid: bytes, message: str) -> None:
    with pytest.raises(InvalidClaim, match=r"ueid \(256\) .*" + message):
        parse(k256=ueid)
    with pytest.raises(InvalidClaim, match=r"sueids \(257\) .*" + message):
        parse(k257={"s": ueid})


def test_sueids_map_of_ueids() -> None:
    assert parse(k257={"boot": UEID}).sueids == {"boot": UEID}
    with pytest.raises(InvalidClaim, match=r"sueids \(257\)"):
        parse(k257={})


@pytest.mark.parametrize("value", [b"\x01\x02\x03", b"\x00" * 16, 64242])
def test_oemid_forms(value: Any) -> None:
    assert parse(k258=value).oemid == value


def test_oemid_of_other_size_is_invalid() -> None:
    with pytest.raises(InvalidClaim, match=r"oemid \(258\) must be a PEN"):
        parse(k258=b"\x00" * 4)


def test_hwmodel_size() -> None:
    with pytest.raises(InvalidClaim, match=r"hwmodel \(259\) must be 1 to 32 bytes, found 33"):
        parse(k259=b"\x00" * 33)


def test_versions() -> None:
    c = parse(k260=["1.0"], k271=["3.1.4", 1], k270="os")
    assert c.hwversion == Version("1.0") and c.swversion == Version("3.1.4", 1)
    assert c.swname == "os"
    with pytest.raises(InvalidClaim, match=r"hwversion \(260\) must be \[version text"):
        parse(k260="1.0")


def test_unsigned_claims() -> None:
    assert parse(k261=100, k267=3).bootcount == 3
    with pytest.raises(InvalidClaim, match=r"uptime \(261\) must be an unsigned integer"):
        parse(k261=-1)


def test_oemboot_must_be_bool() -> None:
    with pytest.raises(InvalidClaim, match=r"oemboot \(262\) must be true or false"):
        parse(k262=1)


def test_dbgstat_values() -> None:
    assert parse(k263=0).dbgstat is DebugStatus.ENABLED
    with pytest.raises(InvalidClaim, match=r"dbgstat \(263\) must be a debug status 0 to 4"):
        parse(k263=5)


def test_location() -> None:
    loc = parse(k264={1: 51.5, 2: -0.12, 3: 10, 9: 5}).location
    assert loc == Location(latitude=51.5, longitude=-0.12, altitude=10.0, age=5)
    with pytest.raises(InvalidClaim, match=r"location \(264\) must have longitude \(2\)"):
        parse(k264={1: 51.5})


def test_profile_uri_or_oid() -> None:
    assert parse(k265="urn:ietf:rfc:rfc9711").profile == "urn:ietf:rfc:rfc9711"
    assert parse(k265=b"\x2b\x06\x01").profile == b"\x2b\x06\x01"
    with pytest.raises(InvalidClaim, match=r"eat_profile \(265\) must be a URI or an OID"):
        parse(k265=7)


def test_submods_kinds() -> None:
    c = parse(k266={"a": {262: True}, "b": b"\xd2\x84", "c": [-16, b"\x00" * 32]})
    assert c.submods["a"].claims.oemboot is True
    assert c.submods["b"].nested_token == b"\xd2\x84"
    assert c.submods["c"].detached_digest == (-16, b"\x00" * 32)
    with pytest.raises(InvalidClaim, match=r"submods \(266\) submodule 'x' is not"):
        parse(k266={"x": 5})


def test_submodule_claims_are_checked_too() -> None:
    with pytest.raises(InvalidClaim, match=r"dbgstat \(263\)"):
        parse(k266={"a": {263: 9}})


def test_bootseed_and_cti() -> None:
    c = parse(k268=b"\x01" * 32, k7=b"id")
    assert c.bootseed == b"\x01" * 32 and c.cti == b"id"


def test_dloas() -> None:
    (d,) = parse(k269=[["https://cert.example", "platform", "app"]]).dloas
    assert (d.registrar, d.platform_label, d.application_label) == (
        "https://cert.example", "platform", "app")
    with pytest.raises(InvalidClaim, match=r"dloas \(269\) entries must be"):
        parse(k269=[["only-one"]])


def test_manifests_and_measurements() -> None:
    c = parse(k272=[[258, b"\xa0"]], k273=[[258, b"\xa0"]])
    assert c.manifests[0].content_type == 258 and c.measurements[0].content == b"\xa0"
    with pytest.raises(InvalidClaim, match=r"measurements \(273\) content type must be"):
        parse(k273=[[70000, b"\xa0"]])


def test_measurement_results() -> None:
    (g,) = parse(k274=[["boot", [["bl", 1], ["os", 2], ["x", None]]]]).measres
    assert g.results == (("bl", MeasurementResult.SUCCESS), ("os", MeasurementResult.FAIL),
                         ("x", None))
    with pytest.raises(InvalidClaim, match=r"measres \(274\) unknown result 9"):
        parse(k274=[["boot", [["bl", 9]]]])


def test_intended_use() -> None:
    assert parse(k275=2).intuse is IntendedUse.REGISTRATION
    assert parse(k275=77).intuse == 77
    assert parse(k275="attest").intuse == "attest"
    with pytest.raises(InvalidClaim, match=r"intuse \(275\)"):
        parse(k275=b"\x01")


def test_cwt_claims() -> None:
    when = datetime(2027, 1, 1, tzinfo=UTC)
    c = parse(k1="iss", k2="sub", k3=["a", "b"], k4=2_000_000_000, k5=1.5, k6=when)
    assert (c.iss, c.sub, c.aud, c.exp, c.nbf) == ("iss", "sub", ("a", "b"), 2_000_000_000, 1)
    assert c.iat == int(when.timestamp())
    with pytest.raises(InvalidClaim, match=r"exp \(4\) must be a NumericDate"):
        parse(k4="tomorrow")
    with pytest.raises(InvalidClaim, match=r"aud \(3\)"):
        parse(k3=5)


def test_unknown_claims_are_kept_never_fatal() -> None:
    c = parse_eat_claims({10: N8, -70000: "x", 999: [1], "text-key": b""})
    assert c.unknown == {-70000: "x", 999: [1], "text-key": b""}


@pytest.mark.parametrize(("data", "problem"), [
    (bytes.fromhex("1817"), "argument at byte 0"),          # 23 in two bytes
    (bytes.fromhex("190017"), "argument at byte 0"),        # 23 in three bytes
    (bytes.fromhex("9f01ff"), "indefinite length"),         # indefinite array
    (bytes.fromhex("fb3ff0000000000000"), "float at byte 0"),  # 1.0 as a double
    (bytes.fromhex("a1015800"), "argument at byte 2"),      # empty bstr, long head
])
def test_preferred_serialization_violations(data: bytes, problem: str) -> None:
    found = first_non_preferred(data)
    assert found is not None and problem in found


@pytest.mark.parametrize("data", ["17", "1818", "190100", "f93c00", "fa47c35000",
                                  "a2016161820102", "c11a5bfd2a2e"])
def test_preferred_serialization_accepted(data: str) -> None:
    assert first_non_preferred(bytes.fromhex(data)) is None
