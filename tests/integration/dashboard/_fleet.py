"""A small simulated fleet for the dashboard tests: real PSA tokens (``create_psa_token``)
through the lifecycle coordinator and the service's attestation layer, on the same database
a real uvicorn serves the dashboard from."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.lifecycle import LifecycleState
from devattest.schemes.psa import MEDIA_TYPE_PSA, create_psa_token, psa_instance_id
from devattest.service.context import AppContext, build_context
from devattest.service.settings import Settings
from devattest.store import migrate
from devattest.transport.coordinator import LifecycleCoordinator, quarantine_when_untrusted

SIGNER = bytes.fromhex("a5" * 32)
VERSIONS = ("1.0.0", "1.1.0")
MODELS = ("sensor-a", "gateway-b")
OWNERS = ("acme", "globex")
#: What a bad update's bootloader measures: not a released image.
TAMPERED_BL = hashlib.sha256(b"tampered bootloader").digest()
#: Unknown or mismatched measurements contraindicate (the built-in default only warns).
STRICT_POLICY = {"all_of": [{"min_trust": {"executables": "affirming"}}, {"default": True}]}


def implementation_id(model: str) -> bytes:
    return hashlib.sha256(f"implementation:{model}".encode()).digest()


def golden(model: str, component: str, version: str) -> bytes:
    return hashlib.sha256(f"{model}/{component}/{version}".encode()).digest()


@dataclass
class Device:
    """A simulated PSA device with a software key."""

    device_id: str
    model: str
    owner: str
    version: str = VERSIONS[0]
    tampered: bool = False
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def instance_id(self) -> bytes:
        iid = psa_instance_id(self.key.public_key())
        assert iid is not None
        return iid

    def token(self, nonce: bytes) -> bytes:
        bl = TAMPERED_BL if self.tampered else golden(self.model, "BL", self.version)
        claims = {
            "profile_id": "tag:psacertified.org,2023:psa#tfm", "client_id": 1,
            "security_lifecycle": "sl_secured", "implementation_id": implementation_id(self.model),
            "boot_seed": bytes(32), "instance_id": self.instance_id, "challenge": nonce,
            "sw_components": [
                {"sw_component_type": "BL", "measurement_value": bl, "signer_id": SIGNER},
                {"sw_component_type": "PRoT",
                 "measurement_value": golden(self.model, "PRoT", self.version),
                 "signer_id": SIGNER},
            ],
        }
        return create_psa_token(claims, self.key)


def reference_values() -> bytes:
    classes = [{"implementation_id": implementation_id(m).hex(), "source": f"releases of {m}",
                "components": [{"measurement_type": c,
                                "measurement_values": [golden(m, c, v).hex() for v in VERSIONS],
                                "signer_ids": [SIGNER.hex()]} for c in ("BL", "PRoT")]}
               for m in MODELS]
    return json.dumps({"format": "devattest.reference-values/v1", "classes": classes}).encode()


def trust_anchors(devices: list[Device]) -> bytes:
    keys = [{"public_key": d.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
             "instance_id": d.instance_id.hex(), "label": d.device_id,
             "manufacturer": "ACME"} for d in devices]
    return json.dumps({"format": "devattest.trust-anchors/v1", "keys": keys}).encode()


class Fleet:
    """The Verifier side in-process (coordinator over the service layer) and N devices."""

    def __init__(self, data_dir: Path, db_url: str, n: int) -> None:
        self.ctx: AppContext = build_context(Settings(
            data_dir=data_dir, database_url=db_url, webhook_worker=False,
            signing_key_file=data_dir / "ear.pem", dashboard=False))
        migrate(self.ctx.store.engine)
        self.coordinator = LifecycleCoordinator(self.ctx.store, self.ctx.attestation,
                                                quarantine_hooks=[quarantine_when_untrusted])
        self.devices = [Device(f"dev-{i:03d}", MODELS[i % 2], OWNERS[i % 3 == 0])
                        for i in range(n)]
        self._seq = 0
        self._lock = threading.Lock()

    def provision(self) -> None:
        now = datetime.now(UTC)
        p = self.ctx.provisioning
        p.submit("trust-anchors", name="fleet-keys", media_type="application/json",
                 content=trust_anchors(self.devices), now=now)
        p.submit("reference-values", name="fleet-releases", media_type="application/json",
                 content=reference_values(), now=now)
        p.submit("policies", name="default", media_type="application/json",
                 content=json.dumps(STRICT_POLICY).encode(), now=now)
        for d in self.devices:
            self.coordinator.register_device(
                d.device_id, now=now, model=d.model, owner=d.owner,
                instance_id=d.instance_id.hex(), firmware_version=d.version,
                state=LifecycleState.ONBOARDED)

    def update(self, device: Device, version: str, *, bad: bool = False) -> dict[str, Any]:
        """A firmware update event, the challenge it triggers, and the device's answer."""
        with self._lock:
            self._seq += 1
            event_id = f"ev-{self._seq}"
        device.version, device.tampered = version, bad
        out = self.coordinator.report_event(
            device.device_id, {"event_id": event_id, "kind": "firmware_update",
                               "details": {"firmware_version": version}},
            now=datetime.now(UTC))
        assert out.challenge is not None, f"no challenge for {device.device_id}"
        res = self.coordinator.submit_evidence(
            device.device_id, challenge_id=out.challenge.challenge_id,
            evidence=device.token(out.challenge.nonce), media_type=MEDIA_TYPE_PSA,
            now=datetime.now(UTC))
        assert res.message is not None
        return res.message

    def wave(self, version: str, devices: list[Device] | None = None, *, pause: float = 0.0
             ) -> list[dict[str, Any]]:
        """Update every (or the given) device, one after another."""
        results = []
        for d in devices if devices is not None else self.devices:
            results.append(self.update(d, version))
            if pause:
                time.sleep(pause)
        return results

    def close(self) -> None:
        self.ctx.store.dispose()
