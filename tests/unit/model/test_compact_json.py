"""compact_json: orjson's output where it can, the standard encoder's where orjson refuses,
and always the same JSON value as the standard encoder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devattest.model._json import compact_json

CASES: list[Any] = [
    {"b": 1, "a": [1, 2.5, None, True], "c": {"z": "é", "y": "\u2028"}},
    {"big": 2**70, "neg": -(2**65)},  # beyond 64 bits: orjson refuses, json writes them
    {1: "int key", "2": "text key"},
    [],
    "plain",
]


@pytest.mark.parametrize("value", CASES)
def test_same_json_value_as_the_standard_encoder(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    for sort_keys in (False, True):
        assert json.loads(compact_json(value, sort_keys=sort_keys)) == expected


def test_sorted_output_is_canonical_regardless_of_insertion_order() -> None:
    a = compact_json({"b": 1, "a": {"d": 2, "c": 3}}, sort_keys=True)
    b = compact_json({"a": {"c": 3, "d": 2}, "b": 1}, sort_keys=True)
    assert a == b == b'{"a":{"c":3,"d":2},"b":1}'


def test_integers_beyond_64_bits_are_written_exactly_not_dropped() -> None:
    assert compact_json({"n": 2**64 + 1}) == b'{"n":18446744073709551617}'
