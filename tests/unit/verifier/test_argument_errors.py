"""verify(): argument errors raise a typed UsageError (the caller's bug); Evidence errors
never raise, they are results (issue 13 item 11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devattest.errors import UsageError
from devattest.model import Status, TrustAnchors
from devattest.policy._builtin import DefaultPolicy
from devattest.schemes import SchemeRegistry
from devattest.schemes.tpm import MEDIA_TYPE, TpmQuoteScheme
from devattest.verifier import verify, verify_strict
from tests.unit.tpm._build import build

REG = SchemeRegistry([TpmQuoteScheme()])
BUILT = build()


def _verify(fn=verify, *, evidence: bytes = BUILT.evidence, nonce: object = BUILT.nonce,
            now: object = 0) -> object:
    return fn(evidence, media_type=MEDIA_TYPE, expected_nonce=nonce,  # type: ignore[arg-type]
              trust_anchors=TrustAnchors.of(keys=[BUILT.anchor]), reference_values=None,
              policy=DefaultPolicy(), now=now, registry=REG)  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [verify, verify_strict])
@pytest.mark.parametrize(("nonce", "text"), [(b"", "of length 0"), (None, "got NoneType"),
                                             ("nonce", "got str")])
def test_verify_with_empty_nonce_raises_usage_error_not_a_bare_type_error(fn, nonce, text):
    with pytest.raises(UsageError, match="freshness is not optional") as info:
        _verify(fn, nonce=nonce)
    assert text in info.value.message
    assert isinstance(info.value, ValueError) and info.value.code == "usage_error"


@pytest.mark.parametrize("now", [datetime(2026, 1, 1), "2026-01-01", True])
def test_verify_with_naive_or_non_time_now_raises_instead_of_a_malfunction_result(now):
    # A naive datetime used to reach the pipeline and come back as a "verifier malfunction"
    # result: a caller's bug recorded as if the device had been appraised.
    with pytest.raises(UsageError, match="now must be"):
        _verify(now=now)


def test_evidence_errors_never_raise_from_verify_they_are_results():
    for evidence in (b"", b"\xff" * 40, BUILT.evidence[:-5], b"\xa0"):
        result = _verify(evidence=evidence, now=datetime(2026, 1, 1, tzinfo=UTC))
        assert result.status is Status.CONTRAINDICATED  # type: ignore[attr-defined]
        (sub,) = result.submods.values()  # type: ignore[attr-defined]
        assert sub.reasons and sub.reasons[0][0] != "verifier_malfunction"


def test_good_arguments_appraise():
    (sub,) = _verify().submods.values()  # type: ignore[attr-defined]
    assert sub.trust_vector.instance_identity == 2  # trustworthy instance: appraised
