"""Signed CoRIMs against a real ``devattest service serve``: the signature is checked with
the configured CoRIM signer keys (``corim_signer_keys_file``), and ``require_signed_corim``
refuses unsigned CoRIMs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.cose import PrivateKeySigner, create_sign1
from devattest.crypto import pki
from tests._vectors import VECTORS
from tests.integration.service._sim import ServiceProcess, ensure_signing_key, make_token

VALID = (VECTORS / "veraison-services-psa-iot" / "corim" / "corim-psa-valid.cbor").read_bytes()
CORIM_ID = "00000000-0000-0000-065a-0000000000001"
NOW = datetime.now(UTC)

MANUFACTURER = ec.generate_private_key(ec.SECP256R1())
TEST_LAB = ec.generate_private_key(ec.SECP384R1())
STRANGER = ec.generate_private_key(ec.SECP256R1())


def sign_corim(payload: bytes, key: ec.EllipticCurvePrivateKey, signer: str = "ACME Ltd."
               ) -> bytes:
    """A COSE-signed CoRIM (draft-ietf-rats-corim section 4.2): protected alg, content type
    application/rim+cbor and corim-meta naming the signer, around a 501-tagged corim-map."""
    return create_sign1(payload, PrivateKeySigner(key), protected_extra={
        3: "application/rim+cbor", 8: cbor2.dumps({0: {0: signer}})})


@pytest.fixture(scope="module")
def signers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manufacturer's key as a certificate, the test lab's as a bare public key."""
    path = tmp_path_factory.mktemp("signers") / "corim-signers.pem"
    ca = pki.create_root_ca(MANUFACTURER, organization="ACME Ltd.",
                            common_name="ACME CoRIM signing", now=NOW)
    path.write_bytes(
        ca.certificate.public_bytes(serialization.Encoding.PEM)
        + TEST_LAB.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def _service(tmp: Path, env: dict[str, str]) -> tuple[ServiceProcess, httpx.Client]:
    url = f"sqlite:///{tmp / 'devattest.db'}"
    token = make_token(url, "provisioner")
    ensure_signing_key(tmp)
    svc = ServiceProcess(tmp, url, env={"DEVATTEST_WEBHOOK_WORKER": "false", **env}).start()
    return svc, httpx.Client(base_url=svc.url, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, signers_file: Path
           ) -> Iterator[httpx.Client]:
    """Signer keys configured and signatures required."""
    svc, client = _service(tmp_path_factory.mktemp("strict"), {
        "DEVATTEST_CORIM_SIGNER_KEYS_FILE": str(signers_file),
        "DEVATTEST_REQUIRE_SIGNED_CORIM": "true"})
    try:
        yield client
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The defaults: no signer keys, unsigned CoRIMs accepted."""
    svc, client = _service(tmp_path_factory.mktemp("default"), {})
    try:
        yield client
    finally:
        svc.stop()


def _post(client: httpx.Client, body: bytes, media_type: str = "application/rim+cbor"
          ) -> httpx.Response:
    return client.post("/v1/reference-values", content=body,
                       headers={"Content-Type": media_type})


def _refused(r: httpx.Response, code: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code, r.text


@pytest.mark.parametrize(("key", "media_type"), [
    (MANUFACTURER, "application/rim+cbor"), (TEST_LAB, "application/corim-signed+cbor")])
def test_accepts_corim_signed_by_a_configured_signer(strict: httpx.Client,
                                                     key: ec.EllipticCurvePrivateKey,
                                                     media_type: str) -> None:
    r = _post(strict, sign_corim(VALID, key), media_type)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["name"] == CORIM_ID
    summary = body["summary"]
    assert summary["signed"] is True and summary["verified"] is True
    assert summary["signer"] == "ACME Ltd."
    assert summary["signer_key_sha256"] == pki.key_identifier(key.public_key()).hex()
    assert strict.get(f"/v1/reference-values/{CORIM_ID}").json()["summary"] == summary
    assert strict.delete(f"/v1/reference-values/{CORIM_ID}").status_code == 204


def test_rejects_corim_signed_by_an_unknown_key(strict: httpx.Client) -> None:
    _refused(_post(strict, sign_corim(VALID, STRANGER)), "corim_signature_invalid")
    assert strict.get(f"/v1/reference-values/{CORIM_ID}").status_code == 404


def test_rejects_corim_with_tampered_payload(strict: httpx.Client) -> None:
    msg = cbor2.loads(sign_corim(VALID, MANUFACTURER))
    # Swap in another (still well-formed) corim-map under the manufacturer's signature.
    corim_map = cbor2.loads(VALID)
    corim_map.value[0] = "attacker-chosen-id"
    msg.value[2] = cbor2.dumps(corim_map)
    _refused(_post(strict, cbor2.dumps(msg)), "corim_signature_invalid")
    assert strict.get("/v1/reference-values/attacker-chosen-id").status_code == 404


def test_rejects_signature_stripped_corim_when_signatures_are_required(strict: httpx.Client
                                                                       ) -> None:
    r = _post(strict, VALID)
    _refused(r, "corim_signature_required")
    assert "unsigned" in r.json()["error"]["message"]
    # Trust Anchors go through the same check.
    r = strict.post("/v1/trust-anchors", content=VALID,
                    headers={"Content-Type": "application/corim-unsigned+cbor"})
    _refused(r, "corim_signature_required")


def test_rejects_signed_corim_when_no_signer_is_configured(default: httpx.Client) -> None:
    # Stored unverified, a signed CoRIM would claim a provenance nobody checked.
    r = _post(default, sign_corim(VALID, MANUFACTURER))
    _refused(r, "corim_signer_unknown")
    # Unsigned CoRIMs from an authenticated provisioner stay accepted by default.
    r = _post(default, VALID)
    assert r.status_code in (200, 201), r.text
    assert r.json()["summary"]["signed"] is False
    assert r.json()["summary"]["verified"] is False
