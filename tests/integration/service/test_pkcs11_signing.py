"""The EAR signing key in a PKCS#11 token (SoftHSM2), with a real ``devattest service serve``."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from devattest.attester.backends.pkcs11 import Pkcs11Config, Pkcs11Key
from devattest.attester.backends.simulated import SoftHsmToken
from devattest.ear import public_jwk, public_key_from_jwk, verify_ear_jwt
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    ServiceProcess,
    add_device,
    b64url_decode,
    make_token,
    reference_values_json,
    trust_anchors_json,
)


def svc_client(svc: ServiceProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=svc.url, headers=headers, timeout=30)


def _pkcs11_env(token: SoftHsmToken, label: str, **extra: str) -> dict[str, str]:
    return {"SOFTHSM2_CONF": str(token.conf),
            "DEVATTEST_SIGNING_KEY_PKCS11_MODULE": token.module,
            "DEVATTEST_SIGNING_KEY_PKCS11_TOKEN": token.label,
            "DEVATTEST_SIGNING_KEY_PKCS11_PIN": token.pin,
            "DEVATTEST_SIGNING_KEY_PKCS11_LABEL": label, "DEVATTEST_WEBHOOK_WORKER": "false",
            **extra}


def _token_key(token: SoftHsmToken, label: str, *, create: bool) -> Pkcs11Key:
    return Pkcs11Key(Pkcs11Config(token_label=token.label, pin=token.pin, module=token.module,
                                  key_label=label, create=create))


def test_ears_are_signed_by_the_token_key_published_in_the_jwks(
        softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    label = f"ear-{secrets.token_hex(4)}"
    with _token_key(softhsm_token, label, create=True) as key:
        on_token = key.public_key()
    url = f"sqlite:///{tmp_path / 'devattest.db'}"
    add_device(url, "dev-a", model="m1")
    rp, prov = make_token(url, "relying-party"), make_token(url, "provisioner")
    device = PsaDevice("dev-a")
    svc = ServiceProcess(tmp_path, url, env=_pkcs11_env(softhsm_token, label)).start()
    try:
        client = svc_client(svc, prov)
        for kind, body in (("trust-anchors", trust_anchors_json([device])),
                           ("reference-values", reference_values_json())):
            r = client.post(f"/v1/{kind}", params={"name": "fleet"}, content=body,
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 201, r.text
        # The published key is the token's key, and no file key was made.
        jwks = svc_client(svc).get("/.well-known/devattest/keys").json()
        assert jwks["keys"] == [public_jwk(on_token)]
        assert not (tmp_path / "ear.pem").exists()
        assert not (tmp_path / "ear-signing-key.pem").exists()
        client = svc_client(svc, rp)
        ch = client.post("/v1/challenges", json={"device_id": "dev-a"}).json()
        r = client.post(f"/v1/challenges/{ch['id']}/evidence",
                        content=device.token(b64url_decode(ch["nonce"])),
                        headers={"Content-Type": MEDIA_TYPE})
        assert r.status_code == 200, r.text
    finally:
        svc.stop()
    published = public_key_from_jwk(jwks["keys"][0])
    assert published.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo) == \
        on_token.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    result = verify_ear_jwt(r.json()["ear"], published, now=int(time.time()))
    assert result.status.value == "affirming"
    header = b64url_decode(r.json()["ear"].split(".")[0])
    assert b'"alg":"ES256"' in header and jwks["keys"][0]["kid"].encode() in header


def test_service_refuses_to_start_without_the_token_key(softhsm_token: SoftHsmToken,
                                                        tmp_path: Path) -> None:
    # A mistyped label must not mint a new key: signing_key_pkcs11_create is off by default.
    label = f"missing-{secrets.token_hex(4)}"
    svc = ServiceProcess(tmp_path, f"sqlite:///{tmp_path / 'devattest.db'}",
                         env=_pkcs11_env(softhsm_token, label))
    with pytest.raises(RuntimeError, match=f"no key '{label}' on the token"):
        svc.start()
    with pytest.raises(Exception, match=label):
        _token_key(softhsm_token, label, create=False)


def test_two_workers_generate_one_token_key(softhsm_token: SoftHsmToken, tmp_path: Path
                                            ) -> None:
    label = f"gen-{secrets.token_hex(4)}"
    svc = ServiceProcess(tmp_path, f"sqlite:///{tmp_path / 'devattest.db'}", workers=2,
                         env=_pkcs11_env(softhsm_token, label,
                                         DEVATTEST_SIGNING_KEY_PKCS11_CREATE="true")).start()
    try:
        kids = {svc_client(svc).get("/.well-known/devattest/keys").json()["keys"][0]["kid"]
                for _ in range(20)}
    finally:
        svc.stop()
    # Exactly one key pair under the label (opening it refuses duplicates), and it is the
    # one every worker published.
    with _token_key(softhsm_token, label, create=False) as key:
        assert kids == {public_jwk(key.public_key())["kid"]}

