"""The leaf checks of chain steps 3 and 5, pinned alone (issue 14). A leaf with CA
basic constraints that otherwise looks exactly like an attestation key (digitalSignature-only
key usage, the attestation key purpose) must be refused as a leaf. Path validation does not
stand in for it: the end-entity policy permits any extension."""

from __future__ import annotations

from cryptography import x509

from devattest.crypto.chain import validate_chain
from devattest.errors import KeyPurposeError
from tests.unit.crypto.conftest import NOW, der
from tests.unit.crypto.test_chain import (
    ATTEST_EKU,
    LEAF_BC,
    LEAF_KU,
    _custom_cert,
    _new_key,
    _raises_exactly,
)


def test_leaf_with_ca_basic_constraints_and_attestation_usages_is_not_an_attestation_key(
        acme, anchors) -> None:
    ca_bc = (x509.BasicConstraints(ca=True, path_length=0), True)
    leaf = _custom_cert(acme.issuing, "a CA posing as a device", _new_key().public_key(),
                        extensions=[ca_bc, LEAF_KU, ATTEST_EKU])
    chain = (der(leaf), der(acme.issuing.certificate))
    err = _raises_exactly(KeyPurposeError, validate_chain, chain, anchors, now=NOW)
    assert err.step == "3" and "leaf is a CA certificate" in str(err)
    # The same leaf with end-entity basic constraints is an attestation key.
    good = _custom_cert(acme.issuing, "a device", _new_key().public_key(),
                        extensions=[LEAF_BC, LEAF_KU, ATTEST_EKU])
    validate_chain((der(good), der(acme.issuing.certificate)), anchors, now=NOW)


def test_leaf_without_key_usage_is_not_an_attestation_key(acme, anchors) -> None:
    """RFC 5280 4.2.1.3: with no KeyUsage the key may be used for anything, certificate
    signing included; an attestation key must say digitalSignature (only)."""
    leaf = _custom_cert(acme.issuing, "no key usage", _new_key().public_key(),
                        extensions=[LEAF_BC, ATTEST_EKU])
    err = _raises_exactly(KeyPurposeError, validate_chain,
                          (der(leaf), der(acme.issuing.certificate)), anchors, now=NOW)
    assert err.step == "5" and "no KeyUsage" in str(err)
