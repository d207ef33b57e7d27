"""The dashboard's service layer: page models built from the store's repositories, the
service's provisioning and material caches, and the pure lifecycle core (posture is never
re-derived here except through :func:`devattest.lifecycle.assess`).

Routes call these functions; these call the store. No SQL lives in a route handler.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from devattest.dashboard.claims import ClaimsView, annotated_claims, compare, ear_payload
from devattest.lifecycle import (
    DEFAULT_RULES,
    AttestationDue,
    DeviceLifecycle,
    DevicePosture,
    EventKind,
    LifecycleRules,
    LifecycleState,
    ResultSummary,
    assess,
)
from devattest.model import CertificateAnchor, KeyAnchor
from devattest.service.context import AppContext
from devattest.store import (
    AttestationRepository,
    DashboardRepository,
    DeviceRepository,
    DeviceRow,
    HistoryFilter,
    LifecycleRepository,
)
from devattest.store.dashboard_repo import POSTURES
from devattest.store.lifecycle_repo import DeviceLifecycleRecord, LifecycleEventRecord
from devattest.store.models import Attestation, Device

#: The postures the attention page lists, in tab order.
ATTENTION = ("untrusted", "overdue", "warning")
RESULT_STATUSES = ("affirming", "warning", "contraindicated", "none")
DIMENSIONS = {"model": "Model", "firmware_version": "Firmware version", "owner": "Owner"}


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """The fleet page."""

    at: datetime
    postures: dict[str, int]
    total: int
    by: dict[str, list[tuple[str, dict[str, int]]]]
    per_minute: list[tuple[str, dict[str, int]]]
    samples: list[tuple[datetime, dict[str, int]]]


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """A device that needs attention, with its reason in words."""

    row: DeviceRow
    posture: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One entry of a device's lifecycle timeline: an event or an attestation result."""

    at: datetime
    kind: str
    title: str
    detail: str
    status: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True)
class AnchorView:
    """A Trust Anchor as shown to a person."""

    kind: str
    label: str
    subject: str = ""
    issuer: str = ""
    not_after: str = ""
    fingerprint: str = ""
    instance_id: str = ""
    authority: str = ""
    hardware_backed: bool = False


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    """The device page."""

    device: Device
    row: DeviceRow
    record: DeviceLifecycleRecord | None
    posture: DevicePosture | None
    anchors: tuple[AnchorView, ...]
    anchors_note: str
    timeline: list[TimelineItem]
    next_cursor: tuple[int | None, int | None] | None
    latest: Attestation | None
    latest_reasons: list[tuple[str, str]]
    claims: ClaimsView | None
    claims_submod: str
    pending: tuple[AttestationDue, ...] = field(default_factory=tuple)


def to_pure(device: Device, rec: DeviceLifecycleRecord,
            pending: Sequence[LifecycleEventRecord]) -> DeviceLifecycle:
    """The pure lifecycle record of a device, from its rows (what
    :func:`devattest.lifecycle.assess` needs)."""
    latest = None
    if rec.latest_status is not None and rec.latest_at is not None:
        latest = ResultSummary(rec.latest_status, at=rec.latest_at,
                               requested_at=rec.latest_requested_at or rec.latest_at,
                               reasons=tuple((str(r[0]), str(r[1])) for r in
                                             rec.latest_reasons if len(r) == 2),
                               challenge_id=rec.latest_challenge_id)
    dues = tuple(AttestationDue(e.event_id, EventKind(e.kind), e.at, e.deadline)
                 for e in pending if e.deadline is not None)
    return DeviceLifecycle(device.id, model=device.model, owner=device.owner,
                           firmware_version=rec.firmware_version,
                           state=LifecycleState(rec.state), pending=dues, latest=latest,
                           state_reason=rec.state_reason)


def _largest(groups: dict[str, dict[str, int]], limit: int = 12
             ) -> list[tuple[str, dict[str, int]]]:
    """The ``limit`` largest groups, largest first (then by key)."""
    return sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:limit]


def _minute_label(t: datetime) -> str:
    return t.strftime("%H:%M")


def _reasons(row: Attestation | None) -> list[tuple[str, str]]:
    if row is None:
        return []
    out = []
    for r in row.reasons or []:
        if isinstance(r, dict):
            out.append((str(r.get("code", "")), str(r.get("message", ""))))
    return out


def _fingerprint(public_key: Any) -> str:
    if isinstance(public_key, bytes):
        return "symmetric key (not shown)"
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA-256 " + hashlib.sha256(der).hexdigest()


def key_anchor_view(a: KeyAnchor) -> AnchorView:
    """A raw-key Trust Anchor for display."""
    return AnchorView(kind="key", label=a.label or "(no label)",
                      fingerprint=_fingerprint(a.public_key),
                      instance_id=a.instance_id.hex() if a.instance_id else "",
                      authority=a.authority, hardware_backed=a.hardware_backed)


def certificate_anchor_view(a: CertificateAnchor) -> AnchorView:
    """A CA-certificate Trust Anchor for display."""
    c: x509.Certificate = a.certificate
    return AnchorView(kind="certificate", label=c.subject.rfc4514_string(),
                      subject=c.subject.rfc4514_string(), issuer=c.issuer.rfc4514_string(),
                      not_after=c.not_valid_after_utc.isoformat(timespec="seconds"),
                      fingerprint="SHA-256 " + c.fingerprint(hashes.SHA256()).hex(),
                      authority=a.authority)


class DashboardViews:
    """Page models over one application context.

    Args:
        ctx: the service's application context (store, provisioning, material).
        rules: the lifecycle rules for live assessment (deadlines are stored with events;
            these give the maximum result ages).
        cache_seconds: how long the fleet aggregates are reused (0: never).
    """

    def __init__(self, ctx: AppContext, *, rules: LifecycleRules = DEFAULT_RULES,
                 cache_seconds: float = 5.0) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.rules = rules
        self._cache_seconds = cache_seconds
        self._cache: tuple[float, FleetSummary] | None = None
        self._lock = threading.Lock()

    # -- fleet --------------------------------------------------------------------------------
    def fleet(self, *, now: datetime, minutes: int = 30) -> FleetSummary:
        """Posture counts, groups by model/firmware/owner, attestations per minute and the
        posture samples of the last 24 hours (reused for ``cache_seconds``)."""
        if self._cache_seconds > 0:
            with self._lock:
                hit = self._cache
            if hit is not None and time.monotonic() - hit[0] < self._cache_seconds:
                return hit[1]
        with self.store.read() as s:
            repo = DashboardRepository(s)
            postures, groups = repo.breakdown()
            firmware = repo.counts_by_firmware()
            per_minute = self._per_minute(repo, now=now, minutes=minutes)
            samples = repo.samples(since=now - timedelta(hours=24))
        # Devices without a lifecycle record report no firmware version.
        unreported = {p: postures[p] - sum(g.get(p, 0) for g in firmware.values())
                      for p in POSTURES}
        if any(unreported.values()):
            g = firmware.setdefault("", {})
            for p, n in unreported.items():
                if n > 0:
                    g[p] = g.get(p, 0) + n
        by = {"model": _largest(groups["model"]), "owner": _largest(groups["owner"]),
              "firmware_version": _largest(firmware)}
        samples.append((now, dict(postures)))
        summary = FleetSummary(at=now, postures=postures, total=sum(postures.values()), by=by,
                               per_minute=per_minute, samples=samples)
        if self._cache_seconds > 0:
            with self._lock:
                self._cache = (time.monotonic(), summary)
        return summary

    @staticmethod
    def _per_minute(repo: DashboardRepository, *, now: datetime, minutes: int
                    ) -> list[tuple[str, dict[str, int]]]:
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = end - timedelta(minutes=minutes)
        buckets: dict[datetime, dict[str, int]] = {
            start + timedelta(minutes=i): {} for i in range(minutes)}
        for m, status, n in repo.attestations_per_minute(since=start, until=end):
            b = buckets.setdefault(m, {})
            b[status] = b.get(status, 0) + n
        return [(_minute_label(m), c) for m, c in sorted(buckets.items())]

    def sample(self, *, now: datetime, interval: float) -> None:
        """Record the fleet posture now (the sampler thread calls this)."""
        step = max(int(interval), 1)
        at = datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)
        with self.store.write() as s:
            repo = DashboardRepository(s)
            repo.add_sample(at, repo.posture_counts())
            repo.prune_samples(before=now - timedelta(days=7))
            repo.prune_sessions(now=now)

    # -- device lists -------------------------------------------------------------------------
    def attention_counts(self) -> dict[str, int]:
        """How many devices each attention tab holds (index scans only)."""
        with self.store.read() as s:
            return DashboardRepository(s).attention_counts()

    def attention(self, posture: str, *, after: str | None, limit: int, now: datetime
                  ) -> list[AttentionRow]:
        """Devices whose posture is ``posture`` (untrusted, overdue or warning), by id; the
        overdue list also holds devices whose deadline passed before the sweep saw it.

        Raises:
            ValueError: not an attention posture.
        """
        if posture not in ATTENTION:
            raise ValueError(f"unknown attention posture {posture!r}")
        with self.store.read() as s:
            repo = DashboardRepository(s)
            rows = repo.devices_with_posture([posture], after=after, limit=limit)
            if posture == "overdue":
                rows = sorted({r.device_id: r for r in
                               rows + repo.past_deadline(now, after=after, limit=limit)
                               }.values(), key=lambda r: r.device_id)[:limit]
            return self._explain(s, rows, now=now)

    def devices(self, *, posture: str | None, model: str | None, owner: str | None,
                firmware_version: str | None, after: str | None, limit: int, now: datetime
                ) -> list[AttentionRow]:
        """Any devices, by id, filtered by posture or by model/owner/firmware version."""
        with self.store.read() as s:
            repo = DashboardRepository(s)
            if posture is not None:
                rows = repo.devices_with_posture([posture], after=after, limit=limit)
            else:
                rows = repo.devices(model=model, owner=owner, firmware_version=firmware_version,
                                    after=after, limit=limit)
            return self._explain(s, rows, now=now)

    def _explain(self, s: Any, rows: list[DeviceRow], *, now: datetime) -> list[AttentionRow]:
        """Posture and reason in words per row: the lifecycle record's published posture,
        re-assessed at ``now`` when a deadline has passed since; for devices without a
        record, the reasons of their latest result."""
        late = [r.device_id for r in rows if r.next_deadline is not None
                and r.next_deadline < now]
        fresh: dict[str, DevicePosture] = {}
        if late:
            lrepo = LifecycleRepository(s)
            recs = lrepo.records_for(late)
            pending = lrepo.pending_events_for(late)
            devices = {d: DeviceRepository(s).get(d) for d in late}
            for did in late:
                dev, rec = devices.get(did), recs.get(did)
                if dev is not None and rec is not None:
                    fresh[did] = assess(to_pure(dev, rec, pending.get(did, [])), now=now,
                                        rules=self.rules)
        no_record = [r for r in rows if r.lifecycle_state is None and r.status != "none"]
        latest_reasons: dict[str, list[tuple[str, str]]] = {}
        if no_record:
            hist = AttestationRepository(s)
            for r in no_record:
                found = hist.search(HistoryFilter(device_id=r.device_id, outcome="appraised"),
                                    limit=1)
                latest_reasons[r.device_id] = _reasons(found[0] if found else None)
        out = []
        for r in rows:
            if r.device_id in fresh:
                p = fresh[r.device_id]
                out.append(AttentionRow(r, p.posture.value, p.reason))
            elif r.lifecycle_state is not None:
                out.append(AttentionRow(r, r.posture, r.posture_reason or "no reason recorded"))
            else:
                why = "; ".join(m or c for c, m in latest_reasons.get(r.device_id, [])[:3])
                text = {"untrusted": "last attestation failed",
                        "warning": "attested with warnings",
                        "trusted": "affirming result",
                        }.get(r.posture, "never attested")
                out.append(AttentionRow(r, r.posture, f"{text}: {why}" if why else text))
        return out

    # -- one device ---------------------------------------------------------------------------
    def device(self, device_id: str, *, now: datetime, ev_before: int | None = None,
               att_before: int | None = None, limit: int = 25) -> DeviceDetail | None:
        """Identity, Trust Anchors, posture, timeline and latest claims of one device."""
        with self.store.read() as s:
            device = DeviceRepository(s).get(device_id)
            row = DashboardRepository(s).device(device_id)
            if device is None or row is None:
                return None
            lrepo = LifecycleRepository(s)
            rec = lrepo.get(device_id)
            pending = lrepo.pending_events(device_id) if rec is not None else []
            events = list(lrepo.history(device_id, before_id=ev_before, limit=limit)) \
                if ev_before != 0 else []
            hist = AttestationRepository(s)
            atts = list(hist.search(HistoryFilter(device_id=device_id), before_id=att_before,
                                    limit=limit)) if att_before != 0 else []
            latest = hist.get(device.latest_attestation_id) \
                if device.latest_attestation_id is not None else None
        posture = assess(to_pure(device, rec, pending), now=now, rules=self.rules) \
            if rec is not None else None
        timeline, cursor = _merge_timeline(events, atts, limit=limit,
                                           ev_before=ev_before, att_before=att_before)
        material = self.ctx.material.get(now=now)
        anchors, note = _anchors_for(material.trust_anchors, device.instance_id)
        claims = None
        submod = ""
        if latest is not None and latest.ear:
            try:
                found = annotated_claims(ear_payload(latest.ear))
            except ValueError:
                found = None
            if found is not None:
                submod, raw = found
                claims = compare(raw, material.reference_values)
        dues = tuple(AttestationDue(e.event_id, EventKind(e.kind), e.at, e.deadline)
                     for e in pending if e.deadline is not None)
        return DeviceDetail(device=device, row=row, record=rec, posture=posture,
                            anchors=anchors, anchors_note=note, timeline=timeline,
                            next_cursor=cursor, latest=latest, latest_reasons=_reasons(latest),
                            claims=claims, claims_submod=submod, pending=dues)

    # -- live ---------------------------------------------------------------------------------
    def live(self, *, now: datetime) -> tuple[dict[str, int], list[tuple[str, dict[str, int]]],
                                              Sequence[Attestation], list[DeviceRow]]:
        """Posture counts, the last 10 minutes of appraisals, the newest results and the
        devices whose lifecycle changed last (never cached)."""
        with self.store.read() as s:
            repo = DashboardRepository(s)
            postures = repo.posture_counts()
            per_minute = self._per_minute(repo, now=now, minutes=10)
            recent = AttestationRepository(s).search(HistoryFilter(), limit=15)
            changed = repo.recently_changed(limit=15)
        return postures, per_minute, recent, changed

    # -- provisioning -------------------------------------------------------------------------
    def provisioned(self, kind: str) -> Sequence[Any]:
        """The latest live version of every name of ``kind``."""
        return self.ctx.provisioning.list(kind)

    def anchors(self, *, now: datetime) -> tuple[AnchorView, ...]:
        """Every Trust Anchor in force."""
        ta = self.ctx.material.get(now=now).trust_anchors
        return tuple([key_anchor_view(k) for k in ta.keys[:500]] +
                     [certificate_anchor_view(c) for c in ta.certificates[:500]])


def _anchors_for(ta: Any, instance_id: str | None) -> tuple[tuple[AnchorView, ...], str]:
    if instance_id:
        try:
            key = ta.by_instance_id(bytes.fromhex(instance_id))
        except ValueError:
            key = None
        if key is not None:
            return (key_anchor_view(key),), ("The device is bound to this Instance ID; only "
                                             "this key is accepted for it.")
        return (), ("The device is bound to this Instance ID, but no Trust Anchor holds a "
                    "key for it: its Evidence cannot be verified.")
    certs = tuple(certificate_anchor_view(c) for c in ta.certificates)
    keys = len(ta.keys)
    note = (f"The device is not bound to an Instance ID: any of the {keys} provisioned key(s) "
            f"that names its Instance ID, or an attestation-key certificate chaining to one "
            f"of these {len(certs)} CA certificate(s), is accepted.")
    return certs, note


def _merge_timeline(events: list[LifecycleEventRecord], atts: list[Attestation], *,
                    limit: int, ev_before: int | None, att_before: int | None
                    ) -> tuple[list[TimelineItem], tuple[int | None, int | None] | None]:
    """Events and results, newest first; the cursor continues each stream where the page
    stopped (keyset on each stream's id; 0 means that stream is exhausted)."""
    items: list[tuple[datetime, int, str, Any]] = []
    items += [(e.at, e.id, "event", e) for e in events]
    items += [(a.created_at, a.id, "result", a) for a in atts]
    items.sort(key=lambda t: (t[0], t[2] == "result", t[1]), reverse=True)
    page = items[:limit]
    out: list[TimelineItem] = []
    for at, _id, kind, obj in page:
        if kind == "event":
            details = {k: v for k, v in (obj.details or {}).items() if k != "client_event_id"}
            detail = ", ".join(f"{k} {v}" for k, v in sorted(details.items()))
            if obj.deadline is not None:
                due = "answered" if obj.satisfied_at is not None else "attestation due"
                detail = (detail + "; " if detail else "") + \
                    f"{due} by {obj.deadline.isoformat(timespec='seconds')}"
            out.append(TimelineItem(at=at, kind="event", title=obj.kind.replace("_", " "),
                                    detail=detail, ref=f"source: {obj.source}"))
        else:
            msgs = "; ".join(m or c for c, m in _reasons(obj)[:3])
            title = "result" if obj.outcome == "appraised" else \
                f"rejected ({obj.outcome.replace('_', ' ')})"
            out.append(TimelineItem(at=at, kind="result", title=title, detail=msgs,
                                    status=obj.status, ref=f"#{obj.id}"))
    def next_of(shown: list[int], fetched: int, before: int | None) -> int | None:
        if not shown:
            return before  # nothing of this stream on the page: continue where it was
        if len(shown) == fetched and fetched < limit:
            return 0  # this stream is exhausted
        return min(shown)

    ev_next = next_of([i for _, i, k, _o in page if k == "event"], len(events), ev_before)
    att_next = next_of([i for _, i, k, _o in page if k == "result"], len(atts), att_before)
    exhausted = (ev_next == 0 or (ev_before == 0)) and (att_next == 0 or att_before == 0)
    if exhausted or (len(items) <= limit and len(events) < limit and len(atts) < limit):
        return out, None
    return out, (ev_next, att_next)


__all__ = ["ATTENTION", "DIMENSIONS", "POSTURES", "RESULT_STATUSES", "AnchorView",
           "AttentionRow", "DashboardViews", "DeviceDetail", "FleetSummary", "TimelineItem",
           "to_pure"]
