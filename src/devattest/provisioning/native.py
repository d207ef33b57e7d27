"""devattest's own provisioning formats, JSON or YAML (documented in docs/reference-values.md).

* Reference Values: ``{"format": "devattest.reference-values/v1", "classes": [...]}`` ->
  :class:`~devattest.model.ReferenceValues`; :func:`dump_reference_values` is the inverse.
* Trust Anchors: ``{"format": "devattest.trust-anchors/v1", "keys": [...],
  "certificates": [...]}`` -> :class:`~devattest.model.TrustAnchors`.

Validation is strict: unknown fields, duplicate keys, wrong types, bad hex, private keys and
YAML aliases are refused with a :class:`~devattest.errors.ProvisioningSchemaError` whose
``path`` names the offending field (``classes[0].components[1].signer_ids[0]``).
Pure except the ``load_*_file`` wrappers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from devattest._documents import loads_strict_json, loads_strict_yaml
from devattest.errors import ProvisioningSchemaError
from devattest.model import (
    CertificateAnchor,
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
    TrustAnchors,
)

REFERENCE_VALUES_FORMAT = "devattest.reference-values/v1"
TRUST_ANCHORS_FORMAT = "devattest.trust-anchors/v1"
#: Largest provisioning document accepted, in bytes.
MAX_DOCUMENT_SIZE = 4 * 1024 * 1024
#: Bounds on list lengths inside a document.
MAX_ITEMS = 10_000
MAX_BYTES_FIELD = 1024
#: Largest integer field (lifecycle states, security versions): an unsigned 64-bit value.
MAX_UINT = 2**64 - 1
#: Longest version string (dotted numeric).
MAX_VERSION_CHARS = 64
_DOTTED_NUMERIC = re.compile(r"[0-9]+(?:\.[0-9]+)*")

Format = Literal["json", "yaml"]


def _err(path: str, message: str) -> ProvisioningSchemaError:
    return ProvisioningSchemaError(message, path=path or "$")


# --------------------------------------------------------------------------------------
# Text to a plain document (JSON or YAML), strictly.
# --------------------------------------------------------------------------------------
def loads_document(text: str | bytes, *, fmt: Format = "yaml") -> Any:
    """Parse JSON or YAML text into plain Python data, strictly.

    YAML is read with the safe loader, without aliases and without duplicate keys; JSON
    without duplicate keys and without NaN/Infinity. (JSON is valid YAML, but ``fmt="json"``
    gives JSON's exact error messages.)

    Raises:
        ProvisioningSchemaError: the text is too large or not well-formed.
    """
    if len(text) > MAX_DOCUMENT_SIZE:
        raise _err("$", f"document larger than {MAX_DOCUMENT_SIZE} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _err("$", "document is not UTF-8") from exc
    if fmt == "json":
        try:
            return loads_strict_json(text)
        except ValueError as exc:
            raise _err("$", f"not valid JSON: {exc}") from exc
    try:
        return loads_strict_yaml(text)
    except yaml.YAMLError as exc:
        raise _err("$", f"not valid YAML: {exc}") from exc


# --------------------------------------------------------------------------------------
# Typed field readers.
# --------------------------------------------------------------------------------------
def _obj(v: Any, path: str, *, required: set[str], optional: set[str]) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _err(path, "expected an object")
    for k in v:
        if not isinstance(k, str):
            raise _err(path, f"keys must be strings, got {k!r}")
    unknown = set(v) - required - optional
    if unknown:
        raise _err(f"{path}.{sorted(unknown)[0]}" if path else sorted(unknown)[0],
                   f"unknown field (allowed: {', '.join(sorted(required | optional))})")
    for k in sorted(required):
        if k not in v:
            raise _err(_join(path, k), "required field is missing")
    return v


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise _err(path, "expected a list")
    if len(v) > MAX_ITEMS:
        raise _err(path, f"more than {MAX_ITEMS} items")
    return v


def _str(v: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(v, str) or (not v and not allow_empty):
        raise _err(path, "expected a non-empty string")
    return v


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise _err(path, "expected true or false")
    return v


def _uint(v: Any, path: str) -> int:
    if isinstance(v, str) and v.lower().startswith("0x"):
        if len(v) > 2 + 16:
            raise _err(path, f"larger than {MAX_UINT} (an unsigned 64-bit integer)")
        try:
            v = int(v, 16)
        except ValueError as exc:
            raise _err(path, "expected an integer or 0x-prefixed hex") from exc
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _err(path, "expected a non-negative integer")
    if v > MAX_UINT:
        raise _err(path, f"larger than {MAX_UINT} (an unsigned 64-bit integer)")
    return v


def _hex(v: Any, path: str) -> bytes:
    if not isinstance(v, str) or not v:
        raise _err(path, "expected a hex string")
    try:
        b = bytes.fromhex(v)
    except ValueError as exc:
        raise _err(path, f"not valid hex: {v[:20]!r}") from exc
    if any(c.isspace() for c in v):
        raise _err(path, "hex must not contain whitespace")
    if len(b) > MAX_BYTES_FIELD:
        raise _err(path, f"longer than {MAX_BYTES_FIELD} bytes")
    return b


def _version(v: Any, path: str) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise _err(path, "a version must be a quoted string (YAML reads 1.10 as 1.1)")
    s = _str(v, path)
    if len(s) > MAX_VERSION_CHARS:
        raise _err(path, f"a version is at most {MAX_VERSION_CHARS} characters")
    # ASCII digits only: str.isdigit() also admits "²" and other digits int() refuses.
    if not _DOTTED_NUMERIC.fullmatch(s):
        raise _err(path, f"version {s!r} must be dotted numeric (e.g. 1.2.3)")
    return s


# --------------------------------------------------------------------------------------
# Reference Values.
# --------------------------------------------------------------------------------------
_CLASS_FIELDS = {"implementation_id", "hardware_model", "components", "allowed_lifecycles",
                 "reject_unknown_components", "source"}
_COMPONENT_FIELDS = {"measurement_values", "signer_ids", "min_version",
                     "min_security_version", "required"}


def parse_reference_values(doc: Any) -> ReferenceValues:
    """Build Reference Values from a parsed devattest reference-values document.

    Raises:
        ProvisioningSchemaError: the document breaks the schema; ``path`` names the field.
    """
    top = _obj(doc, "", required={"classes"}, optional={"format"})
    if "format" in top and top["format"] != REFERENCE_VALUES_FORMAT:
        raise _err("format", f"expected {REFERENCE_VALUES_FORMAT!r}")
    sets: list[ReferenceValueSet] = []
    seen: dict[bytes | str, str] = {}
    for i, c in enumerate(_list(top["classes"], "classes")):
        path = f"classes[{i}]"
        rvs = _class(c, path)
        if rvs.class_id in seen:
            raise _err(path, f"same class as {seen[rvs.class_id]}")
        seen[rvs.class_id] = path
        sets.append(rvs)
    return ReferenceValues.of(sets)


def _class(c: Any, path: str) -> ReferenceValueSet:
    c = _obj(c, path, required={"components"}, optional=_CLASS_FIELDS)
    has_impl, has_model = "implementation_id" in c, "hardware_model" in c
    if has_impl == has_model:
        raise _err(path, "exactly one of implementation_id or hardware_model is required")
    class_id: bytes | str = (_hex(c["implementation_id"], f"{path}.implementation_id")
                             if has_impl else _str(c["hardware_model"], f"{path}.hardware_model"))
    components: list[ComponentReference] = []
    names: set[str] = set()
    for j, comp in enumerate(_list(c["components"], f"{path}.components")):
        ref = _component(comp, f"{path}.components[{j}]")
        if ref.measurement_type in names:
            raise _err(f"{path}.components[{j}].measurement_type",
                       f"duplicate component {ref.measurement_type!r}")
        names.add(ref.measurement_type)
        components.append(ref)
    lifecycles = None
    if c.get("allowed_lifecycles") is not None:
        lifecycles = frozenset(
            _uint(v, f"{path}.allowed_lifecycles[{k}]")
            for k, v in enumerate(_list(c["allowed_lifecycles"], f"{path}.allowed_lifecycles")))
    return ReferenceValueSet(
        class_id=class_id,
        components=tuple(components),
        allowed_lifecycles=lifecycles,
        reject_unknown_components=_bool(c.get("reject_unknown_components", True),
                                        f"{path}.reject_unknown_components"),
        source=_str(c.get("source", ""), f"{path}.source", allow_empty=True),
    )


def _component(c: Any, path: str) -> ComponentReference:
    c = _obj(c, path, required={"measurement_type"}, optional=_COMPONENT_FIELDS)

    def hexes(key: str) -> frozenset[bytes]:
        return frozenset(_hex(v, f"{path}.{key}[{k}]")
                         for k, v in enumerate(_list(c.get(key, []), f"{path}.{key}")))

    return ComponentReference(
        measurement_type=_str(c["measurement_type"], f"{path}.measurement_type",
                              allow_empty=True),
        measurement_values=hexes("measurement_values"),
        signer_ids=hexes("signer_ids"),
        min_version=(None if c.get("min_version") is None
                     else _version(c["min_version"], f"{path}.min_version")),
        min_security_version=(None if c.get("min_security_version") is None
                              else _uint(c["min_security_version"],
                                         f"{path}.min_security_version")),
        required=_bool(c.get("required", True), f"{path}.required"),
    )


def dump_reference_values(rv: ReferenceValues) -> dict[str, Any]:
    """The document :func:`parse_reference_values` reads back into an equal object.

    Output is deterministic: hex lists sorted, optional fields omitted when unset.
    """
    classes = []
    for s in rv.sets:
        cls: dict[str, Any] = ({"implementation_id": s.class_id.hex()}
                               if isinstance(s.class_id, bytes)
                               else {"hardware_model": s.class_id})
        comps = []
        for c in s.components:
            d: dict[str, Any] = {"measurement_type": c.measurement_type}
            if c.measurement_values:
                d["measurement_values"] = sorted(v.hex() for v in c.measurement_values)
            if c.signer_ids:
                d["signer_ids"] = sorted(v.hex() for v in c.signer_ids)
            if c.min_version is not None:
                d["min_version"] = c.min_version
            if c.min_security_version is not None:
                d["min_security_version"] = c.min_security_version
            d["required"] = c.required
            comps.append(d)
        cls["components"] = comps
        if s.allowed_lifecycles is not None:
            cls["allowed_lifecycles"] = sorted(s.allowed_lifecycles)
        cls["reject_unknown_components"] = s.reject_unknown_components
        if s.source:
            cls["source"] = s.source
        classes.append(cls)
    return {"format": REFERENCE_VALUES_FORMAT, "classes": classes}


# --------------------------------------------------------------------------------------
# Trust Anchors.
# --------------------------------------------------------------------------------------
_KEY_FIELDS = {"instance_id", "kid", "public_key", "jwk", "label", "hardware_backed",
               "manufacturer", "owner"}
_CERT_FIELDS = {"certificate", "manufacturer", "owner", "crls"}
_PUBLIC_KEYS = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey,
                rsa.RSAPublicKey)
_JWK_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(),
                                             "P-521": ec.SECP521R1()}


def parse_trust_anchors(doc: Any) -> TrustAnchors:
    """Build Trust Anchors from a parsed devattest trust-anchors document.

    Raises:
        ProvisioningSchemaError: the document breaks the schema (including a private key
            where a public key belongs, or a certificate that is not a CA).
    """
    top = _obj(doc, "", required=set(), optional={"format", "keys", "certificates"})
    if "format" in top and top["format"] != TRUST_ANCHORS_FORMAT:
        raise _err("format", f"expected {TRUST_ANCHORS_FORMAT!r}")
    if "keys" not in top and "certificates" not in top:
        raise _err("", "at least one of keys or certificates is required")
    keys: list[KeyAnchor] = []
    seen_iid: dict[bytes, str] = {}
    seen_kid: dict[bytes, str] = {}
    for i, k in enumerate(_list(top.get("keys", []), "keys")):
        path = f"keys[{i}]"
        anchor = _key(k, path)
        for value, seen, name in ((anchor.instance_id, seen_iid, "instance_id"),
                                  (anchor.kid, seen_kid, "kid")):
            if value is not None:
                if value in seen:
                    raise _err(f"{path}.{name}", f"same {name} as {seen[value]}")
                seen[value] = path
        keys.append(anchor)
    certs = [_certificate(c, f"certificates[{i}]")
             for i, c in enumerate(_list(top.get("certificates", []), "certificates"))]
    return TrustAnchors.of(keys=keys, certificates=certs)


def _authority(c: Mapping[str, Any], path: str, *, required: bool) -> str:
    if "manufacturer" in c and "owner" in c:
        raise _err(path, "give manufacturer or owner, not both")
    for role in ("manufacturer", "owner"):
        if role in c:
            return f"{role}:{_str(c[role], f'{path}.{role}')}"
    if required:
        raise _err(path, "one of manufacturer or owner is required")
    return ""


def _key(k: Any, path: str) -> KeyAnchor:
    k = _obj(k, path, required=set(), optional=_KEY_FIELDS)
    if ("public_key" in k) == ("jwk" in k):
        raise _err(path, "exactly one of public_key (PEM) or jwk is required")
    if "instance_id" not in k and "kid" not in k:
        raise _err(path, "at least one of instance_id or kid is required to find the key")
    key = (_pem_public_key(k["public_key"], f"{path}.public_key") if "public_key" in k
           else _jwk(k["jwk"], f"{path}.jwk"))
    return KeyAnchor(
        public_key=key,
        instance_id=_hex(k["instance_id"], f"{path}.instance_id") if "instance_id" in k else None,
        kid=_hex(k["kid"], f"{path}.kid") if "kid" in k else None,
        label=_str(k.get("label", ""), f"{path}.label", allow_empty=True),
        hardware_backed=_bool(k.get("hardware_backed", False), f"{path}.hardware_backed"),
        authority=_authority(k, path, required=False),
    )


def _pem_public_key(v: Any, path: str) -> Any:
    text = _str(v, path).strip()
    if "PRIVATE KEY" in text.split("\n", 1)[0]:
        raise _err(path, "this is a private key; provision only the public key")
    if not text.startswith("-----BEGIN PUBLIC KEY-----"):
        raise _err(path, "expected a PEM 'PUBLIC KEY' (SubjectPublicKeyInfo)")
    try:
        key = load_pem_public_key(text.encode())
    except UnsupportedAlgorithm as exc:
        raise _err(path, f"unsupported key algorithm or curve: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise _err(path, f"not a valid public key: {exc}") from exc
    if not isinstance(key, _PUBLIC_KEYS):
        raise _err(path, f"unsupported key type {type(key).__name__}")
    return key


def _b64url(v: Any, path: str) -> bytes:
    s = _str(v, path)
    if "=" in s or "+" in s or "/" in s:
        raise _err(path, "JWK values are unpadded base64url")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _err(path, "not valid base64url") from exc


def _jwk(v: Any, path: str) -> Any:
    if not isinstance(v, Mapping):
        raise _err(path, "expected a JWK object")
    if "d" in v:
        raise _err(f"{path}.d", "this JWK holds a private key; provision only the public key")
    kty = v.get("kty")
    allowed_common = {"kty", "kid", "alg", "use", "key_ops"}
    try:
        if kty == "EC":
            _obj(v, path, required={"crv", "x", "y"}, optional=allowed_common)
            curve = _JWK_CURVES.get(_str(v["crv"], f"{path}.crv"))
            if curve is None:
                raise _err(f"{path}.crv", f"unsupported curve {v['crv']!r}")
            size = (curve.key_size + 7) // 8
            x, y = _b64url(v["x"], f"{path}.x"), _b64url(v["y"], f"{path}.y")
            if len(x) != size or len(y) != size:
                raise _err(path, f"x and y must be {size} bytes for {v['crv']}")
            return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"),
                                                 int.from_bytes(y, "big"), curve).public_key()
        if kty == "OKP":
            _obj(v, path, required={"crv", "x"}, optional=allowed_common)
            loaders: dict[str, Callable[[bytes], Any]] = {
                "Ed25519": ed25519.Ed25519PublicKey.from_public_bytes,
                "Ed448": ed448.Ed448PublicKey.from_public_bytes}
            if _str(v["crv"], f"{path}.crv") not in loaders:
                raise _err(f"{path}.crv", f"unsupported curve {v['crv']!r}")
            return loaders[v["crv"]](_b64url(v["x"], f"{path}.x"))
        if kty == "oct":
            _obj(v, path, required={"k"}, optional=allowed_common)
            secret = _b64url(v["k"], f"{path}.k")
            if len(secret) < 32:
                raise _err(f"{path}.k", "a MAC key must be at least 32 bytes")
            return secret
    except ValueError as exc:
        raise _err(path, f"not a valid key: {exc}") from exc
    raise _err(f"{path}.kty", "expected EC, OKP or oct")


def _certificate(c: Any, path: str) -> CertificateAnchor:
    c = _obj(c, path, required={"certificate"}, optional=_CERT_FIELDS)
    text = _str(c["certificate"], f"{path}.certificate").strip()
    if text.count("-----BEGIN CERTIFICATE-----") != 1:
        raise _err(f"{path}.certificate", "expected exactly one PEM certificate")
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
        # The key and the extensions are decoded lazily: decode them now, so that a
        # certificate devattest cannot use is refused here and not at appraisal time.
        cert_key = cert.public_key()
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    except UnsupportedAlgorithm as exc:
        raise _err(f"{path}.certificate", f"unsupported key algorithm or curve: {exc}"
                   ) from exc
    except ValueError as exc:
        raise _err(f"{path}.certificate", f"not a valid certificate: {exc}") from exc
    if not isinstance(cert_key, _PUBLIC_KEYS):
        raise _err(f"{path}.certificate", f"unsupported key type {type(cert_key).__name__}")
    if bc is None or not bc.ca:
        raise _err(f"{path}.certificate", "not a CA certificate (basicConstraints cA is not "
                                          "true)")
    crls = []
    for j, crl in enumerate(_list(c.get("crls", []), f"{path}.crls")):
        try:
            crls.append(x509.load_pem_x509_crl(_str(crl, f"{path}.crls[{j}]").encode()))
        except ValueError as exc:
            raise _err(f"{path}.crls[{j}]", f"not a valid CRL: {exc}") from exc
    return CertificateAnchor(certificate=cert, authority=_authority(c, path, required=True),
                             crls=tuple(crls))


# --------------------------------------------------------------------------------------
# File wrappers (the only I/O).
# --------------------------------------------------------------------------------------
def _read(path: str | Path) -> tuple[bytes, Format]:
    p = Path(path)
    with p.open("rb") as fh:
        data = fh.read(MAX_DOCUMENT_SIZE + 1)
    return data, "json" if p.suffix.lower() == ".json" else "yaml"


def load_reference_values_file(path: str | Path) -> ReferenceValues:
    """Read a JSON (``.json``) or YAML file of Reference Values.

    Raises:
        ProvisioningSchemaError: see :func:`parse_reference_values`.
        OSError: the file cannot be read.
    """
    data, fmt = _read(path)
    return parse_reference_values(loads_document(data, fmt=fmt))


def load_trust_anchors_file(path: str | Path) -> TrustAnchors:
    """Read a JSON (``.json``) or YAML file of Trust Anchors.

    Raises:
        ProvisioningSchemaError: see :func:`parse_trust_anchors`.
        OSError: the file cannot be read.
    """
    data, fmt = _read(path)
    return parse_trust_anchors(loads_document(data, fmt=fmt))
