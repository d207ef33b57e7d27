"""The built-in policies."""

from __future__ import annotations

import logging

import pytest

from devattest.errors import ConfigurationError
from devattest.model import Status, TrustVector
from devattest.policy import (
    DefaultPolicy,
    RequireHardwareBackedKey,
    RequireReferenceValues,
    RequireTrustVector,
    UnsafeNoOp,
)
from tests.unit.policy._inputs import make_input


def test_default_policy_allows_affirming_and_warning() -> None:
    assert DefaultPolicy().evaluate(make_input()).allow is True
    warn = TrustVector(instance_identity=2, executables=33)
    assert DefaultPolicy().evaluate(make_input(tv=warn)).allow is True


def test_default_policy_denies_any_contraindicated_claim() -> None:
    tv = TrustVector(instance_identity=99, executables=96, hardware=2)
    decision = DefaultPolicy().evaluate(make_input(tv=tv))
    assert decision.allow is False
    assert decision.reasons == ("instance-identity is contraindicated (99)",
                                "executables is contraindicated (96)")


def test_require_hardware_backed_key() -> None:
    assert RequireHardwareBackedKey().evaluate(make_input()).allow is True
    decision = RequireHardwareBackedKey().evaluate(make_input(hardware_backed=False))
    assert decision.allow is False and "not hardware-backed" in decision.reasons[0]


def test_require_reference_values() -> None:
    assert RequireReferenceValues().evaluate(make_input()).allow is True
    assert RequireReferenceValues().evaluate(make_input(matched=False)).allow is False


@pytest.mark.parametrize(("value", "minimum", "allowed"), [
    (2, "affirming", True), (33, "affirming", False), (None, "affirming", False),
    (33, "warning", True), (96, "warning", False), (0, "warning", False),
    (None, "none", True), (96, "none", False), (0, Status.NONE, True),
    (-1, "none", True), (99, "contraindicated", True),
])
def test_require_trust_vector_minimum(value: int | None, minimum: str, allowed: bool) -> None:
    policy = RequireTrustVector({"executables": minimum})
    tv = TrustVector(instance_identity=2, executables=value)
    assert policy.evaluate(make_input(tv=tv)).allow is allowed


def test_require_trust_vector_names_each_shortfall() -> None:
    policy = RequireTrustVector({"instance-identity": "affirming", "file_system": "warning"})
    decision = policy.evaluate(make_input(tv=TrustVector(instance_identity=97)))
    assert decision.reasons == (
        "instance-identity is contraindicated (97), the minimum is affirming",
        "file-system is absent, the minimum is warning")
    assert policy.policy_id.endswith("file-system>=warning,instance-identity>=affirming")


@pytest.mark.parametrize("minimums", [{}, {"kernel": "affirming"}, {"hardware": "great"}])
def test_require_trust_vector_rejects_bad_configuration(minimums: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        RequireTrustVector(minimums)


def test_unsafe_no_op_warns_on_every_use(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        policy = UnsafeNoOp()
        for _ in range(3):
            assert policy.evaluate(make_input(tv=TrustVector(executables=96))).allow is True
    uses = [r for r in caplog.records if "UnsafeNoOp policy used" in r.getMessage()]
    assert len(uses) == 3
    assert any("constructed" in r.getMessage() for r in caplog.records)
