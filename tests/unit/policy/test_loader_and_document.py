"""Policy files (load_policy, the spec format) and the documented input document."""

from __future__ import annotations

from pathlib import Path

import pytest

from devattest.errors import ConfigurationError, PolicyError
from devattest.model import TrustVector
from devattest.policy import (
    AllOf,
    AllowUnappraisedSoftware,
    AnyOf,
    DefaultPolicy,
    RegoPolicy,
    RequireHardwareBackedKey,
    RequireTrustVector,
    example_policy_source,
    load_policy,
    policy_from_spec,
    policy_input_document,
)
from tests.unit.policy._inputs import make_input


def test_input_document_shape() -> None:
    doc = policy_input_document(make_input())
    assert set(doc) == {
        "scheme", "media_type", "profile", "instance_id", "class_id", "security_lifecycle",
        "debug_enabled", "boot_count", "software_components", "claims", "annotations",
        "findings", "trust_vector", "status", "key", "reference_values_matched",
        "software_appraised"}
    assert doc["software_appraised"] is True
    assert policy_input_document(make_input(matched=False))["software_appraised"] is False
    assert doc["instance_id"] == "01" + "22" * 32 and doc["class_id"] == "7f" * 32
    assert doc["software_components"][0] == {
        "measurement_type": "BL", "measurement_value": "aa" * 32, "signer_id": "05" * 32,
        "version": "1.3.0", "security_version": None, "measurement_desc": None}
    assert doc["claims"] == {"265": "tag:psacertified.org,2023:psa#tfm", "-75008": "7f" * 32,
                             "nested": {"01": [1, "02"]}}
    assert doc["trust_vector"] == {"instance-identity": 2, "executables": 2, "hardware": 2}
    assert doc["status"] == "affirming"
    assert doc["findings"] == [{"claim": "configuration", "value": 32, "code": "lifecycle",
                                "message": "not secured"}]
    assert doc["key"] == {"hardware_backed": True, "authority": "", "label": "dev-1",
                          "kid": "6b", "instance_id": None}


def test_spec_builds_composed_built_ins() -> None:
    policy = policy_from_spec({"all_of": [
        {"require_hardware_backed_key": True},
        {"any_of": [{"min_trust": {"executables": "affirming"}}, {"default": True}]},
    ]})
    assert isinstance(policy, AllOf)
    assert isinstance(policy.policies[0], RequireHardwareBackedKey)
    inner = policy.policies[1]
    assert isinstance(inner, AnyOf) and isinstance(inner.policies[0], RequireTrustVector)
    assert isinstance(inner.policies[1], DefaultPolicy)
    assert policy.evaluate(make_input()).allow is True
    assert policy.evaluate(make_input(hardware_backed=False)).allow is False


def test_signature_only_appraisal_is_an_explicit_spec_node() -> None:
    policy = policy_from_spec({"all_of": [{"default": True},
                                          {"allow_unappraised_software": True}]})
    assert isinstance(policy, AllOf)
    assert isinstance(policy.policies[1], AllowUnappraisedSoftware)
    unappraised = policy.evaluate(make_input(matched=False))
    assert unappraised.allow is True and unappraised.signature_only is True
    assert policy.evaluate(make_input()).signature_only is False
    with pytest.raises(PolicyError, match="takes the value true"):
        policy_from_spec({"allow_unappraised_software": "yes"})


def test_signature_only_is_never_granted_by_a_denying_composition() -> None:
    policy = policy_from_spec({"all_of": [{"require_hardware_backed_key": True},
                                          {"allow_unappraised_software": True}]})
    decision = policy.evaluate(make_input(matched=False, hardware_backed=False))
    assert decision.allow is False and decision.signature_only is False


@pytest.mark.parametrize(("spec", "match"), [
    ({"all_of": []}, "empty policy set"),
    ({"any_of": []}, "empty policy set"),
    ({"min_trust": {}}, "at least one"),
    ({"min_trust": {"kernel": "affirming"}}, "unknown trust-vector claim"),
])
def test_spec_empty_or_misconfigured_fails_closed(spec: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        policy_from_spec(spec)


@pytest.mark.parametrize("spec", [
    {}, [], "default", {"default": True, "all_of": []}, {"default": "yes"},
    {"all_of": {"default": True}}, {"nope": True}, {"min_trust": ["executables"]},
    {"rego": {"file": "x.rego"}},
])
def test_malformed_spec_is_a_policy_error(spec: object) -> None:
    with pytest.raises(PolicyError):
        policy_from_spec(spec)


def test_load_rego_file(tmp_path: Path) -> None:
    path = tmp_path / "site.rego"
    path.write_text(example_policy_source())
    policy = load_policy(path)
    assert isinstance(policy, RegoPolicy)
    assert policy.policy_id.startswith("rego:site.rego@sha256:")
    assert policy.evaluate(make_input()).allow is True


def test_load_yaml_spec_with_a_relative_rego_file(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(example_policy_source())
    path = tmp_path / "policy.yaml"
    path.write_text("all_of:\n  - require_reference_values: true\n  - rego:\n"
                    "      file: p.rego\n")
    policy = load_policy(path)
    decision = policy.evaluate(make_input())
    assert decision.allow is True
    assert decision.trust_vector == TrustVector(instance_identity=2, executables=33,
                                                hardware=2)


def test_load_json_spec(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"min_trust": {"hardware": "affirming"}}')
    assert load_policy(path).evaluate(make_input()).allow is True


@pytest.mark.parametrize(("name", "text", "match"), [
    ("p.json", '{"default": true, "default": true}', "duplicate key"),
    ("p.json", "{", "not valid JSON"),
    ("p.yaml", "all_of: [", "not valid JSON/YAML"),
    ("p.yaml", "all_of: []", "empty policy set"),
    ("p.txt", "{}", ".rego, .json"),
    ("p.rego", "package devattest\ndecision := {", "does not compile"),
])
def test_bad_policy_file_is_a_policy_error(tmp_path: Path, name: str, text: str,
                                           match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PolicyError, match=match):
        load_policy(path)


def test_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.rego")
