"""The simulator's per-device PSA token template: only the nonce and the signature change."""

from __future__ import annotations

import dataclasses
import logging
import os

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devattest.attester.claims import psa_claims
from devattest.attester.evidence import instance_id_of
from devattest.lifecycle.scenario import Scenario
from devattest.schemes.psa import create_psa_token
from devattest.transport.simulator import _builder, build_fleet, device_state

NONCE_KEY = 10  # RFC 9783 section 4.1: psa-nonce (EAT nonce)
BOOT_SEED_KEY = 268


@pytest.fixture
def device() -> object:
    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    return build_fleet(Scenario(name="t", devices=2, adversaries=(), waves=()), None)[0]


def _verify(token: bytes, key: object) -> dict[int, object]:
    cose = cbor2.loads(token)
    protected, _, payload, sig = cose.value
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.public_key().verify(der, tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    claims: dict[int, object] = cbor2.loads(payload)
    return claims


def test_template_token_is_the_full_token_with_a_fresh_signature_over_each_nonce(
        device: object) -> None:
    dev = device
    build = _builder(dev)  # type: ignore[arg-type]
    n1, n2 = os.urandom(32), os.urandom(32)
    t1, _ = build(n1)
    t2, _ = build(n2)
    c1, c2 = _verify(t1, dev.se), _verify(t2, dev.se)  # type: ignore[attr-defined]
    assert (c1[NONCE_KEY], c2[NONCE_KEY]) == (n1, n2)
    full = create_psa_token(psa_claims(
        dataclasses.replace(dev.state, boot_seed=c1[BOOT_SEED_KEY]),  # type: ignore[attr-defined]
        nonce=n1, instance_id=instance_id_of(dev.se)), dev.se)  # type: ignore[attr-defined]
    assert t1[:-64] == full[:-64] and t1[-64:] != full[-64:]


def test_template_follows_a_firmware_update_and_other_nonce_sizes(device: object) -> None:
    dev = device
    build = _builder(dev)  # type: ignore[arg-type]
    before = _verify(build(os.urandom(32))[0], dev.se)  # type: ignore[attr-defined]
    dev.state = device_state(dev.model, "1.1",  # type: ignore[attr-defined]
                             Scenario(name="t", devices=2, adversaries=(), waves=()))
    after = _verify(build(os.urandom(32))[0], dev.se)  # type: ignore[attr-defined]
    assert before != after and before[NONCE_KEY] != after[NONCE_KEY]
    nonce64 = os.urandom(64)
    assert _verify(build(nonce64)[0], dev.se)[NONCE_KEY] == nonce64  # type: ignore[attr-defined]
