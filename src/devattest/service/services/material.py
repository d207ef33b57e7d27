"""Provisioned material: parsing submitted documents, and the per-process cache of the
Trust Anchors, Reference Values and policies that appraisal uses.

Accepted media types:

* Trust Anchors: ``application/json`` / ``application/yaml`` (devattest trust-anchors/v1),
  CoRIM (attest-key triples).
* Reference Values: ``application/json`` / ``application/yaml`` (devattest
  reference-values/v1), CoRIM (PSA profile and generic reference-value triples).
* Policies: ``application/x-rego`` (a Rego module), ``application/json`` /
  ``application/yaml`` (a built-in policy spec; ``unsafe_no_op`` and ``rego`` file nodes
  are refused).

CoRIM media types: ``application/rim+cbor``, ``application/corim-unsigned+cbor``,
``application/corim-signed+cbor``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devattest.errors import ConfigurationError, DevattestError, PolicyError
from devattest.model import (
    CertificateAnchor,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    TrustAnchors,
)
from devattest.policy import (
    AppraisalPolicy,
    DefaultPolicy,
    PolicyDecision,
    PolicyInput,
    policy_from_spec,
    rego_policy_from_source,
)
from devattest.provisioning import native, parse_corim
from devattest.schemes import normalise_media_type
from devattest.service.problems import ApiError, Unprocessable, UnsupportedMedia
from devattest.store import ProvisionedRepository, Store, current_generation
from devattest.store.models import PolicyRecord, ReferenceValueRecord, TrustAnchorRecord

CORIM_TYPES = frozenset({"application/rim+cbor", "application/corim-unsigned+cbor",
                         "application/corim-signed+cbor"})
JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
REGO_TYPES = frozenset({"application/x-rego", "text/x-rego", "application/vnd.devattest.rego"})

#: Media types accepted per kind (for 415 answers and the OpenAPI description).
ACCEPTED: dict[str, frozenset[str]] = {
    "trust-anchors": JSON_TYPES | YAML_TYPES | CORIM_TYPES,
    "reference-values": JSON_TYPES | YAML_TYPES | CORIM_TYPES,
    "policies": JSON_TYPES | YAML_TYPES | REGO_TYPES,
}


def base_media_type(content_type: str | None) -> str:
    """The media type without parameters, lower-cased (``""`` when absent)."""
    return normalise_media_type(content_type or "").split(";")[0].strip()


@dataclass(frozen=True, slots=True)
class Parsed:
    """A submitted document, parsed: its default name, a summary, and the model objects."""

    name: str | None
    summary: dict[str, Any]
    trust_anchors: TrustAnchors | None = None
    reference_values: ReferenceValues | None = None
    policy: AppraisalPolicy | None = None


def parse_document(kind: str, media_type: str, content: bytes, *, name: str,
                   now: datetime) -> Parsed:
    """Parse and validate one submitted document.

    Raises:
        UnsupportedMedia: the media type is not accepted for this kind.
        Unprocessable: the document is invalid (the reason code is the parser's).
    """
    mt = base_media_type(media_type)
    if mt not in ACCEPTED[kind]:
        raise UnsupportedMedia(f"{kind} accepts {', '.join(sorted(ACCEPTED[kind]))}")
    try:
        if kind == "policies":
            return _parse_policy(mt, content, name=name)
        if mt in CORIM_TYPES:
            corim = parse_corim(content, now=now)
            summary = {"format": "corim", "corim_id": corim.corim_id, "profile": corim.profile,
                       "signed": corim.signed, "verified": corim.verified,
                       "tag_ids": list(corim.tag_ids), "notes": list(corim.notes),
                       **_counts(corim.trust_anchors, corim.reference_values)}
            if kind == "trust-anchors" and corim.trust_anchors.empty:
                raise Unprocessable("the CoRIM holds no attest-key triples",
                                    code="no_trust_anchors")
            if kind == "reference-values" and not corim.reference_values.sets:
                raise Unprocessable("the CoRIM holds no usable reference values",
                                    code="no_reference_values")
            return Parsed(corim.corim_id, summary, corim.trust_anchors,
                          corim.reference_values)
        doc = native.loads_document(content, fmt="json" if mt in JSON_TYPES else "yaml")
        if kind == "trust-anchors":
            ta = native.parse_trust_anchors(doc)
            return Parsed(None, {"format": native.TRUST_ANCHORS_FORMAT, **_counts(ta, None)},
                          trust_anchors=ta)
        rv = native.parse_reference_values(doc)
        return Parsed(None, {"format": native.REFERENCE_VALUES_FORMAT, **_counts(None, rv)},
                      reference_values=rv)
    except (Unprocessable, UnsupportedMedia):
        raise
    except DevattestError as exc:
        raise Unprocessable(exc.diagnostics(), code=exc.code) from None


def _parse_policy(mt: str, content: bytes, *, name: str) -> Parsed:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("a policy is UTF-8 text", code="policy_error") from None
    if mt in REGO_TYPES:
        policy: AppraisalPolicy = rego_policy_from_source(text, name=name)
        return Parsed(None, {"format": "rego", "policy_id": policy.policy_id}, policy=policy)
    doc = native.loads_document(text, fmt="json" if mt in JSON_TYPES else "yaml")
    if _mentions(doc, "unsafe_no_op"):
        raise PolicyError("unsafe_no_op is for tests only and cannot be provisioned")
    try:
        policy = policy_from_spec(doc, where=name)
    except ConfigurationError as exc:
        raise PolicyError(exc.message) from None
    return Parsed(None, {"format": "spec", "policy_id": policy.policy_id}, policy=policy)


def _mentions(doc: Any, key: str) -> bool:
    if isinstance(doc, Mapping):
        return key in doc or any(_mentions(v, key) for v in doc.values())
    if isinstance(doc, list):
        return any(_mentions(v, key) for v in doc)
    return False


def _counts(ta: TrustAnchors | None, rv: ReferenceValues | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if ta is not None:
        out["keys"] = len(ta.keys)
        out["certificates"] = len(ta.certificates)
    if rv is not None:
        out["classes"] = len(rv.sets)
    return out


@dataclass(frozen=True)
class Material:
    """Everything appraisal needs, built from one provisioning generation."""

    generation: int
    trust_anchors: TrustAnchors
    reference_values: ReferenceValues | None
    #: Policies by name; ``default`` (if provisioned) applies to devices whose model has no
    #: policy of its own.
    policies: Mapping[str, AppraisalPolicy] = field(default_factory=dict)
    builtin_default: AppraisalPolicy = field(default_factory=DefaultPolicy)

    def policy_for(self, model: str) -> AppraisalPolicy:
        """The policy named after the device model, else ``default``, else the built-in."""
        return self.policies.get(model) or self.policies.get("default") or self.builtin_default



_log = logging.getLogger("devattest.service")


def _reparse(kind: str, r: TrustAnchorRecord | ReferenceValueRecord | PolicyRecord, *,
             now: datetime) -> Parsed:
    """Parse a stored document again; one that no longer parses (an expired CoRIM, say) is
    left out, and logged."""
    try:
        return parse_document(kind, r.media_type, r.content, name=r.name, now=now)
    except (ApiError, DevattestError) as exc:
        _log.error("provisioned document no longer usable", extra={
            "kind": kind, "name": r.name, "version": r.version, "reason": str(exc)})
        return Parsed(r.name, {})


@dataclass(frozen=True, slots=True)
class _BrokenPolicy:
    """Stands in for a stored policy that no longer loads: it denies everything."""

    name: str
    version: int

    @property
    def policy_id(self) -> str:
        return f"urn:devattest:policy:unloadable:{self.name}@{self.version}"

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        return PolicyDecision(allow=False, reasons=(
            f"the provisioned policy {self.name!r} v{self.version} no longer loads",))


class MaterialCache:
    """Rebuilds :class:`Material` when the store's provisioning generation changes, so all
    replicas converge on what was provisioned through any of them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._current: Material | None = None

    @property
    def cached(self) -> Material | None:
        """The material built last, without asking the store whether it is still current
        (None before the first build). A caller that uses it must check its generation
        against the store's in the transaction that records the outcome."""
        return self._current

    def for_generation(self, generation: int, *, now: datetime) -> Material:
        """The material for a provisioning generation read in the caller's transaction:
        no query at all while it is the cached one; otherwise a rebuild from the store
        (which then holds that generation or a newer one).

        Across replicas: every provisioning write bumps the generation in its own
        transaction, and every appraisal reads it in its transaction, so an appraisal that
        starts after a provisioning commit (on any replica) uses the new material.

        Raises:
            StoreError: the database failed.
        """
        cur = self._current
        if cur is not None and cur.generation == generation:
            return cur
        return self.get(now=now)

    def get(self, *, now: datetime) -> Material:
        """The current material (one small query when nothing changed).

        Raises:
            StoreError: the database failed.
        """
        with self._store.read() as s:
            gen = current_generation(s)
            cur = self._current
            if cur is not None and cur.generation == gen:
                return cur
            with self._lock:
                cur = self._current
                if cur is not None and cur.generation == gen:
                    return cur
                self._current = _build(
                    gen,
                    ProvisionedRepository(s, TrustAnchorRecord).latest_all(),
                    ProvisionedRepository(s, ReferenceValueRecord).latest_all(),
                    ProvisionedRepository(s, PolicyRecord).latest_all(), now=now)
                return self._current


def _build(gen: int, tas: Sequence[TrustAnchorRecord], rvs: Sequence[ReferenceValueRecord],
           pols: Sequence[PolicyRecord], *, now: datetime) -> Material:
    keys: list[KeyAnchor] = []
    certs: list[CertificateAnchor] = []
    for r in tas:
        ta = _reparse("trust-anchors", r, now=now).trust_anchors
        if ta is not None:
            keys.extend(ta.keys)
            certs.extend(ta.certificates)
    sets: list[ReferenceValueSet] = []
    for rr in rvs:
        rv = _reparse("reference-values", rr, now=now).reference_values
        if rv is not None:
            sets.extend(rv.sets)
    policies: dict[str, AppraisalPolicy] = {}
    for pr in pols:
        p = _reparse("policies", pr, now=now).policy
        # A policy that no longer loads must not silently fall back to a laxer one.
        policies[pr.name] = p if p is not None else _BrokenPolicy(pr.name, pr.version)
    return Material(generation=gen, trust_anchors=TrustAnchors.of(keys=keys, certificates=certs),
                    reference_values=ReferenceValues.of(sets) if rvs else None,
                    policies=policies)
