"""COSE_Sign1 / COSE_Mac0 round trips and the algorithm, header and tag attacks."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devattest.cose import (
    EDDSA,
    ES256,
    ES384,
    ES512,
    HS256,
    CoseMessage,
    PrivateKeySigner,
    alg_for_public_key,
    create_mac0,
    create_sign1,
    decode_cose,
    verify_mac0,
    verify_sign1,
)
from devattest.cose._algorithms import HS384, HS512
from devattest.cose._message import ANNOTATION_UNPROTECTED_ALG, sig_structure
from devattest.errors import (
    AlgorithmError,
    MalformedCose,
    SignatureInvalid,
    UnexpectedTag,
    UnknownCriticalHeader,
)
from devattest.model import DEFAULT_LIMITS, DEFAULT_OPTIONS, DecodeLimits, VerifyOptions
from tests._vectors import VECTORS

L = DEFAULT_LIMITS
OPTS = DEFAULT_OPTIONS
LEGACY = VerifyOptions(allow_unprotected_alg=True)
PAYLOAD = cbor2.dumps({10: b"\x01" * 32, 265: "tag:psacertified.org,2023:psa#tfm"})
HMAC_KEY = bytes(range(32))


def _decode(token: bytes, **kw: object) -> CoseMessage:
    return decode_cose(token, limits=L, options=kw.pop("options", OPTS), **kw)  # type: ignore[arg-type]


def _raw_sign1(protected: dict[int, object] | bytes, unprotected: dict[int, object],
               payload: bytes, signer: PrivateKeySigner, *, tag: int | None = 18) -> bytes:
    """A Sign1 built by hand, correctly signed over whatever headers it carries."""
    pb = protected if isinstance(protected, bytes) else (
        cbor2.dumps(protected) if protected else b"")
    sig = signer.sign(sig_structure(pb, b"", payload))
    body = [pb, unprotected, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)


# ---------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fixture", "alg"), [("p256", ES256), ("p384", ES384),
                                              ("p521", ES512), ("ed", EDDSA)])
def test_sign1_round_trip_every_alg(request: pytest.FixtureRequest, fixture: str,
                                    alg: int) -> None:
    key = request.getfixturevalue(fixture)
    signer = PrivateKeySigner(key)
    assert signer.alg == alg == alg_for_public_key(key.public_key())
    token = create_sign1(PAYLOAD, signer, kid=b"kid-1", x5chain=(b"c1", b"c2"))
    msg = _decode(token)
    assert (msg.kind, msg.alg, msg.kid, msg.x5chain) == ("sign1", alg, b"kid-1", (b"c1", b"c2"))
    assert msg.payload == PAYLOAD and msg.tagged and not msg.cwt_tagged
    assert verify_sign1(msg, key.public_key(), options=OPTS) == ()


@pytest.mark.parametrize("alg", [HS256, HS384, HS512])
def test_mac0_round_trip(alg: int) -> None:
    token = create_mac0(PAYLOAD, HMAC_KEY, alg=alg, kid=b"k")
    msg = _decode(token)
    assert (msg.kind, msg.alg, msg.kid) == ("mac0", alg, b"k")
    assert verify_mac0(msg, HMAC_KEY, options=OPTS) == ()
    with pytest.raises(SignatureInvalid):
        verify_mac0(msg, bytes(32), options=OPTS)


def test_external_aad_is_bound(signer: PrivateKeySigner, p256: ec.EllipticCurvePrivateKey) -> None:
    token = create_sign1(PAYLOAD, signer, external_aad=b"aad")
    msg = _decode(token)
    assert verify_sign1(msg, p256.public_key(), options=OPTS, external_aad=b"aad") == ()
    with pytest.raises(SignatureInvalid):
        verify_sign1(msg, p256.public_key(), options=OPTS)


def test_cwt_tag_round_trip_and_deterministic_output(signer: PrivateKeySigner) -> None:
    token = create_sign1(PAYLOAD, signer, cwt_tag=True, kid=b"k")
    assert token[:3] == b"\xd8\x3d\xd2"
    assert cbor2.dumps(cbor2.loads(token), canonical=True) == token
    msg = _decode(token, expected="sign1")
    assert msg.cwt_tagged and msg.tagged


def test_untagged_sign1_accepted_when_kind_expected(signer: PrivateKeySigner,
                                                    p256: ec.EllipticCurvePrivateKey) -> None:
    token = create_sign1(PAYLOAD, signer, tagged=False)
    msg = _decode(token, expected="sign1")
    assert not msg.tagged
    verify_sign1(msg, p256.public_key(), options=OPTS)


def test_tampered_payload_rejected(signer: PrivateKeySigner,
                                   p256: ec.EllipticCurvePrivateKey) -> None:
    body = list(cbor2.loads(create_sign1(PAYLOAD, signer)).value)  # a tuple on cbor2 6
    body[2] = PAYLOAD[:-1] + b"X"
    msg = _decode(cbor2.dumps(cbor2.CBORTag(18, body)))
    with pytest.raises(SignatureInvalid):
        verify_sign1(msg, p256.public_key(), options=OPTS)


def test_wrong_key_rejected(signer: PrivateKeySigner) -> None:
    msg = _decode(create_sign1(PAYLOAD, signer))
    with pytest.raises(SignatureInvalid):
        verify_sign1(msg, ec.generate_private_key(ec.SECP256R1()).public_key(), options=OPTS)


@pytest.mark.parametrize("cut", [1, 63, 65])
def test_rejects_wrong_length_ecdsa_signature(signer: PrivateKeySigner,
                                              p256: ec.EllipticCurvePrivateKey,
                                              cut: int) -> None:
    body = list(cbor2.loads(create_sign1(PAYLOAD, signer)).value)  # a tuple on cbor2 6
    body[3] = (body[3] + b"\x00")[:cut]
    msg = _decode(cbor2.dumps(cbor2.CBORTag(18, body)))
    with pytest.raises(SignatureInvalid, match="must be 64 bytes"):
        verify_sign1(msg, p256.public_key(), options=OPTS)


def test_rfc9783_sign1_and_mac0_vectors() -> None:
    d = VECTORS / "draft-psa-token"
    key = serialization.load_pem_private_key((d / "tfm-es-iak.pem").read_bytes(), None)
    msg = _decode((d / "psa-sign1.cbor").read_bytes())
    assert verify_sign1(msg, key.public_key(), options=OPTS) == ()  # type: ignore[union-attr]
    msg = _decode((d / "psa-mac0.cbor").read_bytes())
    assert verify_mac0(msg, (d / "tfm-hs-iak.bin").read_bytes(), options=OPTS) == ()


# ---------------------------------------------------------------------------------------
# Algorithm attacks
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["object", "sec1", "sec1-compressed", "der", "pem"])
def test_rejects_alg_substitution_hmac_with_ec_public_key(
        p256: ec.EllipticCurvePrivateKey, encoding: str) -> None:
    """The verifier holds the device's EC public key; the attacker MACs with it."""
    public = p256.public_key()
    F, P = serialization.Encoding, serialization.PublicFormat
    key_bytes = {
        "sec1": public.public_bytes(F.X962, P.UncompressedPoint),
        "sec1-compressed": public.public_bytes(F.X962, P.CompressedPoint),
        "der": public.public_bytes(F.DER, P.SubjectPublicKeyInfo),
        "pem": public.public_bytes(F.PEM, P.SubjectPublicKeyInfo),
    }.get(encoding)
    forged_key = key_bytes if key_bytes is not None else public.public_bytes(
        F.X962, P.UncompressedPoint)
    # The forgery is built by hand: create_mac0 refuses public-key material too.
    import hmac as _hmac

    from devattest.cose._message import mac_structure
    pb = cbor2.dumps({1: HS256})
    tag = _hmac.new(forged_key, mac_structure(pb, b"", PAYLOAD), "sha256").digest()
    msg = _decode(cbor2.dumps(cbor2.CBORTag(17, [pb, {}, PAYLOAD, tag])))
    with pytest.raises(AlgorithmError):
        verify_mac0(msg, public if key_bytes is None else key_bytes,  # type: ignore[arg-type]
                    options=OPTS)
    # And the Sign1 path never accepts a MAC key or MAC algorithm.
    with pytest.raises(AlgorithmError):
        verify_sign1(msg, public, options=OPTS)


def test_rejects_hs256_on_sign1(signer: PrivateKeySigner,
                                p256: ec.EllipticCurvePrivateKey) -> None:
    token = _raw_sign1({1: HS256}, {}, PAYLOAD, signer)
    with pytest.raises(AlgorithmError, match="not a signature algorithm"):
        verify_sign1(_decode(token), p256.public_key(), options=OPTS)


def test_rejects_sign1_verified_with_symmetric_key(signer: PrivateKeySigner) -> None:
    msg = _decode(create_sign1(PAYLOAD, signer))
    with pytest.raises(AlgorithmError):
        verify_sign1(msg, HMAC_KEY, options=OPTS)


def test_rejects_alg_zero(signer: PrivateKeySigner, p256: ec.EllipticCurvePrivateKey) -> None:
    token = _raw_sign1({1: 0}, {}, PAYLOAD, signer)
    with pytest.raises(AlgorithmError, match="reserved"):
        verify_sign1(_decode(token), p256.public_key(), options=OPTS)
    mac = create_mac0(PAYLOAD, HMAC_KEY, protected_extra={1: 0})
    with pytest.raises(AlgorithmError, match="reserved"):
        verify_mac0(_decode(mac), HMAC_KEY, options=OPTS)


@pytest.mark.parametrize("alg", [-37, -257, 42, "ES256"])
def test_rejects_unknown_alg(signer: PrivateKeySigner, p256: ec.EllipticCurvePrivateKey,
                             alg: object) -> None:
    token = _raw_sign1({1: alg}, {}, PAYLOAD, signer)
    with pytest.raises(AlgorithmError):
        verify_sign1(_decode(token), p256.public_key(), options=OPTS)


def test_rejects_missing_alg(signer: PrivateKeySigner, p256: ec.EllipticCurvePrivateKey) -> None:
    token = _raw_sign1({}, {}, PAYLOAD, signer)
    with pytest.raises(AlgorithmError, match="no algorithm"):
        verify_sign1(_decode(token), p256.public_key(), options=OPTS)


def test_rejects_alg_only_in_unprotected_header_by_default(
        signer: PrivateKeySigner, p256: ec.EllipticCurvePrivateKey) -> None:
    token = create_sign1(PAYLOAD, signer, alg_in_protected=False)
    msg = _decode(token)
    assert msg.alg is None and msg.protected_bytes == b""
    with pytest.raises(AlgorithmError, match="only in the unprotected header"):
        verify_sign1(msg, p256.public_key(), options=OPTS)
    notes = verify_sign1(msg, p256.public_key(), options=LEGACY)
    assert len(notes) == 1 and notes[0].startswith(ANNOTATION_UNPROTECTED_ALG)


def test_unprotected_alg_option_still_checks_the_key(
        signer: PrivateKeySigner, p384: ec.EllipticCurvePrivateKey) -> None:
    msg = _decode(create_sign1(PAYLOAD, signer, alg_in_protected=False))
    with pytest.raises(AlgorithmError):
        verify_sign1(msg, p384.public_key(), options=LEGACY)


@pytest.mark.parametrize("name", ["missing-claim.cbor", "invalid-profile-id.cbor",
                                  "psa-2_0_0_sign1-token.cbor", "no-sw-measurements.cbor"])
def test_tfm_tokens_without_protected_alg_verify_only_under_legacy_option(name: str) -> None:
    d = VECTORS / "tf-m-tools-iat-verifier" / "data"
    key = serialization.load_pem_private_key((d / "key.pem").read_bytes(), None).public_key()
    msg = _decode((d / name).read_bytes())
    with pytest.raises(AlgorithmError):
        verify_sign1(msg, key, options=OPTS)  # type: ignore[arg-type]
    notes = verify_sign1(msg, key, options=LEGACY)  # type: ignore[arg-type]
    assert notes and notes[0].startswith(ANNOTATION_UNPROTECTED_ALG)


@pytest.mark.parametrize(("alg_fixture", "key_fixture"), [
    ("p256", "p384"), ("p384", "p256"), ("p521", "p256"), ("ed", "p256"), ("p256", "ed")])
def test_rejects_alg_not_matching_key(request: pytest.FixtureRequest, alg_fixture: str,
                                      key_fixture: str) -> None:
    signer = PrivateKeySigner(request.getfixturevalue(alg_fixture))
    msg = _decode(create_sign1(PAYLOAD, signer))
    with pytest.raises(AlgorithmError):
        verify_sign1(msg, request.getfixturevalue(key_fixture).public_key(), options=OPTS)


def test_rejects_private_key_in_place_of_public_key(signer: PrivateKeySigner,
                                                    p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(AlgorithmError):
        verify_sign1(_decode(create_sign1(PAYLOAD, signer)), p256, options=OPTS)


def test_private_key_signer_rejects_mismatched_alg(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(AlgorithmError):
        PrivateKeySigner(p256, alg=ES384)
    with pytest.raises(AlgorithmError):
        PrivateKeySigner(ed25519.Ed25519PrivateKey.generate(), alg=ES256)


def test_create_mac0_refuses_public_key_material(p256: ec.EllipticCurvePrivateKey) -> None:
    pem = p256.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(AlgorithmError):
        create_mac0(PAYLOAD, pem)


def test_sign1_rejected_by_mac0_verifier(signer: PrivateKeySigner) -> None:
    with pytest.raises(AlgorithmError):
        verify_mac0(_decode(create_sign1(PAYLOAD, signer)), HMAC_KEY, options=OPTS)


# ---------------------------------------------------------------------------------------
# Header attacks (RFC 9052 section 3)
# ---------------------------------------------------------------------------------------
def test_rejects_unknown_critical_header(signer: PrivateKeySigner,
                                         p256: ec.EllipticCurvePrivateKey) -> None:
    token = _raw_sign1({1: ES256, 2: [99], 99: "must understand"}, {}, PAYLOAD, signer)
    msg = _decode(token)
    with pytest.raises(UnknownCriticalHeader, match="99"):
        verify_sign1(msg, p256.public_key(), options=OPTS)
    # A caller that processes label 99 may say so.
    assert verify_sign1(msg, p256.public_key(), options=OPTS,
                        understood_crit=frozenset({99})) == ()


def test_understood_critical_header_accepted(signer: PrivateKeySigner,
                                             p256: ec.EllipticCurvePrivateKey) -> None:
    token = _raw_sign1({1: ES256, 2: [4], 4: b"kid"}, {}, PAYLOAD, signer)
    assert verify_sign1(_decode(token), p256.public_key(), options=OPTS) == ()


@pytest.mark.parametrize("crit", [[], 4, [b"x"], [[1]]])
def test_rejects_malformed_crit(signer: PrivateKeySigner, crit: object) -> None:
    with pytest.raises(MalformedCose, match="crit"):
        _decode(_raw_sign1({1: ES256, 2: crit}, {}, PAYLOAD, signer))


def test_rejects_crit_in_unprotected_header(signer: PrivateKeySigner) -> None:
    with pytest.raises(MalformedCose, match="crit"):
        _decode(_raw_sign1({1: ES256}, {2: [99]}, PAYLOAD, signer))


def test_rejects_label_in_both_buckets(signer: PrivateKeySigner) -> None:
    with pytest.raises(MalformedCose, match="both"):
        _decode(_raw_sign1({1: ES256}, {1: ES384}, PAYLOAD, signer))


@pytest.mark.parametrize(("protected", "unprotected"), [
    ({1: ES256}, {4: "text kid"}),
    ({1: ES256}, {33: [b"c", 1]}),
    ({1: ES256}, {33: []}),
    ({1: ES256}, {33: 5}),
    ({1: 1.5}, {}),
    ({1: ES256, b"bad": 1}, {}),
])
def test_rejects_header_parameters_of_the_wrong_type(signer: PrivateKeySigner,
                                                     protected: dict[int, object],
                                                     unprotected: dict[int, object]) -> None:
    with pytest.raises(MalformedCose):
        _decode(_raw_sign1(protected, unprotected, PAYLOAD, signer))


def test_rejects_x5chain_longer_than_limit(signer: PrivateKeySigner) -> None:
    token = _raw_sign1({1: ES256}, {33: [b"c"] * 3}, PAYLOAD, signer)
    with pytest.raises(MalformedCose, match="x5chain"):
        decode_cose(token, limits=DecodeLimits(max_chain_length=2), options=OPTS)


def test_x5chain_single_bstr_and_protected_kid(signer: PrivateKeySigner) -> None:
    msg = _decode(_raw_sign1({1: ES256, 4: b"pk"}, {33: b"leaf"}, PAYLOAD, signer))
    assert msg.kid == b"pk" and msg.x5chain == (b"leaf",)


@pytest.mark.parametrize("protected", [b"\x01", b"\x80", b"\xa1\x01", b"\xa0\x00"])
def test_rejects_protected_header_not_a_map(signer: PrivateKeySigner,
                                            protected: bytes) -> None:
    from devattest.errors import EvidenceError
    with pytest.raises(EvidenceError):
        _decode(_raw_sign1(protected, {}, PAYLOAD, signer))


def test_empty_protected_map_encoding_accepted(signer: PrivateKeySigner,
                                               p256: ec.EllipticCurvePrivateKey) -> None:
    msg = _decode(_raw_sign1(b"\xa0", {1: ES256}, PAYLOAD, signer))
    assert msg.protected == {}
    assert verify_sign1(msg, p256.public_key(), options=LEGACY)


# ---------------------------------------------------------------------------------------
# Tags and array shape (RFC 9052 section 2, RFC 8392 section 6)
# ---------------------------------------------------------------------------------------
def test_rejects_untagged_sign1_when_tag_required(signer: PrivateKeySigner) -> None:
    token = create_sign1(PAYLOAD, signer, tagged=False)
    with pytest.raises(UnexpectedTag, match="required"):
        decode_cose(token, limits=L, options=VerifyOptions(require_cose_tag=True),
                    expected="sign1")


def test_rejects_untagged_message_of_unknown_kind(signer: PrivateKeySigner) -> None:
    with pytest.raises(UnexpectedTag):
        _decode(create_sign1(PAYLOAD, signer, tagged=False))


@pytest.mark.parametrize("tag", [98, 16, 96, 24, 55799])
def test_rejects_wrong_cose_tag(signer: PrivateKeySigner, tag: int) -> None:
    with pytest.raises(UnexpectedTag):
        _decode(_raw_sign1({1: ES256}, {}, PAYLOAD, signer, tag=tag))


def test_rejects_mac0_where_sign1_expected() -> None:
    with pytest.raises(UnexpectedTag):
        _decode(create_mac0(PAYLOAD, HMAC_KEY), expected="sign1")


def test_rejects_cwt_tag_around_something_else(signer: PrivateKeySigner) -> None:
    inner = cbor2.loads(_raw_sign1({1: ES256}, {}, PAYLOAD, signer, tag=None))
    with pytest.raises(UnexpectedTag, match="61"):
        _decode(cbor2.dumps(cbor2.CBORTag(61, inner)), expected="sign1")
    with pytest.raises(UnexpectedTag):
        _decode(cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(61, cbor2.CBORTag(18, inner)))))
    with pytest.raises(UnexpectedTag):
        _decode(cbor2.dumps(cbor2.CBORTag(61, {1: "claims"})))


@pytest.mark.parametrize("body", [
    [b"", {}, b"p"],
    [b"", {}, b"p", b"s", b"x"],
    [b"", [], b"p", b"s"],
    ["", {}, b"p", b"s"],
    [b"", {}, "p", b"s"],
    [b"", {}, b"p", 5],
    [b"", {}, None, b"s"],
    {1: 2},
])
def test_rejects_malformed_cose_array(body: object) -> None:
    with pytest.raises(MalformedCose):
        _decode(cbor2.dumps(cbor2.CBORTag(18, body)))


def test_decode_fast_and_authoritative_paths_agree(signer: PrivateKeySigner) -> None:
    """A non-preferred but valid encoding takes the slow path and gives the same message."""
    token = create_sign1(PAYLOAD, signer, kid=b"k")
    # Re-encode the 4-element array head as 0x98 0x04 (non-preferred length).
    assert token[1] == 0x84
    slow = token[:1] + b"\x98\x04" + token[2:]
    a, b = _decode(token), _decode(slow)
    assert (a.protected, dict(a.unprotected), a.payload, a.signature) == (
        b.protected, dict(b.unprotected), b.payload, b.signature)


def test_unprotected_cached_protected_header_is_read_only(signer: PrivateKeySigner) -> None:
    msg = _decode(create_sign1(PAYLOAD, signer, kid=b"k"))
    with pytest.raises(TypeError):
        msg.protected[1] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        msg.unprotected[4] = b"x"  # type: ignore[index]


def test_cca_realm_token_is_not_a_cose_message() -> None:
    token = (Path(VECTORS) / "tf-m-tools-iat-verifier" / "data" / "cca_token.cbor").read_bytes()
    with pytest.raises(UnexpectedTag, match="907"):
        _decode(token)
