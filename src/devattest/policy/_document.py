"""The JSON documents a policy engine sees: the ``input`` document built from a
:class:`PolicyInput`, and the decision document a Rego policy returns (docs/policy.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from devattest.errors import PolicyError
from devattest.model import Status, TrustVector
from devattest.policy._base import PolicyDecision, PolicyInput

#: Trust-vector claim names as policies see them: the EAR names (``instance-identity`` ...).
TRUST_CLAIMS: tuple[str, ...] = tuple(f.name.replace("_", "-") for f in fields(TrustVector))
_FIELD_BY_CLAIM = {f.name.replace("_", "-"): f.name for f in fields(TrustVector)}


def policy_input_document(policy_input: PolicyInput) -> dict[str, Any]:
    """The ``input`` document for a policy engine: JSON-safe, bytes as lowercase hex.

    The shape is documented in ``docs/policy.md``; it is a stable contract for Rego
    policies, so fields are only ever added.
    """
    claims = policy_input.claims
    key = policy_input.key
    vector = policy_input.trust_vector
    return {
        "scheme": policy_input.scheme,
        "media_type": policy_input.media_type,
        "profile": claims.profile,
        "instance_id": _hex(claims.instance_id),
        "class_id": _hex(claims.class_id) if isinstance(claims.class_id, bytes)
        else claims.class_id,
        "security_lifecycle": claims.security_lifecycle,
        "debug_enabled": claims.debug_enabled,
        "boot_count": claims.boot_count,
        "software_components": [
            {
                "measurement_type": c.measurement_type,
                "measurement_value": c.measurement_value.hex(),
                "signer_id": _hex(c.signer_id),
                "version": c.version,
                "security_version": c.security_version,
                "measurement_desc": c.measurement_desc,
            }
            for c in claims.software_components
        ],
        "claims": json_document(claims.raw),
        "annotations": list(claims.annotations),
        "findings": [{"claim": f.claim.replace("_", "-"), "value": f.value, "code": f.code,
                      "message": f.message} for f in claims.findings],
        "trust_vector": vector.as_ear(),
        "status": vector.worst_status().value,
        "key": {
            "hardware_backed": key.hardware_backed,
            "authority": key.authority,
            "label": key.label,
            "kid": _hex(key.kid),
            "instance_id": _hex(key.instance_id),
        },
        "reference_values_matched": policy_input.reference_values_matched,
        "software_appraised": policy_input.software_appraised,
    }


def json_document(value: Any) -> Any:
    """``value`` as JSON: bytes as lowercase hex, map keys as text, tuples as lists, a CBOR
    tag as ``{"tag": n, "value": v}``, anything else unknown as its ``str``."""
    # Exact built-in types first (what decoded claims are made of); the general rules below
    # give the same answer for them, at several isinstance checks each.
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is bytes:
        return value.hex()
    if t is dict:
        return {k if type(k) is str else _key(k): json_document(v) for k, v in value.items()}
    if t is list:
        return [json_document(v) for v in value]
    return _json_document_general(value)


def _json_document_general(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {_key(k): json_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_document(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # NaN/Infinity are not JSON
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    tag = getattr(value, "tag", None)
    if isinstance(tag, int) and hasattr(value, "value"):
        return {"tag": tag, "value": json_document(value.value)}
    return str(value)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bytes | bytearray):
        return bytes(k).hex()
    return str(k)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def decision_from_document(doc: Any, *, policy_id: str) -> PolicyDecision:
    """Parse a decision document ``{"allow": bool, "reasons": [str], "trust_vector": {},
    "signature_only": bool}``.

    Unknown members are rejected so that a typo (``"allowed"``) cannot pass silently.

    Raises:
        PolicyError: the document does not have that shape (the policy author's fault).
    """
    where = f"policy {policy_id!r}"
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: the decision is not an object")
    unknown = set(doc) - {"allow", "reasons", "trust_vector", "signature_only"}
    if unknown:
        raise PolicyError(f"{where}: unknown decision member(s) {sorted(unknown)}")
    allow = doc.get("allow")
    if not isinstance(allow, bool):
        raise PolicyError(f"{where}: decision.allow must be true or false")
    reasons = doc.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise PolicyError(f"{where}: decision.reasons must be a list of strings")
    tv_doc = doc.get("trust_vector")
    vector = None if tv_doc is None else trust_vector_from_document(tv_doc, where=where)
    signature_only = doc.get("signature_only", False)
    if not isinstance(signature_only, bool):
        raise PolicyError(f"{where}: decision.signature_only must be true or false")
    return PolicyDecision(allow=allow, reasons=tuple(reasons), trust_vector=vector,
                          signature_only=signature_only)


def trust_vector_from_document(doc: Any, *, where: str) -> TrustVector:
    """A TrustVector from ``{"executables": 2, ...}`` (EAR claim names, -128..127).

    Raises:
        PolicyError: unknown claim names or values out of range.
    """
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: trust_vector must be an object")
    kwargs: dict[str, int] = {}
    for name, value in doc.items():
        if name not in _FIELD_BY_CLAIM:
            raise PolicyError(f"{where}: unknown trust-vector claim {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
            raise PolicyError(f"{where}: trust-vector claim {name!r} must be an integer in "
                              "-128..127")
        kwargs[_FIELD_BY_CLAIM[name]] = value
    return TrustVector(**kwargs)


def claim_field(name: str) -> str:
    """The TrustVector field for an EAR claim name (``instance-identity`` ->
    ``instance_identity``); underscores are accepted too.

    Raises:
        KeyError: not one of the eight AR4SI claims.
    """
    return _FIELD_BY_CLAIM[name.replace("_", "-")]


def status_named(name: str | Status) -> Status:
    """A trustworthiness tier from its name.

    Raises:
        ValueError: not one of none / affirming / warning / contraindicated.
    """
    return name if isinstance(name, Status) else Status(name)
