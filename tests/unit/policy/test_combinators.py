"""AllOf / AnyOf: composition, trust-vector overrides, and failing closed."""

from __future__ import annotations

import pytest

from devattest.errors import ConfigurationError
from devattest.model import TrustVector
from devattest.policy import EMPTY_SET_REASON, AllOf, AnyOf, policy_ids
from tests.unit.policy._inputs import allow, deny, make_input


@pytest.mark.parametrize("combinator", [AllOf, AnyOf])
def test_empty_policy_set_is_refused_at_construction(combinator: type) -> None:
    with pytest.raises(ConfigurationError, match=EMPTY_SET_REASON):
        combinator([])


@pytest.mark.parametrize("combinator", [AllOf, AnyOf])
def test_empty_policy_set_that_slipped_through_fails_closed(combinator: type) -> None:
    policy = combinator([allow()])
    policy._policies = ()  # as if constructed around the check
    decision = policy.evaluate(make_input())
    assert decision.allow is False
    assert EMPTY_SET_REASON in decision.reasons


def test_all_of_allows_only_when_every_policy_allows() -> None:
    assert AllOf([allow(), allow()]).evaluate(make_input()).allow is True
    assert AllOf([allow(), deny("no")]).evaluate(make_input()).allow is False
    assert AllOf([deny("no"), allow()]).evaluate(make_input()).allow is False


def test_all_of_evaluates_every_policy_and_collects_reasons() -> None:
    a, b, c = deny("first"), allow(), deny("third")
    decision = AllOf([a, b, c]).evaluate(make_input())
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)
    assert decision.reasons == ("first", "third")


def test_all_of_passes_trust_vector_overrides_along() -> None:
    lowered = TrustVector(instance_identity=2, executables=33)
    first, second = allow(tv=lowered), allow()
    decision = AllOf([first, second]).evaluate(make_input())
    assert second.seen == [lowered]
    assert decision.trust_vector == lowered


def test_any_of_first_allowing_policy_decides() -> None:
    a, b, c = deny("a"), allow("b ok"), allow("c ok")
    decision = AnyOf([a, b, c]).evaluate(make_input())
    assert decision.allow is True and decision.reasons == ("b ok",)
    assert c.calls == 0


def test_any_of_denies_when_none_allows_with_every_reason() -> None:
    decision = AnyOf([deny("a"), deny("b")]).evaluate(make_input())
    assert decision.allow is False and decision.reasons == ("a", "b")


def test_any_of_denial_keeps_the_least_trusting_override() -> None:
    decision = AnyOf([deny(tv=TrustVector(executables=33, hardware=2)),
                      deny(tv=TrustVector(executables=96, configuration=2))]
                     ).evaluate(make_input())
    assert decision.trust_vector == TrustVector(executables=96, hardware=2, configuration=2)


def test_nested_combinators_and_policy_ids() -> None:
    policy = AllOf([allow(pid="a"), AnyOf([deny(pid="b"), allow(pid="c")])])
    assert policy.evaluate(make_input()).allow is True
    assert policy.policy_id == "all-of(a, any-of(b, c))"
    assert policy_ids(policy) == ("a", "b", "c")
    assert AllOf([allow()], policy_id="mine").policy_id == "mine"
