"""Strict CBOR decoding for provisioning input (CoRIM, CoMID, COSE headers).

Every decoding failure becomes a :class:`~devattest.errors.CorimMalformed` whose ``reason``
names the defect. Decoding goes through :func:`devattest.cose.strict_loads` (size, depth,
item count, duplicate keys, trailing bytes, integer size), which returns the same data model
(lists and dicts) on cbor2 5 and 6.
"""

from __future__ import annotations

from typing import Any

from devattest import errors
from devattest.cose import strict_loads
from devattest.model import DecodeLimits

#: Bounds for provisioning documents: CoRIMs are larger than Evidence (many CoMIDs,
#: certificates) but still bounded. Each nested CoMID is decoded under the same bounds.
CORIM_LIMITS = DecodeLimits(
    max_token_size=1024 * 1024,
    max_depth=24,
    max_container_items=4096,
    max_chain_length=8,
)

_EVIDENCE_TO_REASON: dict[type[errors.EvidenceError], str] = {
    errors.TokenTooLarge: "too_large",
    errors.NestingTooDeep: "too_deep",
    errors.DuplicateMapKey: "duplicate_map_key",
    errors.TrailingBytes: "trailing_bytes",
    errors.TruncatedEvidence: "truncated",
    errors.InvalidCbor: "invalid_cbor",
    errors.IntegerTooLarge: "integer_too_large",
}


#: Largest integer a CoRIM field may hold where devattest keeps or prints it (measurement
#: keys, versions, SVNs, layers): an unsigned 64-bit value.
MAX_UINT = 2**64 - 1
def decode(data: bytes, *, limits: DecodeLimits, what: str) -> Any:
    """Decode one CBOR item from ``data`` under ``limits``.

    Raises:
        CorimMalformed: the bytes are not one well-formed CBOR item within the limits.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise errors.CorimMalformed(f"{what}: expected bytes", reason="not_bytes")
    data = bytes(data)
    try:
        return strict_loads(data, limits=limits)
    except errors.EvidenceError as exc:
        reason = next((r for t, r in _EVIDENCE_TO_REASON.items() if isinstance(exc, t)),
                      "invalid_cbor")
        raise errors.CorimMalformed(f"{what}: {exc.message}", reason=reason) from exc
