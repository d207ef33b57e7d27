"""Strict CBOR decoding under DecodeLimits. (To be implemented.)"""

from __future__ import annotations

from typing import Any

from devattest.model import DecodeLimits


def strict_loads(data: bytes, *, limits: DecodeLimits) -> Any:
    raise NotImplementedError
