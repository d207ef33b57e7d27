"""The lifecycle coordinator over the real service and store (no broker): crash recovery of
Evidence receipts, repeated events, and evidence for another device's challenge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from devattest.lifecycle.scenario import Scenario
from devattest.store import AttestationRepository, HistoryFilter, LifecycleRepository, receipt_key
from devattest.transport.simulator import _builder, fleet


def _quiet(tmp_path: Path, n: int = 2):  # type: ignore[no-untyped-def]
    return fleet(Scenario(name="co", devices=n, adversaries=(), waves=()), workdir=tmp_path,
                 transport="inprocess")


def test_evidence_appraised_before_a_crash_is_answered_from_history_after_the_lease(
        tmp_path: Path) -> None:
    with _quiet(tmp_path) as run:
        co, dev = run.coordinator, run.devices[0]
        out = co.report_event(dev.device_id, {"event_id": "e1", "kind": "boot"}, now=run.clock())
        assert out.challenge is not None
        evidence, mt = _builder(dev)(out.challenge.nonce)
        cid = out.challenge.challenge_id
        # A worker claims the receipt, the service commits the appraisal, the worker dies.
        with co.store.write() as s:
            LifecycleRepository(s).claim_receipt(
                key=receipt_key(cid, evidence), challenge_id=cid, device_id=dev.device_id,
                evidence_sha256="", now=run.clock(), lease=timedelta(seconds=30))
        first = co.attestation.submit(challenge_id=cid, device_id=dev.device_id,
                                      evidence=evidence, media_type=mt, now=run.clock())
        # Redelivered to another worker while the lease holds: dropped (no second result).
        busy = co.submit_evidence(dev.device_id, challenge_id=cid, evidence=evidence,
                                  media_type=mt, now=run.clock())
        assert busy.message is None
        # After the lease: answered from history, no second nonce consumption.
        run.clock.advance(timedelta(seconds=31))
        again = co.submit_evidence(dev.device_id, challenge_id=cid, evidence=evidence,
                                   media_type=mt, now=run.clock())
        assert again.message is not None
        assert again.message["status"] == "affirming"
        assert again.message["attestation_id"] == first.attestation_id
        with co.store.read() as s:
            history = AttestationRepository(s).search(HistoryFilter(device_id=dev.device_id))
        assert [h.outcome for h in history] == ["appraised"]
        assert co.posture(dev.device_id, now=run.clock()).posture.value == "trusted"


def test_repeated_event_adds_no_deadline_but_rechallenges_while_unanswered(
        tmp_path: Path) -> None:
    with _quiet(tmp_path) as run:
        co, dev = run.coordinator, run.devices[0]
        msg = {"event_id": "same", "kind": "firmware_update",
               "details": {"firmware_version": "1.1"}}
        first = co.report_event(dev.device_id, msg, now=run.clock())
        second = co.report_event(dev.device_id, msg, now=run.clock())
        assert second.duplicate and second.challenge is not None
        # Its open challenge again, not another nonce to sign and appraise.
        assert second.challenge.challenge_id == first.challenge.challenge_id
        record = co.device(dev.device_id)
        assert record is not None and len(record.pending) == 1
        evidence, mt = _builder(dev)(second.challenge.nonce)
        co.submit_evidence(dev.device_id, challenge_id=second.challenge.challenge_id,
                           evidence=evidence, media_type=mt, now=run.clock())
        third = co.report_event(dev.device_id, msg, now=run.clock())
        assert third.duplicate and third.challenge is None  # answered: nothing more to do


def test_rejects_evidence_on_another_devices_topic_without_burning_its_nonce(
        tmp_path: Path) -> None:
    with _quiet(tmp_path) as run:
        co, victim, attacker = run.coordinator, run.devices[0], run.devices[1]
        out = co.report_event(victim.device_id, {"event_id": "e", "kind": "boot"},
                              now=run.clock())
        assert out.challenge is not None
        forged, mt = _builder(attacker)(out.challenge.nonce)
        res = co.submit_evidence(attacker.device_id, challenge_id=out.challenge.challenge_id,
                                 evidence=forged, media_type=mt, now=run.clock())
        assert res.message is not None
        assert res.message["error"]["code"] == "challenge_for_another_device"
        genuine, mt = _builder(victim)(out.challenge.nonce)
        ok = co.submit_evidence(victim.device_id, challenge_id=out.challenge.challenge_id,
                                evidence=genuine, media_type=mt, now=run.clock())
        assert ok.message is not None and ok.message["status"] == "affirming"
