"""Hostile MQTT payloads (issue 13, defect 1): each kind a device could publish on its
``events`` or ``evidence`` topic within the 256 KiB cap, with the dead-letter reason the
Verifier must give it. Shared by the codec unit tests and the Mosquitto wave test."""

from __future__ import annotations

from dataclasses import dataclass

#: Under the 256 KiB payload cap: nesting deep enough to overflow a recursive parser.
_DEEP = 120_000


@dataclass(frozen=True)
class Poison:
    name: str
    kind: str  # "events" or "evidence"
    payload: bytes
    reason: str


POISON: tuple[Poison, ...] = (
    Poison("deep_json_array_event", "events", b"[" * _DEEP + b"]" * _DEEP, "too_deep"),
    Poison("deep_json_object_event", "events",
           b'{"kind": "boot", "details": ' + b'{"a":' * 40_000 + b"1" + b"}" * 40_001,
           "too_deep"),
    Poison("deep_json_evidence", "evidence",
           b'{"challenge_id": ' + b"[" * _DEEP + b"]" * _DEEP + b"}", "too_deep"),
    Poison("bad_utf8_event", "events", b'{"event_id": "e1", "kind": "boot\xff\xfe"}',
           "not_utf8"),
    Poison("lone_surrogate_event", "events", b'{"event_id": "\\ud800", "kind": "boot"}',
           "not_utf8"),
    Poison("bad_utf8_evidence", "evidence",
           b'{"challenge_id": "\xc3\x28", "media_type": "x", "evidence": "AA=="}', "not_utf8"),
    Poison("json_array_event", "events", b'["kind", "boot"]', "not_object"),
    Poison("json_string_evidence", "evidence", b'"evidence"', "not_object"),
    Poison("json_null_event", "events", b"null", "not_object"),
    Poison("not_json_event", "events", b"kind=boot", "not_json"),
    Poison("empty_evidence", "evidence", b"", "not_json"),
    Poison("nan_event", "events", b'{"kind": "boot", "details": {"x": NaN}}', "not_json"),
    Poison("huge_int_event", "events",
           b'{"kind": "boot", "details": {"n": ' + b"9" * 100_000 + b"}}", "not_json"),
    Poison("huge_int_challenge_id", "evidence",
           b'{"challenge_id": ' + b"7" * 5_000 + b', "media_type": "x", "evidence": "AA=="}',
           "not_json"),
    Poison("raw_nul_event", "events", b'{"kind": "boot\x00"}', "not_json"),
    Poison("trailing_nul_evidence", "evidence",
           b'{"challenge_id": "c", "media_type": "x", "evidence": "AA=="}\x00', "not_json"),
    Poison("escaped_nul_event_id", "events", b'{"event_id": "a\\u0000b", "kind": "boot"}',
           "control_character"),
    Poison("escaped_nul_detail", "events",
           b'{"event_id": "e2", "kind": "boot", "details": {"v": "1\\u0000"}}',
           "control_character"),
    Poison("escaped_nul_challenge_id", "evidence",
           b'{"challenge_id": "c\\u0000", "media_type": "x", "evidence": "AA=="}',
           "control_character"),
    Poison("control_character_media_type", "evidence",
           b'{"challenge_id": "c", "media_type": "a\\u001bb", "evidence": "AA=="}',
           "control_character"),
    Poison("event_id_wrong_type", "events", b'{"event_id": 5, "kind": "boot"}', "bad_field"),
    Poison("kind_wrong_type", "events", b'{"event_id": "e3", "kind": ["boot"]}', "bad_field"),
    Poison("details_wrong_type", "events", b'{"kind": "boot", "details": "x"}', "bad_field"),
    Poison("challenge_id_wrong_type", "evidence",
           b'{"challenge_id": {}, "media_type": "x", "evidence": "AA=="}', "bad_field"),
    Poison("evidence_wrong_type", "evidence",
           b'{"challenge_id": "c", "media_type": "x", "evidence": 123}', "bad_field"),
    Poison("evidence_not_base64", "evidence",
           b'{"challenge_id": "c", "media_type": "x", "evidence": "%%%"}', "bad_field"),
    Poison("oversized_event", "events",
           b'{"kind": "boot", "details": {"x": "' + b"a" * (256 * 1024) + b'"}}', "too_large"),
)
