"""One data model on cbor2 5 and cbor2 6.

cbor2 6 decodes the content of every tag into tuples and frozen maps; devattest reads lists
and dicts. ``strict_loads`` (and the COSE fast path that bypasses it) thaws tag content, so
every token and CoRIM reads the same on both. These tests run on whichever cbor2 is
installed (the suite runs on both); the ``_thaw`` tests build cbor2 6's frozen shapes by hand,
so they check the thawing on cbor2 5 too.
"""

from __future__ import annotations

from types import MappingProxyType

import cbor2
import pytest

from devattest.cose import (
    PrivateKeySigner,
    _cbor,
    create_sign1,
    decode_cose,
    strict_loads,
    verify_sign1,
)
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS
from devattest.provisioning import parse_corim
from tests._vectors import VECTORS


def _all_plain(value: object) -> bool:
    """No tuple and no frozen map anywhere (map keys included)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, tuple) or (isinstance(v, cbor2.CBORTag) and isinstance(v.value, tuple)):
            return False
        if isinstance(v, cbor2.CBORTag):
            stack.append(v.value)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif hasattr(v, "items"):  # a frozen map
            return False
    return True


def test_tag_content_decodes_to_lists_and_dicts_on_every_cbor2() -> None:
    data = cbor2.dumps(cbor2.CBORTag(18, [b"", {1: [2, {3: 4}]}, None,
                                          [1, cbor2.CBORTag(99, [2, {5: [6]}])]]))
    value = strict_loads(data, limits=DEFAULT_LIMITS)
    assert value == cbor2.CBORTag(18, [b"", {1: [2, {3: 4}]}, None,
                                       [1, cbor2.CBORTag(99, [2, {5: [6]}])]])
    assert type(value.value) is list
    assert type(value.value[1]) is dict
    assert type(value.value[3][1].value) is list
    assert _all_plain(value)


def test_self_described_cbor_decodes_to_lists_on_every_cbor2() -> None:
    # RFC 8949 section 3.4.6: tag 55799 marks CBOR; cbor2 returns its content.
    data = b"\xd9\xd9\xf7" + cbor2.dumps([1, {2: cbor2.CBORTag(99, [3])}])
    value = strict_loads(data, limits=DEFAULT_LIMITS)
    assert value == [1, {2: cbor2.CBORTag(99, [3])}]
    assert _all_plain(value)


def test_thaw_turns_cbor2_6_frozen_shapes_into_lists_and_dicts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What cbor2 6 hands the tag hook: the content of a tag as tuples and frozen maps (on
    # cbor2 5, which has no frozen map type, a mapping proxy stands in for one).
    if _cbor._FROZEN_MAP is None:
        monkeypatch.setattr(_cbor, "_FROZEN_MAP", MappingProxyType)
    frozen_map = _cbor._FROZEN_MAP
    assert frozen_map is not None
    frozen = cbor2.CBORTag(18, (b"", frozen_map({1: (2, frozen_map({3: 4}))}), None,
                                (1, cbor2.CBORTag(99, (2,)))))
    thawed = _cbor._thaw_tag(frozen, False)
    assert thawed == cbor2.CBORTag(18, [b"", {1: [2, {3: 4}]}, None,
                                        [1, cbor2.CBORTag(99, [2])]])
    assert _all_plain(thawed)
    # A tag decoded where a hashable value is needed stays frozen for its enclosing tag.
    assert _cbor._thaw_tag(frozen, True) is frozen


def test_psa_rfc9783_vector_verifies_on_the_installed_cbor2() -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    token = (VECTORS / "draft-psa-token" / "psa-sign1.cbor").read_bytes()
    key = load_pem_private_key((VECTORS / "draft-psa-token" / "tfm-es-iak.pem").read_bytes(),
                               password=None).public_key()
    msg = decode_cose(token, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    verify_sign1(msg, key, options=DEFAULT_OPTIONS)


@pytest.mark.parametrize("native", [True, False])
def test_cose_fast_path_reads_the_tagged_array_on_every_cbor2(native: bool,
                                                              signer: PrivateKeySigner) -> None:
    token = create_sign1(b"\xa1\x01\x02", signer, kid=b"k")
    saved = _cbor._scan
    if not native:
        _cbor._scan = None
    try:
        msg = decode_cose(token, limits=DEFAULT_LIMITS, options=DEFAULT_OPTIONS)
    finally:
        _cbor._scan = saved
    assert msg.kid == b"k" and msg.tagged


def test_veraison_valid_corim_parses_on_the_installed_cbor2() -> None:
    corim = parse_corim((VECTORS / "veraison-services-psa-iot" / "corim"
                         / "corim-psa-valid.cbor").read_bytes())
    assert corim.reference_values.sets
