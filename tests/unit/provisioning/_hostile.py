"""Hostile provisioning documents (issue 13, defect 4), shared by the unit tests and the
HTTP tests: each is a document that once made provisioning raise a non-devattest error
(HTTP 500) and must now be refused with its document error."""

from __future__ import annotations

import base64
import datetime as dt
import json

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

T = cbor2.CBORTag
IMPL = b"acme-implementation-id-000000001"
D = b"\x33" * 32
SIGNER = b"\x22" * 32
PSA = "tag:arm.com,2025:psa#1.0.0"

# DER of the namedCurve OIDs: P-256 (supported) and prime192v2 (1.2.840.10045.3.1.2, an
# X9.62 curve of the same encoded length that cryptography does not implement).
_P256_OID = bytes.fromhex("06082a8648ce3d030107")
_UNSUPPORTED_CURVE_OID = bytes.fromhex("06082a8648ce3d030102")
_KEY = ec.generate_private_key(ec.SECP256R1())


def unsupported_curve_spki_der() -> bytes:
    """A SubjectPublicKeyInfo on a curve the cryptography backend does not implement."""
    der = _KEY.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return der.replace(_P256_OID, _UNSUPPORTED_CURVE_OID)


def unsupported_curve_pem() -> str:
    b64 = base64.encodebytes(unsupported_curve_spki_der()).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{b64}-----END PUBLIC KEY-----\n"


def _ca_der() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile CA")])
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(_KEY.public_key()).serial_number(7)
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _pem_cert(der: bytes) -> str:
    b64 = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----\n"


def unsupported_curve_ca_pem() -> str:
    """A CA certificate whose key is on an unsupported curve (its signature no longer
    verifies; the parser must refuse it before anything else)."""
    return _pem_cert(_ca_der().replace(_P256_OID, _UNSUPPORTED_CURVE_OID))


def malformed_extension_ca_pem() -> str:
    """A CA certificate whose basicConstraints holds an OCTET STRING where the cA BOOLEAN
    belongs (decoded lazily by cryptography, on first access to the extensions)."""
    der = _ca_der()
    good = bytes.fromhex("30030101ff")
    assert der.count(good) == 1
    return _pem_cert(der.replace(good, bytes.fromhex("30030401ff")))


# --------------------------------------------------------------------------------------
# Native JSON/YAML documents.
# --------------------------------------------------------------------------------------
def json_nested(depth: int) -> bytes:
    return b'{"classes": ' + b"[" * depth + b"]" * depth + b"}"


def yaml_flow_nested(depth: int) -> bytes:
    return b"classes: " + b"[" * depth + b"]" * depth + b"\n"


def yaml_block_nested(depth: int) -> bytes:
    # "- - - - x": sequences nested by indentation, no brackets at all.
    return b"classes:\n  " + b"- " * depth + b"x\n"


def yaml_billion_laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("classes: *i")
    return "\n".join(lines).encode()


def yaml_base60_integer(segments: int) -> bytes:
    # YAML 1.1 base-60 integer: escapes Python's int-string limit, quadratic to build.
    return b"classes: []\nx: 1" + b":59" * segments + b"\n"


def reference_values(component: dict[str, object]) -> bytes:
    return json.dumps({"format": "devattest.reference-values/v1", "classes": [
        {"hardware_model": "m1", "components": [{"measurement_type": "BL", **component}]}]}
    ).encode()


def trust_anchor_key(pem: str) -> bytes:
    return json.dumps({"format": "devattest.trust-anchors/v1", "keys": [
        {"kid": "01", "public_key": pem}]}).encode()


def trust_anchor_ca(pem: str) -> bytes:
    return json.dumps({"format": "devattest.trust-anchors/v1", "certificates": [
        {"certificate": pem, "manufacturer": "acme"}]}).encode()


# --------------------------------------------------------------------------------------
# CoRIMs (draft-ietf-rats-corim): generic rules unless a profile is given.
# --------------------------------------------------------------------------------------
def corim(triples: dict[int, list[object]], *, profile: object = None,
          identity: dict[int, object] | None = None) -> bytes:
    comid = cbor2.dumps({1: identity or {0: "comid-1"}, 4: triples})
    m: dict[int, object] = {0: "corim-1", 1: [T(506, comid)]}
    if profile is not None:
        m[3] = profile
    return cbor2.dumps(T(501, m))


def measurement(mkey: object, *, svn: object = None) -> dict[int, object]:
    mval: dict[int, object] = {2: [[1, D]], 11: "BL"}
    if svn is not None:
        mval[1] = svn
    return {0: mkey, 1: mval}


def refval_triple(*measurements: dict[int, object]) -> list[object]:
    return [{0: {0: T(560, IMPL)}}, list(measurements)]


def attest_key_triple(key: object) -> list[object]:
    return [{0: {0: T(560, IMPL)}, 1: T(550, b"\x01" + b"\x11" * 32)}, [key]]


def corim_unsupported_curve(profile: object = None) -> bytes:
    key = T(554, base64.b64encode(unsupported_curve_spki_der()).decode())
    return corim({3: [attest_key_triple(key)]}, profile=profile)


def corim_bignum_measurement_key() -> bytes:
    return corim({0: [refval_triple(measurement(2**20000))]})


def corim_huge_oid_measurement_key() -> bytes:
    # 20 KB of continuation bytes: one arc of 140,000 bits.
    return corim({0: [refval_triple(measurement(T(111, b"\xff" * 20_000 + b"\x01")))]})


def corim_huge_oid_profile() -> bytes:
    return corim({0: [refval_triple(measurement("BL"))]},
                 profile=T(111, b"\xff" * 20_000 + b"\x01"))


def corim_bignum_tag_version() -> bytes:
    return corim({0: [refval_triple(measurement("BL"))]},
                 identity={0: "comid-1", 1: 2**20000})


def corim_bignum_svn() -> bytes:
    return corim({0: [refval_triple(measurement("BL", svn=T(553, 2**20000)))]})
