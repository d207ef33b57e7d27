"""The minimal DER encoder/reader used for CSRs and TcbInfo."""

from __future__ import annotations

import pytest
from cryptography import x509

from devattest.crypto import _der
from devattest.errors import ProvisioningError


@pytest.mark.parametrize("dotted", ["1.2.840.10045.4.3.2", "2.23.133.5.4.1", "2.999.3",
                                    "2.25.247535724174575017682455909960595568484.1.1"])
def test_oid_round_trips_and_matches_cryptography(dotted: str) -> None:
    encoded = _der.oid(dotted)
    assert _der.decode_oid(_der.read_one(encoded, _der.TAG_OID)) == dotted
    # cryptography's own encoder (inside a Name) produces the same bytes.
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(dotted), "v")])
    assert encoded in name.public_bytes()


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, -1, -129, 2**64])
def test_integer_is_minimal_twos_complement(value: int) -> None:
    content = _der.read_one(_der.integer(value), _der.TAG_INTEGER)
    assert _der.decode_integer(content) == value
    if len(content) > 1:
        assert not (content[0] == 0 and content[1] < 0x80)
        assert not (content[0] == 0xFF and content[1] >= 0x80)


def test_long_lengths_round_trip() -> None:
    payload = b"x" * 300
    assert _der.read_one(_der.octet_string(payload), _der.TAG_OCTET_STRING) == payload


@pytest.mark.parametrize("bad", [
    b"\x04\x05abc",          # truncated
    b"\x04\x80abc\x00\x00",  # indefinite length
    b"\x04\x81\x03abc",      # non-minimal long form
    b"\x04\x01a\x00",        # trailing bytes (read_one)
    b"\x1f\x01\x01a",        # multi-byte tag
])
def test_reader_rejects_malformed_der(bad: bytes) -> None:
    with pytest.raises(ProvisioningError):
        _der.read_one(bad, _der.TAG_OCTET_STRING)


def test_reader_rejects_non_minimal_oid_arc() -> None:
    with pytest.raises(ProvisioningError):
        _der.decode_oid(b"\x2a\x80\x01")
