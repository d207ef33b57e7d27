"""Resends back off exponentially with jitter, so a fleet that lost its Verifier does not
return as a synchronised flood (the 100,000-device wave snowballed with fixed intervals)."""

from __future__ import annotations

from devattest.attester.agent import _due, _OutEvidence


def entry(attempts: int, sent_at: float = 100.0) -> _OutEvidence:
    return _OutEvidence(challenge_id="c", payload=b"", seq=1, sent_at=sent_at,
                        attempts=attempts)


def test_first_resend_waits_about_the_interval() -> None:
    assert not _due(entry(0), 100.0 + 0.74, 1.0)
    assert _due(entry(0), 100.0 + 1.25, 1.0)


def test_each_resend_waits_twice_as_long() -> None:
    assert not _due(entry(3), 100.0 + 5.9, 1.0)   # 8 s x [0.75, 1.25)
    assert _due(entry(3), 100.0 + 10.0, 1.0)


def test_backoff_is_capped() -> None:
    assert not _due(entry(20), 100.0 + 23.9, 1.0)  # capped at 32 s x [0.75, 1.25)
    assert _due(entry(20), 100.0 + 40.0, 1.0)


def test_reconnect_resends_everything() -> None:
    assert _due(entry(20), 100.0, 0.0)
