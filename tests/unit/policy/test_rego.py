"""Rego policies: the bundle is built once, decisions are parsed strictly, and a broken
policy is a PolicyError (the operator's fault), never an allow."""

from __future__ import annotations

import json

import pytest
import regopy

import devattest.policy._rego as rego_module
from devattest.errors import PolicyError
from devattest.model import TrustVector
from devattest.policy import (
    RegoPolicy,
    example_policy_source,
    policy_input_document,
    rego_policy_from_source,
)
from tests.unit.policy._inputs import make_input

ECHO = """
package devattest
import rego.v1
decision := {"allow": true, "reasons": [json.marshal(input)]}
"""

HARDWARE = """
package devattest
import rego.v1
default allow := false
allow if input.key.hardware_backed
reasons contains "key is not hardware-backed" if not input.key.hardware_backed
decision := {"allow": allow, "reasons": reasons}
"""


def test_bundle_is_built_once_per_policy_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    real_build_bundle = rego_module.build_bundle
    real_interp_build = regopy.Interpreter.build

    def counting_build_bundle(*args: object, **kwargs: object) -> object:
        builds.append("build_bundle")
        return real_build_bundle(*args, **kwargs)  # type: ignore[arg-type]

    def counting_interp_build(self: regopy.Interpreter, *args: object) -> object:
        builds.append("Interpreter.build")
        return real_interp_build(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(rego_module, "build_bundle", counting_build_bundle)
    monkeypatch.setattr(regopy.Interpreter, "build", counting_interp_build)
    policy = RegoPolicy(HARDWARE, "test/hardware")
    assert builds == ["build_bundle", "Interpreter.build"]
    for i in range(50):
        assert policy.evaluate(make_input(hardware_backed=i % 2 == 0)).allow is (i % 2 == 0)
    assert builds == ["build_bundle", "Interpreter.build"]


def test_policy_sees_the_documented_input_document() -> None:
    pi = make_input()
    decision = RegoPolicy(ECHO, "test/echo").evaluate(pi)
    assert json.loads(decision.reasons[0]) == policy_input_document(pi)


def test_decision_reasons_and_trust_vector_override() -> None:
    src = """
    package devattest
    import rego.v1
    decision := {"allow": false, "reasons": ["b", "a"],
                 "trust_vector": {"instance-identity": 2, "executables": 33}}
    """
    decision = RegoPolicy(src, "t").evaluate(make_input())
    assert decision.allow is False and decision.reasons == ("b", "a")  # order kept
    assert decision.trust_vector == TrustVector(instance_identity=2, executables=33)


def test_rego_decision_may_accept_signature_only_appraisal_explicitly() -> None:
    src = """
    package devattest
    import rego.v1
    default unappraised := false
    unappraised if input.software_appraised == false
    decision := {"allow": true, "signature_only": unappraised}
    """
    policy = RegoPolicy(src, "t")
    assert policy.evaluate(make_input(matched=False)).signature_only is True
    assert policy.evaluate(make_input()).signature_only is False


def test_rego_signature_only_must_be_a_boolean() -> None:
    src = """
    package devattest
    import rego.v1
    decision := {"allow": true, "signature_only": "yes"}
    """
    with pytest.raises(PolicyError, match="signature_only must be true or false"):
        RegoPolicy(src, "t").evaluate(make_input())


def test_custom_query_and_data() -> None:
    src = """
    package site.policy
    import rego.v1
    verdict := {"allow": input.key.label in data.allowed_labels}
    """
    policy = RegoPolicy(src, "t", "data.site.policy.verdict",
                        data={"allowed_labels": ["dev-1"]})
    assert policy.evaluate(make_input()).allow is True


@pytest.mark.parametrize(("body", "match"), [
    ('decision := {"allowed": true}', "unknown decision member"),
    ('decision := {"allow": "yes"}', "allow must be true or false"),
    ('decision := {"allow": true, "reasons": "x"}', "list of strings"),
    ('decision := {"allow": true, "trust_vector": {"kernel": 2}}', "unknown trust-vector"),
    ('decision := {"allow": true, "trust_vector": {"hardware": 200}}', "-128..127"),
    ("decision := [true]", "not an object"),
    ("other := 1", "undefined"),
    ('decision := {"allow": true} if input.scheme == "tpm"', "undefined"),
    ("decision := 1 / 0", "failed to evaluate"),
    ('decision := to_number("not a number")', "failed to evaluate"),
])
def test_broken_policy_is_a_policy_error_not_an_allow(body: str, match: str) -> None:
    policy = RegoPolicy(f"package devattest\nimport rego.v1\n{body}\n", "t")
    with pytest.raises(PolicyError, match=match):
        policy.evaluate(make_input())


def test_conflicting_complete_rules_are_a_policy_error() -> None:
    src = """package devattest
import rego.v1
decision := {"allow": true} if input.scheme == "psa"
decision := {"allow": false} if input.scheme == "psa"
"""
    with pytest.raises(PolicyError, match="failed to evaluate"):
        RegoPolicy(src, "t").evaluate(make_input())


def test_policy_that_does_not_compile_is_refused_at_construction() -> None:
    with pytest.raises(PolicyError, match="does not compile"):
        RegoPolicy("package devattest\ndecision := {", "t")


def test_example_default_policy() -> None:
    policy = rego_policy_from_source(example_policy_source("default"), name="default.rego")
    assert policy.policy_id.startswith("rego:default.rego@sha256:")
    ok = policy.evaluate(make_input(authority="manufacturer:acme", hardware_backed=False))
    assert ok.allow is True
    # PRoT has no signer ID in the test input: executables drops to 33 (unrecognized).
    assert ok.trust_vector == TrustVector(instance_identity=2, executables=33, hardware=2)
    bad = policy.evaluate(make_input(tv=TrustVector(executables=96), matched=False,
                                     hardware_backed=False))
    assert bad.allow is False
    assert bad.reasons == (
        "executables is contraindicated",
        "the Reference Values were not found or not matched",
        "the attestation key is neither hardware-backed nor vouched for by a manufacturer")


def test_no_such_example_policy() -> None:
    with pytest.raises(PolicyError):
        example_policy_source("nope")
