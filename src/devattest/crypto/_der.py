"""A minimal DER (ITU-T X.690) encoder and reader for the few structures ``cryptography``
cannot build for us: a CSR signed by an external signer and the TCG DICE TcbInfo extension.

Only definite-length, single-byte-tag forms are supported; the reader is strict (it rejects
indefinite lengths, non-minimal lengths and trailing bytes).
"""

from __future__ import annotations

from collections.abc import Iterator

from devattest.errors import ProvisioningError

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_UTF8_STRING = 0x0C
TAG_SEQUENCE = 0x30
TAG_SET = 0x31

#: Upper bound on what the reader accepts (an extension value, not a file).
_MAX_INPUT = 64 * 1024


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a single-byte ``tag`` (X.690 8.1)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def sequence(*items: bytes) -> bytes:
    """A DER SEQUENCE of already-encoded items."""
    return tlv(TAG_SEQUENCE, b"".join(items))


def integer(value: int) -> bytes:
    """A DER INTEGER (X.690 8.3: two's complement, minimal)."""
    length = max(1, (value.bit_length() + 8) // 8)
    return tlv(TAG_INTEGER, value.to_bytes(length, "big", signed=True))


def octet_string(value: bytes) -> bytes:
    """A DER OCTET STRING."""
    return tlv(TAG_OCTET_STRING, value)


def utf8_string(value: str) -> bytes:
    """A DER UTF8String."""
    return tlv(TAG_UTF8_STRING, value.encode("utf-8"))


def bit_string(value: bytes) -> bytes:
    """A DER BIT STRING with no unused bits."""
    return tlv(TAG_BIT_STRING, b"\x00" + value)


def oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER from its dotted form (X.690 8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"invalid OID {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out.extend(reversed(chunk))
    return tlv(TAG_OID, bytes(out))


def decode_oid(content: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets.

    Raises:
        ProvisioningError: if the encoding is not minimal or is truncated.
    """
    if not content or content[-1] & 0x80:
        raise ProvisioningError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    start = True
    for byte in content:
        if start and byte == 0x80:
            raise ProvisioningError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        start = not byte & 0x80
        if start:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def read_tlvs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Iterate over the (tag, content) pairs that make up ``data`` exactly.

    Raises:
        ProvisioningError: on truncation, indefinite or non-minimal lengths, multi-byte tags.
    """
    if len(data) > _MAX_INPUT:
        raise ProvisioningError("DER input too large")
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ProvisioningError("truncated DER")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise ProvisioningError("multi-byte DER tags are not supported")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            nbytes = first & 0x7F
            if nbytes == 0 or nbytes > 4 or pos + nbytes > len(data):
                raise ProvisioningError("invalid DER length")
            length = int.from_bytes(data[pos : pos + nbytes], "big")
            if length < 0x80 or data[pos] == 0:
                raise ProvisioningError("non-minimal DER length")
            pos += nbytes
        if pos + length > len(data):
            raise ProvisioningError("truncated DER")
        yield tag, data[pos : pos + length]
        pos += length


def read_one(data: bytes, expected_tag: int) -> bytes:
    """The content of the single TLV ``data`` holds, which must carry ``expected_tag``.

    Raises:
        ProvisioningError: if ``data`` is not exactly one TLV with that tag.
    """
    items = list(read_tlvs(data))
    if len(items) != 1 or items[0][0] != expected_tag:
        raise ProvisioningError(f"expected one DER item with tag {expected_tag:#04x}")
    return items[0][1]


def decode_integer(content: bytes) -> int:
    """The value of an INTEGER's content octets.

    Raises:
        ProvisioningError: if empty.
    """
    if not content:
        raise ProvisioningError("empty INTEGER")
    return int.from_bytes(content, "big", signed=True)
