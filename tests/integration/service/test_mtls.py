"""Device mTLS against a real ``devattest service serve --tls-*`` (uvicorn subprocess).

The devices' client certificates are owner (LDevID-like) certificates from
``devattest.crypto.pki.issue_owner_certificate`` for the devices' own attestation keys: the
subject CN is the device ID and the EKU carries id-kp-clientAuth.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devattest.crypto import pki
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    add_device,
    b64url_decode,
    ensure_signing_key,
    free_port,
    make_token,
    reference_values_json,
    trust_anchors_json,
)

NOW = datetime.now(UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _server_certificate(ca: pki.CertificateAuthority, key: ec.EllipticCurvePrivateKey
                        ) -> x509.Certificate:
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=5))
            .not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca.private_key, hashes.SHA256()))


@dataclass
class Identity:
    """A client certificate and its key, as files."""

    cert: x509.Certificate
    cert_file: Path
    key_file: Path


@dataclass
class TlsService:
    """``serve --tls-cert --tls-key --tls-client-ca --tls-client-crl`` on a free port."""

    dir: Path
    server_ca: Path
    owner_ca: pki.CertificateAuthority
    crl_file: Path
    tokens: dict[str, str]
    devices: dict[str, PsaDevice]
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def identity(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
                 ) -> Identity:
        cert_file, key_file = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        cert_file.write_bytes(_pem_cert(cert))
        key_file.write_bytes(_pem_key(key))
        return Identity(cert, cert_file, key_file)

    def device_identity(self, device_id: str, *, ca: pki.CertificateAuthority | None = None,
                        key: ec.EllipticCurvePrivateKey | None = None) -> Identity:
        """An owner certificate (CN = ``device_id``) for the device's attestation key."""
        key = key or self.devices[device_id].key
        cert = pki.issue_owner_certificate(
            ca or self.owner_ca, key.public_key(),
            subject=pki.device_name(organization="ACME", serial=device_id), owner_epoch=1,
            now=NOW, hardware_backend=None)
        return self.identity(f"{device_id}-{cert.serial_number}", cert, key)

    def client(self, identity: Identity | None = None, token: str | None = None
               ) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if identity is not None:
            ctx.load_cert_chain(identity.cert_file, identity.key_file)
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.url, verify=ctx, headers=headers, timeout=30)

    def revoke(self, *serials: int) -> None:
        """Replace the CRL file atomically (the service re-reads it on change)."""
        crl = pki.issue_crl(self.owner_ca, revoked=[pki.RevokedEntry(s, NOW) for s in serials],
                            now=NOW, crl_number=int(time.time_ns()))
        tmp = self.crl_file.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(self.crl_file)


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsService]:
    d = tmp_path_factory.mktemp("mtls")
    server_ca = pki.create_root_ca(pki.generate_ca_key(), organization="Verifier",
                                   common_name="Verifier TLS CA", now=NOW)
    server_key = ec.generate_private_key(ec.SECP256R1())
    (d / "server-ca.pem").write_bytes(_pem_cert(server_ca.certificate))
    (d / "server.pem").write_bytes(_pem_cert(_server_certificate(server_ca, server_key)))
    (d / "server.key").write_bytes(_pem_key(server_key))
    owner_ca = pki.create_owner_ca("ACME", now=NOW)
    (d / "devices-ca.pem").write_bytes(_pem_cert(owner_ca.certificate))
    url = f"sqlite:///{d / 'devattest.db'}"
    ensure_signing_key(d)
    for device_id in ("dev-a", "dev-b"):
        add_device(url, device_id, model="m1", owner="acme")
    tokens = {r: make_token(url, r) for r in ("provisioner", "relying-party")}
    devices = {"dev-a": PsaDevice.rfc9783("dev-a"), "dev-b": PsaDevice("dev-b")}
    svc = TlsService(d, d / "server-ca.pem", owner_ca, d / "devices-crl.pem", tokens, devices,
                     free_port())
    svc.revoke()
    env = {**os.environ, "DEVATTEST_ACCESS_LOG": "false",
           "DEVATTEST_RETENTION_INTERVAL_SECONDS": "0", "DEVATTEST_WEBHOOK_WORKER": "false",
           "DEVATTEST_SIGNING_KEY_FILE": str(d / "ear.pem")}
    log = d / "service.log"
    with log.open("ab") as out:
        svc.proc = subprocess.Popen(
            [sys.executable, "-m", "devattest.service.cli", "serve", "--port", str(svc.port),
             "--data-dir", str(d), "--db-url", url, "--tls-cert", str(d / "server.pem"),
             "--tls-key", str(d / "server.key"), "--tls-client-ca", str(d / "devices-ca.pem"),
             "--tls-client-crl", str(svc.crl_file)],
            env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert svc.proc.poll() is None, log.read_text()[-3000:]
            try:
                if svc.client().get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        prov = svc.client(token="provisioner")
        for kind, body in (("trust-anchors", trust_anchors_json(list(devices.values()))),
                           ("reference-values", reference_values_json())):
            r = prov.post(f"/v1/{kind}", params={"name": "fleet"}, content=body,
                          headers={"Content-Type": "application/json"})
            assert r.status_code == 201, r.text
        yield svc
    finally:
        os.killpg(svc.proc.pid, signal.SIGTERM)
        svc.proc.wait(timeout=15)


def test_device_with_its_client_certificate_attests_itself(tls_service: TlsService) -> None:
    dev = tls_service.devices["dev-a"]
    with tls_service.client(tls_service.device_identity("dev-a")) as c:
        r = c.post("/v1/challenges", json={"device_id": "dev-a"})
        assert r.status_code == 201, r.text
        nonce = b64url_decode(r.json()["nonce"])
        r = c.post(f"/v1/challenges/{r.json()['id']}/evidence", content=dev.token(nonce),
                   headers={"Content-Type": MEDIA_TYPE})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["ear_status"] == "affirming"
        # The passport: the device may fetch its own latest result.
        assert c.get("/v1/devices/dev-a/result").status_code == 200


def test_rejects_client_certificate_acting_for_another_device(tls_service: TlsService
                                                               ) -> None:
    with tls_service.client(tls_service.device_identity("dev-a")) as c:
        r = c.post("/v1/challenges", json={"device_id": "dev-b"})
        assert r.status_code == 403, r.text
        # Evidence for a challenge of dev-b (made by the relying party): refused too, and
        # the nonce is not consumed.
        with tls_service.client(token="relying-party") as rp:
            ch = rp.post("/v1/challenges", json={"device_id": "dev-b"}).json()
        evidence = tls_service.devices["dev-b"].token(b64url_decode(ch["nonce"]))
        r = c.post(f"/v1/challenges/{ch['id']}/evidence", content=evidence,
                   headers={"Content-Type": MEDIA_TYPE})
        assert r.status_code == 403, r.text
        assert c.get("/v1/devices/dev-b/result").status_code == 403
    with tls_service.client(token="relying-party") as rp:
        r = rp.post(f"/v1/challenges/{ch['id']}/evidence", content=evidence,
                    headers={"Content-Type": MEDIA_TYPE})
        assert r.status_code == 200, r.text


def _handshake(svc: TlsService, identity: Identity) -> bytes:
    """A TLS 1.2 handshake with ``identity`` (in TLS 1.2 the server's verdict on the client
    certificate comes before its Finished, so a refusal fails ``do_handshake`` itself), then
    one request; the raw response."""
    ctx = ssl.create_default_context(cafile=str(svc.server_ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(identity.cert_file, identity.key_file)
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                            do_handshake_on_connect=False) as tls:
        tls.do_handshake()
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: verifier\r\nConnection: close\r\n\r\n")
        return tls.recv(4096)


def test_client_certificate_from_untrusted_ca_fails_the_handshake(tls_service: TlsService
                                                                  ) -> None:
    assert _handshake(tls_service, tls_service.device_identity("dev-a")).startswith(
        b"HTTP/1.1 200")
    rogue = pki.create_owner_ca("ACME", now=NOW)  # the same name, another key
    identity = tls_service.device_identity("dev-a", ca=rogue)
    with pytest.raises(ssl.SSLError):
        _handshake(tls_service, identity)
    # TLS 1.3 (the default): the server's refusal arrives after the client's Finished; the
    # request never reaches the application.
    with tls_service.client(identity) as c, pytest.raises(httpx.TransportError):
        c.post("/v1/challenges", json={"device_id": "dev-a"})


def test_no_certificate_and_no_token_is_401(tls_service: TlsService) -> None:
    with tls_service.client() as c:
        r = c.post("/v1/challenges", json={"device_id": "dev-a"})
    assert r.status_code == 401, r.text


def test_rejects_revoked_client_certificate_without_restart(tls_service: TlsService) -> None:
    revoked = tls_service.device_identity("dev-b")
    kept = tls_service.device_identity("dev-b")
    with tls_service.client(revoked) as c:
        assert c.post("/v1/challenges", json={"device_id": "dev-b"}).status_code == 201
    tls_service.revoke(revoked.cert.serial_number)
    with tls_service.client(revoked) as c:
        r = c.post("/v1/challenges", json={"device_id": "dev-b"})
    assert r.status_code == 401, r.text
    assert "revoked" in r.json()["error"]["message"]
    with tls_service.client(kept) as c:
        assert c.post("/v1/challenges", json={"device_id": "dev-b"}).status_code == 201
    tls_service.revoke()


def test_rejects_trusted_ca_certificate_without_client_auth_purpose(tls_service: TlsService
                                                                    ) -> None:
    # An attestation-key certificate from the device CA: the right CA and CN, but its EKU
    # does not allow TLS client authentication (OpenSSL's ssl_client purpose check).
    key = tls_service.devices["dev-a"].key
    cert = pki.issue_attestation_certificate(
        tls_service.owner_ca, pki.build_csr(key, subject=x509.Name([])),
        subject=pki.device_name(organization="ACME", serial="dev-a"), now=NOW,
        hardware_backend=None)
    with pytest.raises(ssl.SSLError):
        _handshake(tls_service, tls_service.identity("dev-a-attestation-only", cert, key))
