"""The CLI's contract: outputs and exit codes (0 affirming, 1 warning, 2 contraindicated,
3 usage or input-file error), on the public vectors and on tokens it creates itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from devattest.cli.main import app
from tests._vectors import VECTORS

RFC = VECTORS / "draft-psa-token"
NONCE = "01" * 32
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def rfc_refvals(tmp_path: Path) -> Path:
    """Reference Values for the software of the RFC 9783 vectors (their claims sources)."""
    refvals = tmp_path / "rfc-refvals.yaml"
    refvals.write_text(yaml.safe_dump({
        "format": "devattest.reference-values/v1",
        "classes": [{
            "implementation_id": "00" * 32,
            "components": [{"measurement_type": "PRoT", "measurement_values": ["03" * 32],
                            "signer_ids": ["04" * 32]}],
        }],
    }))
    return refvals


def test_rfc9783_sign1_affirms(tmp_path: Path) -> None:
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", NONCE, "--refvals", rfc_refvals(tmp_path))
    assert code == 0, out
    assert "affirming" in out


def test_rfc9783_sign1_without_reference_values_is_only_a_warning() -> None:
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", NONCE, "--json")
    assert code == 1, out
    ear = json.loads(out)
    assert ear["ear_status"] == "warning"
    assert ear["submods"]["psa"]["ear_trustworthiness_vector"]["executables"] == 33
    reasons = ear["submods"]["psa"]["ear_devattest"]["reasons"]
    assert [r["code"] for r in reasons] == ["software_not_appraised"]


def test_signature_only_appraisal_is_explicit_and_reported() -> None:
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", NONCE, "--json", "--allow-unappraised-software")
    assert code == 0, out
    sub = json.loads(out)["submods"]["psa"]
    assert "executables" not in sub["ear_trustworthiness_vector"]
    assert sub["ear_devattest"]["annotated-evidence"]["appraisal"] == "signature-only"


def test_rfc9783_mac0_affirms_with_jwk_key_and_json_output(tmp_path: Path) -> None:
    code, out = run("verify", RFC / "psa-mac0.cbor", "--key", RFC / "tfm-hs-iak.json",
                    "--nonce", NONCE, "--json", "--refvals", rfc_refvals(tmp_path))
    assert code == 0, out
    ear = json.loads(out)
    assert ear["ear_status"] == "affirming"
    assert ear["eat_profile"] == "tag:ietf.org,2026:rats/ear#03"
    assert ear["submods"]["psa"]["ear_trustworthiness_vector"]["instance-identity"] == 2


def test_hex_token_file_is_accepted(tmp_path: Path) -> None:
    code, _ = run("verify", RFC / "psa-sign1.hex", "--key", RFC / "tfm-es-iak.pem",
                  "--nonce", NONCE, "--refvals", rfc_refvals(tmp_path))
    assert code == 0


def test_wrong_nonce_exits_2() -> None:
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", "02" * 32)
    assert code == 2
    assert "nonce_mismatch" in out


def test_wrong_key_exits_2() -> None:
    other = VECTORS / "tf-m-tools-iat-verifier" / "data" / "key-alt.pem"
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", other, "--nonce", NONCE)
    assert code == 2 and "signature_invalid" in out


def test_unknown_measurement_is_a_warning_exit_1(tmp_path: Path) -> None:
    refvals = tmp_path / "refvals.yaml"
    refvals.write_text(yaml.safe_dump({
        "format": "devattest.reference-values/v1",
        "classes": [{
            "implementation_id": "00" * 32,
            "components": [{"measurement_type": "PRoT", "measurement_values": ["ff" * 32]}],
        }],
    }))
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", NONCE, "--refvals", refvals)
    assert code == 1, out
    assert "unknown_measurement" in out


@pytest.mark.parametrize("args", [
    ("verify", "/nonexistent.cbor", "--key", RFC / "tfm-es-iak.pem", "--nonce", NONCE),
    ("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem", "--nonce", "xyz"),
    ("verify", RFC / "psa-sign1.cbor", "--key", RFC / "psa-sign1.diag", "--nonce", NONCE),
    ("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem", "--nonce", NONCE,
     "--media-type", "application/unknown"),
])
def test_usage_and_input_errors_exit_3_without_traceback(args: tuple[str, ...]) -> None:
    code, out = run(*args)
    assert code == 3, out
    assert "Traceback" not in out


def _key(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def test_token_create_inspect_verify_round_trip_psa(tmp_path: Path) -> None:
    key = _key(tmp_path)
    out_file = tmp_path / "t.cbor"
    code, out = run("token", "create", "--claims", RFC / "sign1-claims.yaml", "--key", key,
                    "--out", out_file, "--nonce", "ab" * 32)
    assert code == 0, out
    code, out = run("token", "inspect", out_file)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["structure"] == "sign1"
    assert shown["protected"]["1"] == -7
    code, out = run("verify", out_file, "--key", key, "--nonce", "ab" * 32,
                    "--refvals", rfc_refvals(tmp_path))
    assert code == 0, out


def test_token_create_eat_and_verify(tmp_path: Path) -> None:
    key = _key(tmp_path)
    claims = tmp_path / "eat.yaml"
    claims.write_text(yaml.safe_dump({"ueid": "01" + "aa" * 32, "hwmodel": "61636d652d73656e736f72",
                                      "dbgstat": 3, "iat": 1_700_000_000}))
    token = tmp_path / "eat.cbor"
    code, out = run("token", "create", "--type", "eat", "--claims", claims, "--key", key,
                    "--out", token, "--nonce", "cd" * 32)
    assert code == 0, out
    # The token measures no software: it affirms only under explicit signature-only appraisal.
    code, out = run("verify", token, "--key", key, "--nonce", "cd" * 32,
                    "--media-type", "application/eat+cwt")
    assert code == 1, out
    code, out = run("verify", token, "--key", key, "--nonce", "cd" * 32,
                    "--media-type", "application/eat+cwt", "--allow-unappraised-software")
    assert code == 0, out


def test_ear_verify_checks_the_signature(tmp_path: Path) -> None:
    arc = VECTORS / "veraison-ear"
    jwt = arc / "ear-es256-testJWT.jwt"
    code, out = run("ear", "verify", jwt, "--key", arc / "arc-data" / "pkey.json",
                    "--now", "1666091374")
    assert code in (0, 1, 2), out
    assert "signature valid" in out
    tampered = tmp_path / "t.jwt"
    text = jwt.read_text().strip()
    tampered.write_text(text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB"))
    code, out = run("ear", "verify", tampered, "--key", arc / "arc-data" / "pkey.json",
                    "--now", "1666091374")
    assert code == 3 and "signature" in out.lower()


def _psa_profile_token(tmp_path: Path, *, tagged: bool) -> tuple[Path, Path]:
    """A PSA-profile token (RFC 9783 claims) signed with a fresh key: (token, key)."""
    from devattest.schemes.psa import create_psa_token

    key = _key(tmp_path)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    source = yaml.safe_load((RFC / "sign1-claims.yaml").read_text())
    token = tmp_path / "psa-profile.cbor"
    token.write_bytes(create_psa_token(source, private, tagged=tagged))
    return token, key


@pytest.mark.parametrize("media_type", [None, "application/eat+cwt"])
def test_cli_cannot_route_an_untagged_psa_profile_token_to_the_generic_eat_scheme(
        tmp_path: Path, media_type: str | None) -> None:
    # The PSA scheme needs the COSE tag, so sniffing picks the generic EAT scheme for an
    # untagged Sign1: its PSA profile must make that a refusal, never an affirmation.
    token, key = _psa_profile_token(tmp_path, tagged=False)
    extra = ["--media-type", media_type] if media_type else []
    code, out = run("verify", token, "--key", key, "--nonce", NONCE, "--json",
                    "--refvals", rfc_refvals(tmp_path), "--allow-unappraised-software",
                    *extra)
    assert code == 2, out
    (sub,) = json.loads(out)["submods"].values()
    assert [r["code"] for r in sub["ear_devattest"]["reasons"]] == ["profile_mismatch"]


def test_cli_token_with_an_unknown_profile_is_not_affirmed(tmp_path: Path) -> None:
    key = _key(tmp_path)
    claims = tmp_path / "eat.yaml"
    claims.write_text(yaml.safe_dump({"ueid": "01" + "aa" * 32,
                                      "eat_profile": "tag:example.com,2025:private"}))
    token = tmp_path / "eat.cbor"
    code, out = run("token", "create", "--type", "eat", "--claims", claims, "--key", key,
                    "--out", token, "--nonce", "cd" * 32)
    assert code == 0, out
    code, out = run("verify", token, "--key", key, "--nonce", "cd" * 32,
                    "--allow-unappraised-software")
    assert code == 2, out
    assert "unknown_profile" in out


def test_ear_signed_through_the_cli_carries_the_kid_of_the_jwks(tmp_path: Path) -> None:
    """``verify --ear-out`` wrote an EAR JWT without ``kid``: a Relying Party holding the
    Verifier's JWK Set (keys named by their RFC 7638 thumbprint) could not pick the key."""
    import base64

    from devattest.ear import public_jwks, verify_ear_jwt

    ear_key = _key(tmp_path)
    out_file = tmp_path / "ear.jwt"
    code, out = run("verify", RFC / "psa-sign1.cbor", "--key", RFC / "tfm-es-iak.pem",
                    "--nonce", NONCE, "--ear-out", out_file, "--ear-key", ear_key)
    assert code in (0, 1), out
    token = out_file.read_text().strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    private = serialization.load_pem_private_key(ear_key.read_bytes(), password=None)
    (jwk,) = public_jwks([private])["keys"]
    assert header["kid"] == jwk["kid"]
    verify_ear_jwt(token, private.public_key(), now=int(json.loads(
        base64.urlsafe_b64decode(token.split(".")[1] + "=="))["iat"]))
