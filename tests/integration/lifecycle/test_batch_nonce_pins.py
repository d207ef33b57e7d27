"""The batch path's nonce consumption pinned one condition at a time (issue 14), on SQLite
and PostgreSQL: ``UPDATE challenges SET consumed_at = now WHERE ... AND consumed_at IS NULL
AND expires_at > now``. Each test fails when its one condition is dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devattest.transport.coordinator import EvidenceItem
from devattest.transport.simulator import FleetRun, _builder
from tests.integration.lifecycle.test_batch import _challenges, _history, run

pytestmark = pytest.mark.integration
__all__ = ["run"]


def test_evidence_for_an_expired_challenge_is_refused_on_the_batch_path(
        run: FleetRun) -> None:
    """An old nonce must not be honoured once its challenge has expired, even by a device
    that signs it with its genuine key."""
    co, dev = run.coordinator, run.devices[0]
    ch = _challenges(run)[0]
    ev, mt = _builder(dev)(ch.nonce)
    late = ch.expires_at + timedelta(seconds=1)
    out = co.submit_evidence_batch([EvidenceItem(dev.device_id, ch.challenge_id, ev, mt)],
                                   now=late)
    msg = out[0].message
    assert msg is not None and msg.get("status") == "contraindicated", msg
    assert [r["code"] for r in msg["reasons"]] == ["nonce_expired"]
    assert [h.outcome for h in _history(run, dev.device_id)] == ["nonce_expired"]


def test_nonce_reused_across_batches_with_new_evidence_is_a_replay(run: FleetRun) -> None:
    """The first batch consumes the nonce; a later batch carrying new Evidence (another
    signature over the same nonce, so not a redelivery of the same bytes) must be refused as
    a replay, not appraised again."""
    co, dev = run.coordinator, run.devices[0]
    ch = _challenges(run)[0]
    first, mt = _builder(dev)(ch.nonce)
    out = co.submit_evidence_batch([EvidenceItem(dev.device_id, ch.challenge_id, first, mt)],
                                   now=run.clock())
    assert out[0].message is not None and out[0].message["status"] == "affirming"
    second, _ = _builder(dev)(ch.nonce)
    assert second != first
    out = co.submit_evidence_batch([EvidenceItem(dev.device_id, ch.challenge_id, second, mt)],
                                   now=run.clock())
    msg = out[0].message
    assert msg is not None and not out[0].duplicate
    assert [r["code"] for r in msg["reasons"]] == ["nonce_replayed"]
    assert sorted(h.outcome for h in _history(run, dev.device_id)) == [
        "appraised", "nonce_replayed"]
