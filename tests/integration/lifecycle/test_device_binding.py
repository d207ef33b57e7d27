"""Device binding (issue 13 item 10), on every submission path and both databases.

A device registered without an Instance ID used to accept Evidence signed by any trusted
key: another (healthy) device could answer its challenges, a relay (RFC 9334 section 12.1).
Now its first affirming attestation binds it (``devices.instance_id``, recorded in that
history row's ``bound_identity``) and Evidence from any other identity is contraindicated.
Rebinding is a provisioner's explicit action. The four paths: the HTTP route's service call
(``submit_evidence``), the fast lane's (``submit_evidence_async``, the event-loop path on
PostgreSQL), the MQTT single-message path (``LifecycleCoordinator.submit_evidence``) and the
MQTT batch path (``submit_evidence_batch``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devattest.attester.evidence import instance_id_of
from devattest.lifecycle.scenario import Scenario
from devattest.service.services.inventory import InventoryService
from devattest.store import DeviceRepository
from devattest.store.models import Attestation
from devattest.transport.coordinator import SERVICE_PRINCIPAL, EvidenceItem
from devattest.transport.simulator import FleetRun, SimDevice, _builder, fleet

pytestmark = pytest.mark.integration

PATHS = ("http_route", "fastlane", "mqtt_single", "mqtt_batch")


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetRun]:
    db_url = None
    if request.param == "postgresql":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        db_url = make()
    scenario = Scenario(name="binding", devices=2, adversaries=(), waves=())
    with fleet(scenario, workdir=tmp_path, db_url=db_url, transport="inprocess") as r:
        assert r.coordinator.appraiser is not None
        yield r


def _submit(run: FleetRun, path: str, device: SimDevice, *, signer: SimDevice
            ) -> dict[str, Any]:
    """A challenge for ``device`` answered with Evidence ``signer`` made for its nonce, on
    ``path``: ``{"status", "codes", "attestation_id"}``."""
    co, now = run.coordinator, run.clock()
    service = co.attestation
    if path == "fastlane":
        async def both() -> Any:
            try:
                ch = await service.issue_challenge_async(
                    SERVICE_PRINCIPAL, device_id=device.device_id, nonce_size=32, now=now)
                ev, mt = _builder(signer)(ch.nonce)
                return await service.submit_evidence_async(
                    SERVICE_PRINCIPAL, challenge_id=ch.id, evidence=ev, media_type=mt,
                    now=now)
            finally:
                await service.close_async()

        sub = asyncio.run(both())
        return {"status": sub.result.status.value,
                "codes": [c for c, _ in sub.result.reasons], "attestation_id": sub.attestation_id}
    ch = service.issue_challenge(SERVICE_PRINCIPAL, device_id=device.device_id, nonce_size=32,
                                 now=now)
    ev, mt = _builder(signer)(ch.nonce)
    if path == "http_route":
        sub = service.submit_evidence(SERVICE_PRINCIPAL, challenge_id=ch.id, evidence=ev,
                                      media_type=mt, now=now)
        return {"status": sub.result.status.value,
                "codes": [c for c, _ in sub.result.reasons], "attestation_id": sub.attestation_id}
    if path == "mqtt_single":
        message = co.submit_evidence(device.device_id, challenge_id=ch.id, evidence=ev,
                                     media_type=mt, now=now).message
    else:
        (out,) = co.submit_evidence_batch([EvidenceItem(device.device_id, ch.id, ev, mt)],
                                          now=now)
        message = out.message
    assert message is not None and "error" not in message, message
    return {"status": message["status"], "codes": [r["code"] for r in message["reasons"]],
            "attestation_id": message["attestation_id"]}


def _bound(run: FleetRun, device_id: str) -> str | None:
    with run.coordinator.store.read() as s:
        device = DeviceRepository(s).get(device_id)
        assert device is not None
        return device.instance_id


def _bound_by(run: FleetRun, attestation_id: int) -> str | None:
    with run.coordinator.store.read() as s:
        row = s.get(Attestation, attestation_id)
        assert row is not None
        return row.bound_identity


def _unbind(run: FleetRun, device_id: str) -> None:
    InventoryService(run.coordinator.store).rebind_device(device_id, instance_id=None,
                                                          now=run.clock())
    assert _bound(run, device_id) is None


@pytest.mark.parametrize("path", PATHS)
def test_unbound_device_is_bound_on_first_affirming_and_refuses_relayed_evidence(
        run: FleetRun, path: str) -> None:
    victim, relay = run.devices
    _unbind(run, victim.device_id)
    own = instance_id_of(victim.se).hex()
    # 1. The first affirming attestation binds the device, and its history row says so.
    first = _submit(run, path, victim, signer=victim)
    assert first["status"] == "affirming", first
    assert _bound(run, victim.device_id) == own
    assert _bound_by(run, first["attestation_id"]) == own
    # 2. Later ones from the same identity affirm and bind nothing new.
    again = _submit(run, path, victim, signer=victim)
    assert again["status"] == "affirming", again
    assert _bound_by(run, again["attestation_id"]) is None
    # 3. Another trusted key answering the victim's challenge (a relay) is refused.
    relayed = _submit(run, path, victim, signer=relay)
    assert relayed["status"] == "contraindicated", relayed
    assert relayed["codes"] == ["key_mismatch"]
    assert _bound(run, victim.device_id) == own
    assert _bound_by(run, relayed["attestation_id"]) is None


@pytest.mark.parametrize("path", PATHS)
def test_relay_as_the_first_evidence_binds_the_relay_and_rebinding_is_explicit(
        run: FleetRun, path: str) -> None:
    # Trust on first use: what binds is recorded, and only a provisioner's rebinding undoes
    # it (then the genuine device binds on its next affirming attestation).
    victim, relay = run.devices
    _unbind(run, victim.device_id)
    relayed = _submit(run, path, victim, signer=relay)
    assert relayed["status"] == "affirming"
    assert _bound_by(run, relayed["attestation_id"]) == instance_id_of(relay.se).hex()
    InventoryService(run.coordinator.store).rebind_device(
        victim.device_id, instance_id=instance_id_of(victim.se).hex(), now=run.clock())
    genuine = _submit(run, path, victim, signer=victim)
    assert genuine["status"] == "affirming", genuine
    assert _bound_by(run, genuine["attestation_id"]) is None  # bound by the provisioner
    assert _submit(run, path, victim, signer=relay)["codes"] == ["key_mismatch"]


def test_batch_binds_in_order_so_a_relay_in_the_same_batch_is_refused(run: FleetRun) -> None:
    co, now = run.coordinator, run.clock()
    victim, relay = run.devices
    _unbind(run, victim.device_id)
    chs = [co.attestation.issue_challenge(SERVICE_PRINCIPAL, device_id=victim.device_id,
                                          nonce_size=32, now=now) for _ in range(2)]
    honest, mt = _builder(victim)(chs[0].nonce)
    relayed, _ = _builder(relay)(chs[1].nonce)
    out = co.submit_evidence_batch([EvidenceItem(victim.device_id, chs[0].id, honest, mt),
                                    EvidenceItem(victim.device_id, chs[1].id, relayed, mt)],
                                   now=now)
    messages = [o.message for o in out]
    assert messages[0] is not None and messages[1] is not None
    assert messages[0]["status"] == "affirming"
    assert messages[1]["status"] == "contraindicated"
    assert [r["code"] for r in messages[1]["reasons"]] == ["key_mismatch"]
    assert _bound(run, victim.device_id) == instance_id_of(victim.se).hex()
    assert _bound_by(run, messages[0]["attestation_id"]) == instance_id_of(victim.se).hex()
    assert _bound_by(run, messages[1]["attestation_id"]) is None
