"""The exact-type fast path of ``json_document`` gives the documented conversion for every
value a decoded claims set can hold (the general isinstance rules are the reference)."""

from __future__ import annotations

import json
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from devattest.policy._document import _json_document_general, json_document


def _reference(value: Any) -> Any:
    # The general rules applied all the way down (no fast path at any depth).
    if isinstance(value, dict):
        return {_key(k): _reference(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _reference(value.value)}
    return _json_document_general(value)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bytes):
        return k.hex()
    return str(k)


values = st.recursive(
    st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=6), st.text(max_size=4),
              st.booleans(), st.none(), st.floats()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.integers(-5, 5), st.text(max_size=2),
                                  st.binary(max_size=2), st.booleans()), inner, max_size=4),
        st.builds(cbor2.CBORTag, st.integers(0, 2**20), inner)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_json_document_fast_path_equals_general_rules(value: Any) -> None:
    got = json_document(value)
    assert json.dumps(got, sort_keys=True) == json.dumps(_reference(value), sort_keys=True)
