"""The coordinator's batch paths (many events or Evidence messages per transaction) keep
the one-at-a-time guarantees, on SQLite and PostgreSQL: a nonce is consumed exactly once,
redelivered Evidence never counts twice, every attempt is in history, and posture changes
are still published."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devattest.errors import LifecycleError, MalformedLifecycleEvent
from devattest.lifecycle.scenario import Scenario
from devattest.store import AttestationRepository, HistoryFilter
from devattest.transport.coordinator import EventOutcome, EvidenceItem, IssuedChallenge
from devattest.transport.simulator import FleetRun, _builder, fleet

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetRun]:
    db_url = None
    if request.param == "postgresql":
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        db_url = make()
    scenario = Scenario(name="batch", devices=4, adversaries=(), waves=())
    with fleet(scenario, workdir=tmp_path, db_url=db_url, transport="inprocess") as r:
        assert r.coordinator.appraiser is not None  # the batch paths are on
        yield r


def _challenges(run: FleetRun, event_id: str = "e1") -> list[IssuedChallenge]:
    out = run.coordinator.report_events(
        [(d.device_id, {"event_id": event_id, "kind": "firmware_update",
                        "details": {"firmware_version": "1.1"}}) for d in run.devices],
        now=run.clock())
    chs = []
    for o in out:
        assert isinstance(o, EventOutcome) and o.challenge is not None
        chs.append(o.challenge)
    return chs


def _answers(run: FleetRun, chs: list[IssuedChallenge]) -> list[EvidenceItem]:
    """Each device's honest Evidence for its challenge."""
    items = []
    for dev, ch in zip(run.devices, chs, strict=True):
        ev, mt = _builder(dev)(ch.nonce)
        items.append(EvidenceItem(dev.device_id, ch.challenge_id, ev, mt))
    return items


def _history(run: FleetRun, device_id: str) -> list[Any]:
    with run.coordinator.store.read() as s:
        return list(AttestationRepository(s).search(HistoryFilter(device_id=device_id)))


def test_redelivered_evidence_in_and_across_batches_counts_once_and_consumes_one_nonce(
        run: FleetRun) -> None:
    co = run.coordinator
    chs = _challenges(run)
    items = _answers(run, chs)
    first = co.submit_evidence_batch([items[0], items[0], *items[1:]], now=run.clock())
    assert [o.duplicate for o in first] == [False, True, False, False, False]
    assert all(o.message is not None and o.message["status"] == "affirming" for o in first)
    assert first[1].message is not None and first[0].message is not None
    assert first[1].message["attestation_id"] == first[0].message["attestation_id"]
    assert first[0].message["posture"] == "trusted" and first[0].changes  # published
    again = co.submit_evidence_batch(items, now=run.clock())
    assert all(o.duplicate for o in again)
    for o, f in zip(again, first[:1] + first[2:], strict=True):
        assert o.message is not None and f.message is not None
        assert o.message["attestation_id"] == f.message["attestation_id"]
    for dev in run.devices:
        assert [h.outcome for h in _history(run, dev.device_id)] == ["appraised"]
        assert co.posture(dev.device_id, now=run.clock()).posture.value == "trusted"
        record = co.device(dev.device_id)
        assert record is not None and not record.pending


def test_second_evidence_for_one_challenge_in_a_batch_is_recorded_as_replayed(
        run: FleetRun) -> None:
    co, dev = run.coordinator, run.devices[0]
    ch = _challenges(run)[0]
    genuine, mt = _builder(dev)(ch.nonce)
    replay, _ = _builder(dev)(ch.nonce)  # another signature over the same nonce
    assert replay != genuine
    out = co.submit_evidence_batch([EvidenceItem(dev.device_id, ch.challenge_id, genuine, mt),
                                    EvidenceItem(dev.device_id, ch.challenge_id, replay, mt)],
                                   now=run.clock())
    assert out[0].message is not None and out[0].message["status"] == "affirming"
    assert out[1].message is not None and out[1].message["status"] == "contraindicated"
    assert out[1].message["reasons"][0]["code"] == "nonce_replayed"
    assert out[1].message["ear"].count(".") == 2  # still a signed EAR
    assert sorted(h.outcome for h in _history(run, dev.device_id)) == \
        ["appraised", "nonce_replayed"]


def test_batch_rejects_evidence_on_another_devices_topic_without_burning_its_nonce(
        run: FleetRun) -> None:
    co, victim, attacker = run.coordinator, run.devices[0], run.devices[1]
    ch = _challenges(run)[0]
    forged, mt = _builder(attacker)(ch.nonce)
    genuine, _ = _builder(victim)(ch.nonce)
    out = co.submit_evidence_batch(
        [EvidenceItem(attacker.device_id, ch.challenge_id, forged, mt),
         EvidenceItem(victim.device_id, "0" * 32, genuine, mt),
         EvidenceItem(victim.device_id, ch.challenge_id, genuine, "application/x-unknown")],
        now=run.clock())
    codes = [o.message["error"]["code"] for o in out if o.message is not None]
    assert codes == ["challenge_for_another_device", "not_found", "unsupported_media_type"]
    fresh, _ = _builder(victim)(ch.nonce)  # a refused answer is final for its bytes
    ok = co.submit_evidence_batch([EvidenceItem(victim.device_id, ch.challenge_id, fresh,
                                                mt)], now=run.clock())
    assert ok[0].message is not None and ok[0].message["status"] == "affirming"
    assert _history(run, attacker.device_id) == []


def test_batch_refuses_a_challenge_issued_before_the_device_was_suspended(
        run: FleetRun) -> None:
    """As the HTTP path: Evidence for a challenge issued before the device was suspended
    (quarantined) or decommissioned is refused, nothing is consumed, nothing recorded."""
    from sqlalchemy import select, update

    from devattest.store.models import Challenge, Device

    co, dev = run.coordinator, run.devices[0]
    ch = _challenges(run)[0]
    with co.store.write() as s:
        s.execute(update(Device).where(Device.id == dev.device_id)
                  .values(lifecycle_state="suspended"))
    evidence, mt = _builder(dev)(ch.nonce)
    out = co.submit_evidence_batch([EvidenceItem(dev.device_id, ch.challenge_id, evidence,
                                                 mt)], now=run.clock())
    assert out[0].message is not None
    assert out[0].message["error"]["code"] == "device_inactive"
    assert _history(run, dev.device_id) == []
    with co.store.read() as s:
        assert s.scalar(select(Challenge.consumed_at)
                        .where(Challenge.id == ch.challenge_id)) is None


def test_concurrent_batches_with_the_same_evidence_consume_each_nonce_once(
        run: FleetRun) -> None:
    co = run.coordinator
    chs = _challenges(run)
    items = _answers(run, chs)
    results: list[list[Any]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker(seed: int) -> None:
        batch = list(items)
        random.Random(seed).shuffle(batch)
        barrier.wait()
        try:
            results.append(co.submit_evidence_batch(batch, now=run.clock()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    fresh = [o for batch in results for o in batch if not o.duplicate]
    assert sorted(o.device_id for o in fresh) == sorted(d.device_id for d in run.devices)
    for dev in run.devices:
        assert [h.outcome for h in _history(run, dev.device_id)] == ["appraised"]


def test_batched_events_repeat_refuse_and_rechallenge_like_single_events(
        run: FleetRun) -> None:
    co = run.coordinator
    a, b = run.devices[0], run.devices[1]
    msg = {"event_id": "same", "kind": "firmware_update",
           "details": {"firmware_version": "1.1"}}
    co.quarantine(b.device_id, reason="operator", now=run.clock())
    out = co.report_events([(a.device_id, msg), (a.device_id, msg), ("no-such-device", msg),
                            (a.device_id, {"event_id": "", "kind": "boot"}),
                            (a.device_id, {"event_id": "x", "kind": "explode"}),
                            (b.device_id, {"event_id": "q", "kind": "boot"})],
                           now=run.clock())
    first, repeat, unknown, empty_id, bad_kind, quarantined = out
    assert isinstance(first, EventOutcome) and first.challenge is not None
    assert not first.duplicate
    assert isinstance(repeat, EventOutcome) and repeat.duplicate
    assert repeat.challenge is not None  # still unanswered: its open challenge again
    assert repeat.challenge.challenge_id == first.challenge.challenge_id
    assert repeat.challenge.nonce == first.challenge.nonce
    assert isinstance(unknown, LifecycleError)
    assert isinstance(empty_id, MalformedLifecycleEvent)
    assert isinstance(bad_kind, MalformedLifecycleEvent)
    assert isinstance(quarantined, EventOutcome) and quarantined.challenge is None
    record = co.device(a.device_id)
    assert record is not None and len(record.pending) == 1  # one deadline
    ev, mt = _builder(a)(repeat.challenge.nonce)
    done = co.submit_evidence_batch([EvidenceItem(a.device_id, repeat.challenge.challenge_id,
                                                  ev, mt)], now=run.clock())
    assert done[0].message is not None and done[0].message["posture"] == "trusted"
    third = co.report_events([(a.device_id, msg)], now=run.clock())[0]
    assert isinstance(third, EventOutcome) and third.duplicate and third.challenge is None


def test_repeated_events_during_a_slow_wave_do_not_multiply_nonces_or_appraisals(
        run: FleetRun) -> None:
    # A wave that outlasts the devices' resend interval makes every waiting device repeat
    # its event. Each repeat used to get a fresh nonce, which the device signed and the
    # Verifier appraised: a resend storm (measured: 350,000 challenges for 100,000 devices).
    co, dev = run.coordinator, run.devices[2]
    msg = {"event_id": "wave", "kind": "firmware_update",
           "details": {"firmware_version": "1.1"}}
    t0 = run.clock()
    first = co.report_events([(dev.device_id, msg)], now=t0)[0]
    assert isinstance(first, EventOutcome) and first.challenge is not None
    ttl = first.challenge.expires_at - t0
    repeats = [co.report_events([(dev.device_id, msg)], now=t0 + ttl * k / 10)[0]
               for k in range(1, 5)]
    for r in repeats:
        assert isinstance(r, EventOutcome) and r.duplicate and r.challenge is not None
        assert r.challenge.challenge_id == first.challenge.challenge_id
    # Past half its lifetime the open challenge is not worth sending again: a fresh one.
    late = co.report_events([(dev.device_id, msg)], now=t0 + ttl * 6 / 10)[0]
    assert isinstance(late, EventOutcome) and late.challenge is not None
    assert late.challenge.challenge_id != first.challenge.challenge_id
    again = co.report_events([(dev.device_id, msg)], now=t0 + ttl * 7 / 10)[0]
    assert isinstance(again, EventOutcome) and again.challenge is not None
    assert again.challenge.challenge_id == late.challenge.challenge_id
    # The single-message path answers repeats the same way.
    single = co.report_event(dev.device_id, msg, now=t0 + ttl * 7 / 10)
    assert single.challenge is not None
    assert single.challenge.challenge_id == late.challenge.challenge_id
    ev, mt = _builder(dev)(late.challenge.nonce)
    done = co.submit_evidence_batch([EvidenceItem(dev.device_id, late.challenge.challenge_id,
                                                  ev, mt)], now=t0 + ttl * 7 / 10)
    assert done[0].message is not None and done[0].message["status"] == "affirming"
    with co.store.read() as s:
        history = AttestationRepository(s).search(HistoryFilter(device_id=dev.device_id))
    assert [h.outcome for h in history] == ["appraised"]


def test_a_redelivery_gets_the_same_signed_ear_though_the_receipt_no_longer_stores_it(
        run: FleetRun) -> None:
    # Each receipt kept a copy of the 2.4 KB EAR already in the history row. It now keeps
    # the result without it and the duplicate answer reads the EAR back by attestation id:
    # on the batch path and the one-at-a-time path, byte for byte the first answer's.
    import json

    from sqlalchemy import text

    co = run.coordinator
    chs = _challenges(run)
    items = _answers(run, chs)
    first = co.submit_evidence_batch(items[:2], now=run.clock())
    single = co.submit_evidence(items[2].device_id, challenge_id=items[2].challenge_id,
                                evidence=items[2].evidence, media_type=items[2].media_type,
                                now=run.clock())
    again = co.submit_evidence_batch(items[:3], now=run.clock())
    once_more = co.submit_evidence(items[0].device_id, challenge_id=items[0].challenge_id,
                                   evidence=items[0].evidence, media_type=items[0].media_type,
                                   now=run.clock())
    originals = [o.message for o in first] + [single.message]
    assert all(o.duplicate for o in again) and once_more.duplicate
    for original, dup in zip(originals, [o.message for o in again], strict=True):
        assert original is not None and dup is not None
        assert original["ear"].count(".") == 2 and dup["ear"] == original["ear"]
        assert dup["attestation_id"] == original["attestation_id"]
    assert once_more.message is not None and first[0].message is not None
    assert once_more.message["ear"] == first[0].message["ear"]
    with co.store.read() as s:
        stored = [r for (r,) in s.execute(text("SELECT result FROM evidence_receipts"))]
    assert len(stored) == 3
    for r in stored:
        doc = r if isinstance(r, dict) else json.loads(r)
        assert "ear" not in doc and isinstance(doc["attestation_id"], int)
