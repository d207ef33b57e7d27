"""Compact JSON for messages and stored documents: orjson when it can (about ten times
faster than the standard encoder), the standard encoder for what orjson refuses (integers
beyond 64 bits, keys that are not text or numbers). Both write the same JSON values; orjson
writes non-ASCII text as UTF-8 rather than ``\\u`` escapes."""

from __future__ import annotations

import json
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def compact_json(value: Any, *, sort_keys: bool = False, allow_nan: bool = True) -> bytes:
    """``value`` as compact UTF-8 JSON (keys sorted when asked, as for a canonical form).

    Raises:
        ValueError: ``allow_nan`` is False and the standard encoder met a non-finite float
            (orjson writes those as ``null``; callers that care convert them first).
    """
    try:
        return orjson.dumps(value, option=_SORTED if sort_keys else orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys,
                          ensure_ascii=False, allow_nan=allow_nan).encode("utf-8")
