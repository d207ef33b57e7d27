"""Relying-party output: posture changes queued for the service's webhooks, and a quarantine
webhook that a relying party answers (in-process transport, real service and store)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx

from devattest.lifecycle import LifecycleState
from devattest.lifecycle.scenario import Scenario
from devattest.service.services.webhooks import verify_signature
from devattest.store import WebhookRepository
from devattest.transport.relying_party import HttpQuarantineHook
from devattest.transport.simulator import fleet

SECRET = "relying-party-secret-0123456789"


def test_posture_changes_are_queued_for_webhooks_and_the_http_hook_quarantines(
        tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def relying_party(request: httpx.Request) -> httpx.Response:
        ts = int(request.headers["X-Devattest-Timestamp"])
        assert verify_signature(SECRET, ts, request.content,
                                request.headers["X-Devattest-Signature"])
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, json={"quarantine": True,
                                         "reason": f"RP policy: {body['posture']}"})

    hook = HttpQuarantineHook("https://rp.example/quarantine", secret=SECRET,
                              client=httpx.Client(transport=httpx.MockTransport(relying_party)))
    with fleet(Scenario(name="rp", devices=3, adversaries=(), waves=()), workdir=tmp_path,
               transport="inprocess") as run:
        run.coordinator.set_quarantine_hooks([hook])
        with run.coordinator.store.write() as s:
            WebhookRepository(s).create(url="https://rp.example/hook", secret=SECRET,
                                        now=run.clock())
        good, bad = run.devices[0], run.devices[1]
        good.agent.report("boot")
        bad.state = dataclasses.replace(bad.state, security_lifecycle=0x5000)
        bad.agent.report("boot")
        assert good.agent.wait_settled(30) and bad.agent.wait_settled(30)
        with run.coordinator.store.read() as s:
            queued = [json.loads(d.payload) for d in WebhookRepository(s).deliveries()
                      if d.event == "device.posture_changed"]
        assert {(q["device_id"], q["posture"]) for q in queued} >= {
            (good.device_id, "trusted"), (bad.device_id, "untrusted")}
        assert [b["device_id"] for b in seen] == [bad.device_id]  # only untrusted is asked
        record = run.coordinator.device(bad.device_id)
        assert record is not None and record.state is LifecycleState.QUARANTINED
        assert record.state_reason == "RP policy: untrusted"
        assert run.coordinator.device(good.device_id).state is LifecycleState.ONBOARDED


def test_a_failing_relying_party_quarantines_nothing(tmp_path: Path) -> None:
    def down(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    hook = HttpQuarantineHook("https://rp.example/q", secret=SECRET,
                              client=httpx.Client(transport=httpx.MockTransport(down)))
    with fleet(Scenario(name="rp2", devices=1, adversaries=(), waves=()), workdir=tmp_path,
               transport="inprocess") as run:
        run.coordinator.set_quarantine_hooks([hook])
        dev = run.devices[0]
        dev.state = dataclasses.replace(dev.state, security_lifecycle=0x5000)
        dev.agent.report("boot")
        assert dev.agent.wait_settled(30)
        assert run.coordinator.device(dev.device_id).state is LifecycleState.ONBOARDED
        assert run.coordinator.posture(dev.device_id, now=run.clock()).posture.value \
            == "untrusted"
