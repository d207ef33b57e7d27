"""EAR conformance: Veraison's EAR JWTs verify with its published key, and the
draft-ietf-rats-ear -03 (and -02) examples round-trip through AttestationResult."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devattest.ear import (
    EAR_PROFILE,
    VERAISON_PROFILE,
    cbor_claims_to_result,
    claims_to_result,
    public_key_from_jwk,
    result_to_cbor_claims,
    result_to_claims,
    sign_ear_jwt,
    verify_ear_jwt,
)
from devattest.errors import ResultAlgorithmRejected, ResultSignatureInvalid
from devattest.model import Status, TrustVector
from tests._vectors import VECTORS

VERAISON = VECTORS / "veraison-ear"
EAR = VECTORS / "draft-ietf-rats-ear"
D03 = EAR / "draft-ietf-rats-ear-03"
D02 = EAR / "draft-ietf-rats-ear-02"
#: The Veraison test JWTs carry iat 1666091373 and no exp: verify inside their window.
VERAISON_IAT = 1666091373
JWTS = ["ear-es256-testJWT.jwt", "ear-es256-testJWT_JWK.jwt"]


def jwk(name: str) -> dict[str, str]:
    return json.loads((VERAISON / "arc-data" / name).read_text())


def pkey() -> Any:
    return public_key_from_jwk(jwk("pkey.json"))


def diag_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def diag_cbor(path: Path) -> dict[Any, Any]:
    cbor_diag = pytest.importorskip("cbor_diag")
    return cbor2.loads(cbor_diag.diag2cbor(path.read_text()))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("name", JWTS)
def test_veraison_ear_jwt_verifies_with_pkey(name: str) -> None:
    token = (VERAISON / name).read_text().strip()
    result = verify_ear_jwt(token, pkey(), now=VERAISON_IAT + 1)
    assert result.profile == VERAISON_PROFILE
    assert result.status is Status.AFFIRMING
    assert result.verifier_id.developer == "Acme Inc."
    assert result.verifier_id.build == "rrtrap-v1.0.0"
    assert result.raw_evidence == bytes.fromhex("deadbeef")
    sub = result.submods["test"]
    assert sub.appraisal_policy_id == "https://veraison.example/policy/1/60a0068d"
    assert sub.trust_vector == TrustVector(2, 2, 3, 2, 2, 2, 2, 2)


def test_veraison_ear_jwt_without_exp_is_refused_past_max_age() -> None:
    from devattest.errors import ResultExpired

    token = (VERAISON / JWTS[0]).read_text().strip()
    verify_ear_jwt(token, pkey(), now=VERAISON_IAT + 3600, max_age=3600)
    with pytest.raises(ResultExpired, match="more than 3600s ago"):
        verify_ear_jwt(token, pkey(), now=VERAISON_IAT + 3600 + 61, max_age=3600)


def test_veraison_ear_jwt_matches_its_claims_file() -> None:
    token = (VERAISON / JWTS[0]).read_text().strip()
    signed = verify_ear_jwt(token, pkey(), now=VERAISON_IAT + 1)
    assert signed == claims_to_result(diag_json(VERAISON / "arc-data" / "ear-claims-tv-ok.json"))


@pytest.mark.parametrize("name", sorted(p.name for p in (VERAISON / "arc-data").glob(
    "ear-claims*.json")))
def test_veraison_claims_files_parse(name: str) -> None:
    result = claims_to_result(diag_json(VERAISON / "arc-data" / name))
    expected = Status.CONTRAINDICATED if name.endswith("-ko.json") else Status.AFFIRMING
    assert result.status is expected
    # -02 Veraison extensions are renamed to their -03 names and kept.
    claims = result_to_claims(result)
    assert claims["eat_profile"] == EAR_PROFILE
    assert not any(k.startswith("ear.") for k in claims)


def test_devattest_jwt_signed_with_veraison_skey_verifies_with_pkey() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    d = jwk("skey.json")["d"]
    skey = ec.derive_private_key(int.from_bytes(base64.urlsafe_b64decode(d + "="), "big"),
                                 ec.SECP256R1())
    result = claims_to_result(diag_json(VERAISON / "arc-data" / "ear-claims-tv-ok.json"))
    again = verify_ear_jwt(sign_ear_jwt(result, skey), pkey(), now=VERAISON_IAT)
    assert again.submods == result.submods


def test_rejects_tampered_veraison_jwt() -> None:
    h, p, s = (VERAISON / JWTS[0]).read_text().strip().split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["submods"]["test"]["ear.trustworthiness-vector"]["executables"] = 2
    tampered = f"{h}.{b64(json.dumps(claims).encode())}.{s}"
    with pytest.raises(ResultSignatureInvalid):
        verify_ear_jwt(tampered, pkey(), now=VERAISON_IAT + 1)


def test_rejects_veraison_jwt_rewritten_to_alg_none() -> None:
    _, p, _ = (VERAISON / JWTS[0]).read_text().strip().split(".")
    token = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{p}."
    with pytest.raises(ResultAlgorithmRejected):
        verify_ear_jwt(token, pkey(), now=VERAISON_IAT + 1)


def test_rejects_alg_substitution_hs256_keyed_with_veraison_public_key() -> None:
    _, p, _ = (VERAISON / JWTS[0]).read_text().strip().split(".")
    pub = pkey()
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    for secret in (pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
                   json.dumps(jwk("pkey.json")).encode()):
        mac = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
        with pytest.raises(ResultAlgorithmRejected):
            verify_ear_jwt(f"{h}.{p}.{b64(mac)}", pub, now=VERAISON_IAT + 1)


JSON_EXAMPLES = sorted(p.name for p in D03.glob("*json*.diag"))
CBOR_EXAMPLES = sorted(p.name for p in D03.glob("*cbor*.diag"))


@pytest.mark.parametrize("name", JSON_EXAMPLES)
def test_ear03_json_example_round_trips(name: str) -> None:
    claims = diag_json(D03 / name)
    result = claims_to_result(claims)
    assert result.profile == EAR_PROFILE
    assert result_to_claims(result, overall_status="ear_status" in claims) == claims


@pytest.mark.parametrize("name", CBOR_EXAMPLES)
def test_ear03_cbor_example_round_trips(name: str) -> None:
    claims = diag_cbor(D03 / name)
    result = cbor_claims_to_result(claims)
    assert result_to_cbor_claims(result, overall_status=1000 in claims) == claims
    # And it is semantically the JSON example of the same name, where the draft agrees.
    twin = D03 / name.replace("cbor", "json")
    if name == "ear-cbor-1.diag":
        from_json = claims_to_result(diag_json(twin))
        assert result.submods["PSA"].trust_vector == from_json.submods["PSA"].trust_vector
        assert result.status is from_json.status is Status.CONTRAINDICATED


@pytest.mark.parametrize("name", sorted(p.name for p in D02.glob("*.diag")))
def test_ear02_example_reads_as_its_03_twin(name: str) -> None:
    if "cbor" in name:
        got = result_to_cbor_claims(cbor_claims_to_result(diag_cbor(D02 / name)),
                                    overall_status=False)
        assert got == diag_cbor(D03 / name)
    else:
        got = result_to_claims(claims_to_result(diag_json(D02 / name)), overall_status=False)
        assert got == diag_json(D03 / name)
