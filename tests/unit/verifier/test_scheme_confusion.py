"""Scheme confusion (issue 13 item 9): a token is appraised by the scheme its profile
belongs to, or refused; a profile no scheme knows is never affirmed.

The media type (from the caller, never from the token alone) selects the scheme; step 5.7
refuses a token whose profile that scheme does not appraise.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.errors import ProfileMismatch, UnknownProfile
from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
    ar4si,
)
from devattest.policy import AllOf, AllowUnappraisedSoftware, DefaultPolicy
from devattest.schemes import SchemeRegistry, default_registry
from devattest.schemes.eat import EatScheme, create_eat
from devattest.schemes.psa import MEDIA_TYPE_PSA, PROFILE_RFC9783, create_psa_token
from devattest.verifier import verify, verify_strict

EAT = "application/eat+cwt"
NOW = 1_800_000_000
NONCE = bytes(range(32))
KEY = ec.generate_private_key(ec.SECP256R1())
ANCHORS = TrustAnchors.of([KeyAnchor(KEY.public_key(), label="device key")])
#: Every policy an operator could use to let it through: signature-only included.
LENIENT = AllOf([DefaultPolicy(), AllowUnappraisedSoftware()])
BL = hashlib.sha256(b"bl").digest()
REFS = ReferenceValues.of([ReferenceValueSet(class_id=b"\x11" * 32, components=(
    ComponentReference("BL", frozenset({BL})),))])


def psa_token(*, tagged: bool = True) -> bytes:
    return create_psa_token({
        "profile_id": PROFILE_RFC9783, "client_id": 1, "security_lifecycle": 0x3000,
        "implementation_id": b"\x11" * 32, "boot_seed": b"\x22" * 32,
        "instance_id": b"\x01" + b"\x33" * 32, "challenge": NONCE,
        "sw_components": [{"measurement_type": "BL", "measurement_value": BL,
                           "signer_id": b"\x44" * 32}],
    }, KEY, tagged=tagged)


def appraise(token: bytes, media_type: str, *, refs: ReferenceValues | None = REFS,
             registry: SchemeRegistry | None = None) -> tuple[Status, list[str]]:
    r = verify(token, media_type=media_type, expected_nonce=NONCE, trust_anchors=ANCHORS,
               reference_values=refs, policy=LENIENT, now=NOW, registry=registry)
    return r.status, [code for code, _ in r.reasons]


def test_psa_token_is_affirmed_by_the_psa_scheme() -> None:
    # The control: the same token under its own media type affirms (with its refvals).
    assert appraise(psa_token(), MEDIA_TYPE_PSA) == (Status.AFFIRMING, [])


@pytest.mark.parametrize("tagged", [True, False])
def test_psa_profile_token_sent_as_generic_eat_is_refused_not_appraised_by_eat(
        tagged: bool) -> None:
    # The generic EAT scheme would skip every PSA rule (boot seed, lifecycle, client ID,
    # Instance ID binding) and affirm: the profile belongs to the psa scheme, so refuse.
    status, codes = appraise(psa_token(tagged=tagged), EAT)
    assert (status, codes) == (Status.CONTRAINDICATED, ["profile_mismatch"])


def test_profile_mismatch_names_both_schemes_and_sets_configuration() -> None:
    r = verify(psa_token(tagged=False), media_type=EAT, expected_nonce=NONCE,
               trust_anchors=ANCHORS, reference_values=REFS, policy=LENIENT, now=NOW)
    (sub,) = r.submods.values()
    (reason,) = sub.reasons
    assert "psa scheme" in reason[1] and "eat scheme" in reason[1]
    assert PROFILE_RFC9783 in reason[1]
    assert sub.failed_step == "5.7"
    assert sub.trust_vector.configuration == ar4si.UNSUPPORTABLE_CONFIG
    with pytest.raises(ProfileMismatch):
        verify_strict(psa_token(tagged=False), media_type=EAT, expected_nonce=NONCE,
                      trust_anchors=ANCHORS, reference_values=REFS, policy=LENIENT, now=NOW)


@pytest.mark.parametrize("profile", ["tag:example.com,2025:unknown-profile",
                                     "http://arm.com/CCA-SSD/1.0.0"])
def test_token_with_a_profile_no_scheme_knows_is_never_affirmed(profile: str) -> None:
    token = create_eat({"eat_nonce": NONCE, "ueid": b"\x01" + b"\x07" * 32,
                        "eat_profile": profile}, KEY)
    status, codes = appraise(token, EAT, refs=None)
    assert (status, codes) == (Status.CONTRAINDICATED, ["unknown_profile"])
    with pytest.raises(UnknownProfile, match="no evidence scheme appraises"):
        verify_strict(token, media_type=EAT, expected_nonce=NONCE, trust_anchors=ANCHORS,
                      reference_values=None, policy=LENIENT, now=NOW)


def test_psa_profile_is_unknown_to_a_registry_without_the_psa_scheme() -> None:
    status, codes = appraise(psa_token(tagged=False), EAT,
                             registry=SchemeRegistry([EatScheme()]))
    assert (status, codes) == (Status.CONTRAINDICATED, ["unknown_profile"])


def test_generic_and_constrained_eat_are_appraised_by_the_eat_schemes() -> None:
    plain = create_eat({"eat_nonce": NONCE, "ueid": b"\x01" + b"\x07" * 32}, KEY)
    constrained = create_eat({"eat_nonce": NONCE, "ueid": b"\x01" + b"\x07" * 32,
                              "eat_profile": "urn:ietf:rfc:rfc9711"}, KEY)
    for token in (plain, constrained):
        assert appraise(token, EAT, refs=None) == (Status.AFFIRMING, [])
        assert appraise(token, 'application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"',
                        refs=None) == (Status.AFFIRMING, [])


def test_registry_maps_profiles_to_their_schemes() -> None:
    reg = default_registry()
    assert reg.schemes_for_profile(PROFILE_RFC9783) == ("psa",)
    assert set(reg.schemes_for_profile("urn:ietf:rfc:rfc9711")) == {"eat", "eat-rfc9711"}
    assert reg.schemes_for_profile("tag:example.com,2025:x") == ()
