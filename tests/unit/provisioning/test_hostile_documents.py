"""Hostile provisioning documents (issue 13, defect 4): each one once escaped the parsers as
RecursionError, ValueError, TypeError or cryptography's UnsupportedAlgorithm (a 500 from the
service); each must be refused with its document error and a reason that names it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from devattest._documents import MAX_DEPTH, loads_strict_json, loads_strict_yaml
from devattest.errors import CorimMalformed, CorimUnsupported, PolicyError, ProvisioningSchemaError
from devattest.policy import rego_policy_from_source
from devattest.provisioning import (
    loads_document,
    parse_corim,
    parse_reference_values,
    parse_trust_anchors,
)
from tests.unit.provisioning import _hostile as h


def _schema_error(text: bytes, *, fmt: str = "json", parse=parse_reference_values
                  ) -> ProvisioningSchemaError:
    with pytest.raises(ProvisioningSchemaError) as info:
        parse(loads_document(text, fmt=fmt))  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------------------
# Nesting.
# --------------------------------------------------------------------------------------
def test_json_nested_1000_deep_cannot_raise_recursion_error_in_provisioning():
    err = _schema_error(h.json_nested(1000))
    assert f"nested deeper than {MAX_DEPTH} levels" in err.message


def test_json_nested_100000_deep_is_refused_by_the_flat_prescan():
    err = _schema_error(h.json_nested(100_000))
    assert "nested deeper than" in err.message


def test_json_brackets_inside_strings_do_not_count_as_nesting():
    deep_text = '"' + "[{" * 5000 + '\\"' + '"'
    assert loads_strict_json(f'{{"a": [{deep_text}]}}') == {"a": ["[{" * 5000 + '"']}


def test_json_at_the_depth_bound_is_accepted_and_one_more_is_refused():
    assert loads_strict_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match="nested deeper than"):
        loads_strict_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_yaml_nested_50000_deep_cannot_raise_recursion_error_in_provisioning():
    err = _schema_error(h.yaml_flow_nested(50_000), fmt="yaml")
    assert f"nested deeper than {MAX_DEPTH} levels" in err.message


def test_yaml_nested_by_indentation_is_bounded_too():
    err = _schema_error(h.yaml_block_nested(5_000), fmt="yaml")
    assert "nested deeper than" in err.message


def test_yaml_billion_laughs_is_refused_before_any_expansion():
    err = _schema_error(h.yaml_billion_laughs(), fmt="yaml")
    assert "aliases are not allowed" in err.message


# --------------------------------------------------------------------------------------
# YAML scalars the safe constructors cannot build, and unbounded integers.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "reason"), [
    (b"classes: []\nwhen: 2001-13-45\n", "month must be in 1..12"),
    (b"classes: []\n? [a, b]\n: 1\n", "a mapping key must be a scalar"),
    (b"{[1]: 2}\n", "a mapping key must be a scalar"),
    (b"classes: []\nx: 1" + b"0" * 5000 + b"\n", "an integer longer than 64 characters"),
])
def test_yaml_scalar_that_python_cannot_build_is_a_schema_error_not_a_500(text, reason):
    assert reason in _schema_error(text, fmt="yaml").message


def test_yaml_base60_integer_cannot_burn_quadratic_cpu():
    started = time.perf_counter()
    err = _schema_error(h.yaml_base60_integer(300_000), fmt="yaml")
    assert "an integer longer than 64 characters" in err.message
    # Not a timing test: building this integer took ~50 s; refusing it is immediate. The
    # bound only catches the integer being built at all.
    assert time.perf_counter() - started < 30


def test_yaml_errors_are_always_yaml_errors():
    for text in ("a: 2001-02-30", "? {a: 1}\n: x", "a: 1" + ":1" * 100):
        with pytest.raises(yaml.YAMLError):
            loads_strict_yaml(text)


@pytest.mark.parametrize("value", [2**64, "0x1" + "0" * 16, 10**4000])
def test_reference_value_security_version_bignum_is_refused(value):
    err = _schema_error(h.reference_values({"min_security_version": value}))
    assert err.path == "classes[0].components[0].min_security_version"
    assert "64-bit" in err.message


@pytest.mark.parametrize("version", ["1.\u00b2", "9" * 5000, "1.٣"])
def test_reference_value_version_with_non_ascii_or_endless_digits_is_refused(version):
    err = _schema_error(h.reference_values({"min_version": version}))
    assert err.path == "classes[0].components[0].min_version"


# --------------------------------------------------------------------------------------
# Keys and certificates devattest cannot use.
# --------------------------------------------------------------------------------------
def test_trust_anchor_pem_key_on_unsupported_curve_is_a_schema_error():
    err = _schema_error(h.trust_anchor_key(h.unsupported_curve_pem()),
                        parse=parse_trust_anchors)
    assert err.path == "keys[0].public_key" and "unsupported key algorithm or curve" in err.message


def test_trust_anchor_ca_certificate_on_unsupported_curve_is_refused_at_provisioning():
    err = _schema_error(h.trust_anchor_ca(h.unsupported_curve_ca_pem()),
                        parse=parse_trust_anchors)
    assert err.path == "certificates[0].certificate"
    assert "unsupported key algorithm or curve" in err.message


def test_trust_anchor_ca_certificate_with_malformed_extension_is_a_schema_error():
    err = _schema_error(h.trust_anchor_ca(h.malformed_extension_ca_pem()),
                        parse=parse_trust_anchors)
    assert err.path == "certificates[0].certificate"
    assert "not a valid certificate" in err.message


@pytest.mark.parametrize("jwk", [
    {"kty": "EC", "crv": [1], "x": "AA", "y": "AA"},
    {"kty": "OKP", "crv": {"a": 1}, "x": "AA"},
], ids=["ec-curve-list", "okp-curve-map"])
def test_trust_anchor_jwk_with_a_non_string_curve_is_a_schema_error(jwk):
    doc = json.dumps({"keys": [{"kid": "01", "jwk": jwk}]}).encode()
    err = _schema_error(doc, parse=parse_trust_anchors)
    assert err.path == "keys[0].jwk.crv" and "expected a non-empty string" in err.message


# --------------------------------------------------------------------------------------
# CoRIM.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", [None, h.T(32, h.PSA)])
def test_corim_key_on_unsupported_curve_is_corim_unsupported(profile):
    with pytest.raises(CorimUnsupported) as info:
        parse_corim(h.corim_unsupported_curve(profile))
    assert info.value.reason == "key_algorithm"
    assert "1.2.840.10045.3.1.2" in info.value.message


@pytest.mark.parametrize(("data", "reason", "text"), [
    # Bignums beyond 64 bits are refused by the strict CBOR decoder itself (DecodeLimits
    # .max_bignum_bits), before any field check sees them.
    (h.corim_bignum_measurement_key(), "integer_too_large", "bignum of 20001 bits"),
    (h.corim_huge_oid_measurement_key(), "oid", "an OID is 1 to 64 bytes, got 20001"),
    (h.corim_huge_oid_profile(), "oid", "profile (3): an OID is 1 to 64 bytes"),
    (h.corim_bignum_tag_version(), "integer_too_large", "bignum of 20001 bits"),
    (h.corim_bignum_svn(), "integer_too_large", "bignum of 20001 bits"),
], ids=["bignum-mkey", "20kb-oid-mkey", "20kb-oid-profile",
        "bignum-tag-version", "bignum-svn"])
def test_corim_bignum_and_huge_oid_are_corim_malformed(data, reason, text):
    with pytest.raises(CorimMalformed) as info:
        parse_corim(data)
    assert info.value.reason == reason and text in info.value.message


@pytest.mark.parametrize(("oid", "text"), [
    (b"\x80\x01", "not minimally encoded"),
    (b"\x2a\x86", "ends inside an arc"),
    (b"\x2a" + b"\xff" * 10 + b"\x01", "wider than 64 bits"),
])
def test_corim_malformed_oid_measurement_key_is_refused(oid, text):
    with pytest.raises(CorimMalformed, match=text):
        parse_corim(h.corim({0: [h.refval_triple(h.measurement(h.T(111, oid)))]}))


def test_corim_ordinary_oid_measurement_key_still_reads():
    # 1.2.840.113549 (rsadsi), the usual encoding.
    data = h.corim({0: [h.refval_triple(h.measurement(h.T(111, bytes.fromhex("2a864886f70d"))))]})
    (comp,) = parse_corim(data).reference_values.sets[0].components
    assert comp.measurement_type == "1.2.840.113549"


# --------------------------------------------------------------------------------------
# Rego policies: rego-cpp crashes the whole process (SIGSEGV) on deep input.
# --------------------------------------------------------------------------------------
_REGO_PROBE = """
import sys
from devattest.errors import PolicyError
from devattest.policy import rego_policy_from_source
try:
    rego_policy_from_source(sys.stdin.read(), name="hostile.rego")
except PolicyError as exc:
    print("refused:", exc.message)
else:
    print("accepted")
"""


@pytest.mark.parametrize(("body", "reason"), [
    ("[" * 20_000 + "]" * 20_000, "nests brackets deeper than 32 levels"),
    ("1" + " + 1" * 12_000, "an expression of more than 256 operators"),
    ("input" + ".a" * 30_000, "an expression of more than 256 operators"),
    ("1\n" + "x := 1\n" * 12_000, "bytes; the limit is 65536"),
], ids=["20000-brackets", "12000-operators", "30000-dots", "84-kb"])
def test_hostile_rego_policy_cannot_crash_the_process(body, reason):
    # In a child process: without the bounds this test's process would die of SIGSEGV.
    source = "package devattest\nallow := " + body + "\n"
    proc = subprocess.run([sys.executable, "-c", _REGO_PROBE], input=source, text=True,
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert proc.stdout.startswith("refused:") and reason in proc.stdout, proc.stdout


def test_rego_brackets_in_strings_and_comments_do_not_count():
    source = ("package devattest\n# " + "[" * 100 + "\nx := \"" + "(" * 100 + "\"\n"
              "y := `" + "{" * 100 + "`\ndecision := {\"allow\": true, \"reasons\": []}\n")
    assert rego_policy_from_source(source, name="ok.rego").policy_id.startswith("rego:ok.rego")


def test_rego_policy_over_a_bound_is_a_policy_error():
    with pytest.raises(PolicyError, match="deeper than 32"):
        rego_policy_from_source("package devattest\nx := " + "(" * 40 + "1" + ")" * 40,
                                name="deep.rego")
