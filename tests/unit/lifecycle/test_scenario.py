"""Scenario files for the fleet simulator, and the simulator's own check."""

from __future__ import annotations

import pytest

from devattest.errors import ConfigurationError
from devattest.lifecycle import EventKind, Posture
from devattest.lifecycle.scenario import (
    DEFAULT_WAVES,
    Adversary,
    Verdict,
    check,
    parse_scenario,
)


def test_empty_document_is_the_default_scenario() -> None:
    sc = parse_scenario({})
    assert sc.waves == DEFAULT_WAVES
    assert set(sc.adversaries) == set(Adversary)


def test_parses_waves_and_hardware() -> None:
    sc = parse_scenario({
        "devices": 50, "hardware": {"softhsm": 2, "swtpm": 1},
        "firmware": {"initial": "1.0", "versions": ["1.0", "1.1"], "vulnerable": "0.8"},
        "adversaries": ["debug_enabled"],
        "waves": [{"name": "u", "event": "firmware_update", "firmware_version": "1.1"},
                  {"event": "firmware_update", "firmware_version": "9-bad", "bad": True,
                   "fraction": 0.5},
                  {"event": "firmware_rollback", "firmware_version": "1.1",
                   "target": "bad_update", "release": True}]})
    assert sc.devices == 50 and sc.softhsm == 2 and sc.swtpm == 1
    assert sc.adversaries == (Adversary.DEBUG_ENABLED,)
    assert [w.event for w in sc.waves] == [EventKind.FIRMWARE_UPDATE,
                                           EventKind.FIRMWARE_UPDATE,
                                           EventKind.FIRMWARE_ROLLBACK]
    assert sc.waves[1].bad and sc.waves[2].release and sc.waves[2].target == "bad_update"


@pytest.mark.parametrize("doc", [
    [],
    {"devices": 0},
    {"devices": 3},  # fewer devices than the seven adversaries
    {"adversaries": ["time_traveller"]},
    {"waves": [{"event": "reboot"}]},
    {"waves": [{"event": "boot", "fraction": 0}]},
    {"waves": [{"event": "boot", "target": "everyone"}]},
    {"waves": [{"event": "boot", "colour": "red"}]},
    {"waves": [{"event": "firmware_update", "firmware_version": "7.0"}]},  # not released
    {"firmware": {"initial": "3.0"}},
    {"speed": "fast"},
])
def test_rejects_malformed_scenarios(doc: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_scenario(doc)


def test_check_counts_false_accepts_and_false_rejects() -> None:
    report = check([
        Verdict("a", "honest", Posture.TRUSTED, ""),
        Verdict("b", "honest", Posture.WARNING, "due"),
        Verdict("c", "tampered_firmware", Posture.UNTRUSTED, ""),
        Verdict("d", "replayed_evidence", Posture.TRUSTED, ""),
        Verdict("e", "ignores_challenges", Posture.OVERDUE, ""),
    ])
    assert [v.device_id for v in report.false_rejects] == ["b"]
    assert [v.device_id for v in report.false_accepts] == ["d"]
    assert not report.ok
    assert check([Verdict("a", "honest", Posture.TRUSTED, "")]).ok


def test_an_adversary_that_is_merely_overdue_is_not_caught_unless_it_ignores_challenges(
        ) -> None:
    assert not Verdict("x", "cloned_key", Posture.OVERDUE, "").correct
    assert Verdict("x", "ignores_challenges", Posture.OVERDUE, "").correct
