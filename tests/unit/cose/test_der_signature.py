"""The byte-level r||s -> DER conversion on the verify path equals cryptography's encoding,
including leading zero bytes, a set top bit and zero integers (which must then fail)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from devattest.cose._algorithms import _der_signature


def _expected(sig: bytes, size: int) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:size], "big"),
                                int.from_bytes(sig[size:], "big"))


@st.composite
def raw_signatures(draw: st.DrawFn) -> tuple[bytes, int]:
    size = draw(st.sampled_from([32, 48, 66]))
    halves = []
    for _ in range(2):
        zeros = draw(st.integers(0, size))
        top = draw(st.sampled_from([b"", b"\x80", b"\x7f", b"\xff", b"\x01"]))
        rest = draw(st.binary(min_size=size, max_size=size))
        halves.append((b"\0" * zeros + top + rest)[:size])
    return halves[0] + halves[1], size


@settings(max_examples=500, deadline=None)
@given(raw_signatures())
def test_der_signature_matches_cryptography_encoding(case: tuple[bytes, int]) -> None:
    sig, size = case
    assert _der_signature(sig, size) == _expected(sig, size)


def test_der_signature_of_zero_integers_matches() -> None:
    for size in (32, 48, 66):
        zero = b"\0" * (2 * size)
        assert _der_signature(zero, size) == _expected(zero, size)
