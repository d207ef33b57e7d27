"""Type stub for the optional native strict-CBOR scanner (_cbor_scan.c)."""

from typing import Final

SCAN_NESTING_TOO_DEEP: Final[int]
SCAN_TOO_MANY_ITEMS: Final[int]
SCAN_DUPLICATE_MAP_KEY: Final[int]
SCAN_TRAILING_BYTES: Final[int]
SCAN_TRUNCATED: Final[int]
SCAN_INVALID_CBOR: Final[int]
SCAN_UNEXPECTED_TAG: Final[int]
SCAN_UNSUPPORTED_CBOR: Final[int]
SCAN_SLOW_PATH: Final[int]
SCAN_INTEGER_TOO_LARGE: Final[int]
MAP_PAIRS_MAX: Final[int]
SCAN_ABI: Final[int]
REFUSED_TAGS: Final[tuple[int, ...]]

def scan(data: bytes, max_depth: int, max_items: int, max_bignum_bits: int, /
         ) -> tuple[int, int] | None: ...
