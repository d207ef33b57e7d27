"""Test helpers: a PSA device simulator and a real uvicorn service in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token, psa_instance_id
from devattest.store import DeviceRepository, TokenRepository, open_store
from tests._vectors import VECTORS

RFC9783_IAK = VECTORS / "draft-psa-token" / "tfm-es-iak.pem"
IMPLEMENTATION_ID = bytes(range(32))
BL = bytes.fromhex("aa" * 32)
PROT = bytes.fromhex("bb" * 32)
SIGNER = bytes.fromhex("cc" * 32)


@dataclass
class PsaDevice:
    """A simulated PSA device: an IAK, its Instance ID, and tokens for given nonces."""

    device_id: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    measurements: tuple[bytes, bytes] = (BL, PROT)

    @classmethod
    def rfc9783(cls, device_id: str) -> PsaDevice:
        """The device holding the RFC 9783 example IAK."""
        key = serialization.load_pem_private_key(RFC9783_IAK.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(device_id, key)

    @property
    def instance_id(self) -> bytes:
        iid = psa_instance_id(self.key.public_key())
        assert iid is not None
        return iid

    def token(self, nonce: bytes) -> bytes:
        """A PSA token (RFC 9783 profile) carrying ``nonce``."""
        bl, prot = self.measurements
        claims = {
            "profile_id": "tag:psacertified.org,2023:psa#tfm",
            "client_id": 1, "security_lifecycle": "sl_secured",
            "implementation_id": IMPLEMENTATION_ID, "boot_seed": bytes(32),
            "instance_id": self.instance_id, "challenge": nonce,
            "sw_components": [
                {"sw_component_type": "BL", "measurement_value": bl, "signer_id": SIGNER},
                {"sw_component_type": "PRoT", "measurement_value": prot, "signer_id": SIGNER},
            ],
        }
        return create_psa_token(claims, self.key)

    def anchor_doc(self) -> dict[str, Any]:
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return {"public_key": pem, "instance_id": self.instance_id.hex(),
                "label": self.device_id, "manufacturer": "ACME"}


MEDIA_TYPE = MEDIA_TYPE_PSA


def trust_anchors_json(devices: list[PsaDevice]) -> bytes:
    return json.dumps({"format": "devattest.trust-anchors/v1",
                       "keys": [d.anchor_doc() for d in devices]}).encode()


def reference_values_json() -> bytes:
    return json.dumps({"format": "devattest.reference-values/v1", "classes": [{
        "implementation_id": IMPLEMENTATION_ID.hex(),
        "components": [
            {"measurement_type": "BL", "measurement_values": [BL.hex()],
             "signer_ids": [SIGNER.hex()]},
            {"measurement_type": "PRoT", "measurement_values": [PROT.hex()],
             "signer_ids": [SIGNER.hex()]},
        ]}]}).encode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_token(db_url: str, role: str, device_id: str | None = None) -> str:
    """Create a token directly in the database (what ``admin create-token`` does)."""
    store = open_store(db_url)
    try:
        with store.write() as s:
            return TokenRepository(s).create(role=role, device_id=device_id,
                                             now=datetime.now(UTC))[1]
    finally:
        store.dispose()


def add_device(db_url: str, device_id: str, **kw: Any) -> None:
    store = open_store(db_url)
    try:
        with store.write() as s:
            DeviceRepository(s).create(device_id=device_id, now=datetime.now(UTC), **kw)
    finally:
        store.dispose()


class ServiceProcess:
    """``devattest service serve`` on a free port, in its own process group."""

    def __init__(self, data_dir: Path, db_url: str, *, workers: int = 1,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.workers = workers
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"service-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServiceProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DEVATTEST_ACCESS_LOG": "false",
               "DEVATTEST_RETENTION_INTERVAL_SECONDS": "0",
               "DEVATTEST_SIGNING_KEY_FILE": str(self.data_dir / "ear.pem"), **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devattest.service.cli", "serve", "--port",
                 str(self.port), "--workers", str(self.workers), "--data-dir",
                 str(self.data_dir), "--db-url", self.db_url],
                env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"service did not start: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        """SIGKILL the whole process group (master and workers), no shutdown at all."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def ensure_signing_key(data_dir: Path) -> Path:
    """A shared EAR signing key for every process of a test."""
    path = data_dir / "ear.pem"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


def new_device_id() -> str:
    return "dev-" + secrets.token_hex(4)


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: records (headers, body) of every POST and answers 204."""

    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass
