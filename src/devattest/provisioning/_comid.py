"""CoMID (draft-ietf-rats-corim-11 section 5) triples to devattest Reference Values and
attestation-key Trust Anchors, under the generic rules or the PSA profile.

The PSA rules follow Veraison's psa-iot scheme and draft-ietf-rats-corim-11 Appendix
(PSA endorsements): a reference-value environment is a class with a PSA implementation ID
and no instance; an attest-key environment adds the Instance ID as a UEID; the key is exactly
one PKIX base64 public key; each measurement is keyed ``"psa.software-component"`` (or the
legacy ``psa.refval-id``, tag 601) and carries digests.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import cbor2
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from devattest import errors
from devattest.errors import shown as show
from devattest.model import ComponentReference, KeyAnchor
from devattest.provisioning._cbor import MAX_UINT

# CBOR tags (draft-ietf-rats-corim-11 section 12, cbor-tags.txt; RFC 9562 / RFC 9090).
TAG_UUID = 37
TAG_OID = 111
TAG_UEID = 550
TAG_SVN = 552
TAG_MIN_SVN = 553
TAG_PKIX_KEY = 554
TAG_PKIX_CERT = 555
TAG_PKIX_CERT_PATH = 556
TAG_BYTES = 560
TAG_PKIX_DER_CERT = 562
# Legacy PSA endorsement tags (draft-xyz-rats-psa-endorsements, Veraison "psa.impl-id").
TAG_PSA_IMPL_ID = 600
TAG_PSA_REFVAL_ID = 601

PSA_SOFTWARE_COMPONENT = "psa.software-component"

#: Measurement-values-map keys (section 5.1.4.1.4.2) devattest can enforce.
_MVAL_VERSION = 0
_MVAL_SVN = 1
_MVAL_DIGESTS = 2
_MVAL_NAME = 11
_MVAL_CRYPTOKEYS = 13
_SUPPORTED_MVAL = frozenset({_MVAL_VERSION, _MVAL_SVN, _MVAL_DIGESTS, _MVAL_NAME,
                             _MVAL_CRYPTOKEYS})

#: Named-information hash algorithm IDs (IANA) to digest length.
_HASH_LENGTHS: dict[int | str, int] = {
    1: 32, "sha-256": 32, 2: 16, "sha-256-128": 16, 3: 15, "sha-256-120": 15,
    4: 12, "sha-256-96": 12, 5: 8, "sha-256-64": 8, 6: 4, "sha-256-32": 4,
    7: 48, "sha-384": 48, 8: 64, "sha-512": 64, 9: 28, "sha3-224": 28,
    10: 32, "sha3-256": 32, 11: 48, "sha3-384": 48, 12: 64, "sha3-512": 64,
}

#: Longest OID (its DER contents octets) accepted: real OIDs are a few dozen bytes.
MAX_OID_BYTES = 64
#: Longest version text (version-map ``version``) accepted.
MAX_VERSION_CHARS = 64

Profile = Literal["generic", "psa"]
ClassKey = Literal["class-id", "model"]


def _fail(reason: str, message: str, cls: type[errors.CorimError] = errors.CorimMalformed
          ) -> errors.CorimError:
    return cls(message, reason=reason)


def _violation(reason: str, message: str) -> errors.CorimError:
    return errors.CorimProfileViolation(message, reason=reason)


# --------------------------------------------------------------------------------------
# Accumulated results of one or more CoMIDs.
# --------------------------------------------------------------------------------------
@dataclass
class _Component:
    measurement_type: str
    digests: set[bytes] = field(default_factory=set)
    signers: set[bytes] = field(default_factory=set)
    any_digest: bool = False
    any_signer: bool = False
    versions: list[str | None] = field(default_factory=list)
    svns: list[int | None] = field(default_factory=list)

    def freeze(self) -> ComponentReference:
        # Several measurement-maps for one component are alternatives (section 8.5: any
        # matching reference triple suffices), so the floor is the lowest of them and an
        # alternative without a digest/signer/floor constraint removes that constraint.
        min_version = None if None in self.versions or not self.versions else min(
            (v for v in self.versions if v is not None), key=_version_key)
        min_svn = None if None in self.svns or not self.svns else min(
            s for s in self.svns if s is not None)
        return ComponentReference(
            measurement_type=self.measurement_type,
            measurement_values=frozenset() if self.any_digest else frozenset(self.digests),
            signer_ids=frozenset() if self.any_signer else frozenset(self.signers),
            min_version=min_version,
            min_security_version=min_svn,
            required=True,
        )


@dataclass
class Accumulator:
    """Reference values per class and key anchors collected across the CoMIDs of a CoRIM."""

    classes: dict[bytes | str, dict[str, _Component]] = field(default_factory=dict)
    class_sources: dict[bytes | str, list[str]] = field(default_factory=dict)
    keys: list[KeyAnchor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _version_key(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


# --------------------------------------------------------------------------------------
# CoMID structure (section 5.1).
# --------------------------------------------------------------------------------------
def tag_id_text(value: Any, *, what: str) -> str:
    """A tag-id / corim-id (tstr or 16-byte UUID) as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    raise _fail(f"{what.replace(' ', '_')}_type", f"{what}: expected tstr or 16-byte UUID")


def read_comid(comid: Any, acc: Accumulator, *, profile: Profile, class_key: ClassKey,
               index: int) -> str:
    """Validate one decoded concise-mid-tag and add its triples to ``acc``.

    Returns:
        The CoMID's tag-id (with its version, if any) for reporting.

    Raises:
        CorimMalformed: the CoMID breaks the CDDL.
        CorimProfileViolation: a triple breaks the PSA profile.
        CorimUnsupported: a triple uses a key type devattest cannot load.
    """
    where = f"tags[{index}]"
    if not isinstance(comid, dict):
        raise _fail("comid_not_map", f"{where}: a CoMID must be a map")
    # 5.1: tag-identity (1) and triples (4) are mandatory.
    identity = comid.get(1)
    if not isinstance(identity, dict) or 0 not in identity:
        raise _fail("comid_tag_identity", f"{where}: tag-identity (1) with tag-id (0) missing")
    tag_id = tag_id_text(identity[0], what=f"{where} tag-id")
    version = identity.get(1, 0)
    if (not isinstance(version, int) or isinstance(version, bool) or not
            0 <= version <= MAX_UINT):
        raise _fail("comid_tag_version", f"{where}: tag-version must be a uint (64 bits)")
    source = f"{tag_id}@{version}"
    lang = comid.get(0)
    if lang is not None and not isinstance(lang, str):
        raise _fail("comid_language", f"{where}: language (0) must be text")
    triples = comid.get(4)
    if not isinstance(triples, dict) or not triples:
        raise _fail("comid_triples", f"{where}: triples (4) must be a non-empty map")
    for key, records in triples.items():
        if not isinstance(records, list) or not records:
            raise _fail("triples_not_list",
                        f"{where}: triples[{show(key)}] must be a non-empty array")
        if key == 0:
            for i, rec in enumerate(records):
                _reference_triple(rec, acc, profile=profile, class_key=class_key,
                                  where=f"{where} reference-triples[{i}]", source=source)
        elif key == 3:
            for i, rec in enumerate(records):
                _attest_key_triple(rec, acc, profile=profile,
                                   where=f"{where} attest-key-triples[{i}]", source=source)
        else:
            acc.notes.append(f"{where}: triples {show(key)} ignored (not reference values or "
                             f"attestation keys)")
    return source


# --------------------------------------------------------------------------------------
# Environments (section 5.1.4.1).
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Env:
    class_id: Any = None
    class_id_kind: str | None = None
    vendor: str | None = None
    model: str | None = None
    has_class: bool = False
    instance: Any = None
    instance_kind: str | None = None


def _kind(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return "uuid"
    if isinstance(value, cbor2.CBORTag):
        return {TAG_UUID: "uuid", TAG_OID: "oid", TAG_BYTES: "bytes", TAG_UEID: "ueid",
                TAG_PSA_IMPL_ID: "psa.impl-id", TAG_PKIX_KEY: "pkix-base64-key",
                TAG_PKIX_CERT: "pkix-base64-cert", TAG_PKIX_CERT_PATH: "pkix-base64-cert-path",
                TAG_PKIX_DER_CERT: "pkix-asn1der-cert", 558: "cose-key",
                557: "key-thumbprint", 559: "cert-thumbprint", 561: "cert-path-thumbprint",
                TAG_PSA_REFVAL_ID: "psa.refval-id"}.get(value.tag, f"tag {value.tag}")
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "uint" if value >= 0 else "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "untagged bytes"
    return type(value).__name__


def _environment(env: Any, *, where: str) -> _Env:
    # 5.1.4.1: environment-map = non-empty<{ ? class, ? instance, ? group }>.
    if not isinstance(env, dict) or not env:
        raise _fail("environment", f"{where}: environment must be a non-empty map")
    cls = env.get(0)
    out: dict[str, Any] = {}
    if cls is not None:
        if not isinstance(cls, dict) or not cls:
            raise _fail("class_map", f"{where}: class (0) must be a non-empty map")
        out["has_class"] = True
        if 0 in cls:
            out["class_id"] = cls[0]
            out["class_id_kind"] = _kind(cls[0])
        for k, name in ((1, "vendor"), (2, "model")):
            if k in cls:
                if not isinstance(cls[k], str):
                    raise _fail(f"class_{name}", f"{where}: class {name} must be text")
                out[name] = cls[k]
        for k in (3, 4):
            if k in cls and (not isinstance(cls[k], int) or isinstance(cls[k], bool)
                             or not 0 <= cls[k] <= MAX_UINT):
                raise _fail("class_layer_index", f"{where}: class layer/index must be uint")
    if 1 in env:
        out["instance"] = env[1]
        out["instance_kind"] = _kind(env[1])
    return _Env(**out)


def _class_id_bytes(value: Any, *, where: str) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, cbor2.CBORTag) and isinstance(value.value, bytes) and value.tag in (
            TAG_UUID, TAG_OID, TAG_BYTES, TAG_PSA_IMPL_ID):
        if value.tag == TAG_UUID and len(value.value) != 16:
            raise _fail("class_id_uuid", f"{where}: class-id UUID must be 16 bytes")
        return value.value
    raise _fail("class_id_type", f"{where}: class-id must be a tagged OID, UUID or bytes, "
                                 f"got {_kind(value)}")


def _psa_environment(env: _Env, *, trust_anchor: bool, where: str) -> bytes:
    """PSA profile environment rules; returns the implementation ID."""
    if not env.has_class:
        raise _violation("psa_class_missing", f"{where}: class missing")
    if env.class_id is None:
        raise _violation("psa_class_id_missing", f"{where}: class ID missing")
    if not (isinstance(env.class_id, cbor2.CBORTag)
            and env.class_id.tag in (TAG_BYTES, TAG_PSA_IMPL_ID)
            and isinstance(env.class_id.value, bytes)):
        raise _violation("psa_class_id_type",
                         f"{where}: class ID: expected psa.impl-id, got {env.class_id_kind}")
    impl_id: bytes = env.class_id.value
    if len(impl_id) != 32:
        raise _violation("psa_class_id_length", f"{where}: class ID: a PSA implementation "
                                                f"ID is 32 bytes, got {len(impl_id)}")
    if trust_anchor:
        if env.instance is None:
            raise _violation("psa_instance_missing",
                             f"{where}: instance not set for trust anchor")
        if env.instance_kind != "ueid":
            raise _violation("psa_instance_type",
                             f"{where}: instance: expected UEID, got {env.instance_kind}")
    elif env.instance is not None:
        raise _violation("psa_refval_instance", f"{where}: instance set for reference value")
    return impl_id


# --------------------------------------------------------------------------------------
# Reference-value triples (section 5.1.5) and measurements (section 5.1.4.1.4).
# --------------------------------------------------------------------------------------
def _reference_triple(rec: Any, acc: Accumulator, *, profile: Profile, class_key: ClassKey,
                      where: str, source: str) -> None:
    if not isinstance(rec, list) or len(rec) != 2:
        raise _fail("reference_triple", f"{where}: a reference triple is [environment, "
                                        f"[+ measurement-map]]")
    env = _environment(rec[0], where=where)
    measurements = rec[1]
    if not isinstance(measurements, list) or not measurements:
        raise _fail("measurements", f"{where}: measurements must be a non-empty array")
    class_id: bytes | str
    if profile == "psa":
        class_id = _psa_environment(env, trust_anchor=False, where=where)
    else:
        chosen = _generic_class(env, class_key=class_key, where=where)
        if chosen is None:
            acc.notes.append(f"{where}: skipped (environment has no class-id or model)")
            return
        class_id = chosen
    components = acc.classes.setdefault(class_id, {})
    srcs = acc.class_sources.setdefault(class_id, [])
    if source not in srcs:
        srcs.append(source)
    for i, m in enumerate(measurements):
        parsed = _measurement(m, profile=profile, where=f"{where} measurement {i}", index=i)
        if parsed is None:
            acc.notes.append(f"{where} measurement {i}: skipped (constraints devattest cannot "
                             f"enforce); the component stays unknown")
            continue
        mtype, digests, signers, version, svn = parsed
        comp = components.setdefault(mtype, _Component(mtype))
        if digests:
            comp.digests |= digests
        else:
            comp.any_digest = True
        if signers:
            comp.signers |= signers
        else:
            comp.any_signer = True
        comp.versions.append(version)
        comp.svns.append(svn)


def _generic_class(env: _Env, *, class_key: ClassKey, where: str) -> bytes | str | None:
    cid = None if env.class_id is None else _class_id_bytes(env.class_id, where=where)
    if class_key == "model":
        return env.model if env.model is not None else cid
    return cid if cid is not None else env.model


def _mkey_text(mkey: Any, *, where: str) -> str:
    if isinstance(mkey, str):
        return mkey
    if isinstance(mkey, bool):
        raise _fail("mkey_type", f"{where}: measurement key cannot be a bool")
    if isinstance(mkey, int) and mkey >= 0:
        if mkey > MAX_UINT:
            raise _fail("mkey_too_large", f"{where}: measurement key {show(mkey)} is larger "
                                          f"than a 64-bit uint")
        return str(mkey)
    if isinstance(mkey, uuid.UUID):
        return str(mkey)
    if isinstance(mkey, cbor2.CBORTag) and mkey.tag == TAG_OID and isinstance(mkey.value, bytes):
        return oid_text(mkey.value, where=f"{where}: measurement key")
    raise _fail("mkey_type", f"{where}: measurement key must be uint, text, OID or UUID, "
                             f"got {_kind(mkey)}")


def oid_text(der: bytes, *, where: str) -> str:
    """A BER-encoded OID's contents octets (RFC 9090 tag 111, X.690 section 8.19) as dotted
    text.

    Raises:
        CorimMalformed: empty, longer than :data:`MAX_OID_BYTES`, an arc that is not
            minimally encoded or wider than 64 bits, or a truncated last arc.
    """
    # RFC 9090 section 2.1: the bytes are the contents octets of a BER OID; X.690 8.19.2:
    # each arc is base-128, high bit set on all but its last byte, no leading 0x80.
    if not der or len(der) > MAX_OID_BYTES:
        raise _fail("oid", f"{where}: an OID is 1 to {MAX_OID_BYTES} bytes, got {len(der)}")
    arcs: list[int] = []
    n = 0
    start = True
    for b in der:
        if start and b == 0x80:
            raise _fail("oid", f"{where}: OID arc is not minimally encoded")
        n = (n << 7) | (b & 0x7F)
        if n > MAX_UINT:
            raise _fail("oid", f"{where}: OID arc wider than 64 bits")
        start = not b & 0x80
        if start:
            arcs.append(n)
            n = 0
    if not start:
        raise _fail("oid", f"{where}: OID ends inside an arc")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def _measurement(m: Any, *, profile: Profile, where: str, index: int
                 ) -> tuple[str, set[bytes], set[bytes], str | None, int | None] | None:
    # measurement-map = { ? mkey (0), mval (1), ? authorized-by (2) }.
    if not isinstance(m, dict) or 1 not in m:
        raise _fail("measurement_map", f"{where}: measurement-map needs mval (1)")
    mval = m[1]
    if not isinstance(mval, dict) or not mval:
        raise _fail("mval", f"{where}: mval must be a non-empty map")
    mkey = m.get(0)
    signers: set[bytes] = set()
    label: str | None = None
    ref_version: str | None = None
    if profile == "psa":
        # PSA: the key is "psa.software-component" (draft -11 / 2025 profile) or the legacy
        # 601(psa.refval-id {1: label, 4: version, 5: signer-id}); digests are mandatory.
        if isinstance(mkey, cbor2.CBORTag) and mkey.tag == TAG_PSA_REFVAL_ID:
            label, ref_version, signer = _psa_refval_id(mkey.value, where=where)
            signers.add(signer)
        elif mkey != PSA_SOFTWARE_COMPONENT:
            raise _violation("psa_measurement_key",
                             f"measurement {index} key: expected psa.software-component or "
                             f"psa.refval-id, got {_kind(mkey)} ({where})")
        if _MVAL_DIGESTS not in mval:
            raise _violation("psa_measurement_no_digests",
                             f"measurement {index} value: no digests ({where})")
    if profile == "generic" and not _all_signer_ids(mval.get(_MVAL_CRYPTOKEYS)):
        return None
    if set(mval) - _SUPPORTED_MVAL or 2 in m:
        if profile == "psa":
            raise _violation("psa_measurement_unsupported",
                             f"{where}: mval keys {sorted(map(str, set(mval) - _SUPPORTED_MVAL))}"
                             f" or authorized-by are not part of PSA reference values")
        return None
    name = mval.get(_MVAL_NAME)
    if name is not None and not isinstance(name, str):
        raise _fail("mval_name", f"{where}: name (11) must be text")
    if profile == "psa":
        mtype = label if label is not None else (name or "")
    elif mkey is None or mkey == PSA_SOFTWARE_COMPONENT:
        mtype = name or ""
    else:
        mtype = _mkey_text(mkey, where=where)
    digests = _digests(mval.get(_MVAL_DIGESTS), where=where)
    signers |= _signer_keys(mval.get(_MVAL_CRYPTOKEYS), profile=profile, where=where)
    version = _version(mval.get(_MVAL_VERSION), where=where)
    if ref_version is not None:
        version = version or ref_version
    svn = _svn(mval.get(_MVAL_SVN), where=where)
    return mtype, digests, signers, version, svn


def _all_signer_ids(value: Any) -> bool:
    return not isinstance(value, list) or all(
        isinstance(k, cbor2.CBORTag) and k.tag == TAG_BYTES for k in value)


def _psa_refval_id(value: Any, *, where: str) -> tuple[str | None, str | None, bytes]:
    if not isinstance(value, dict):
        raise _violation("psa_refval_id", f"{where}: psa.refval-id must be a map")
    label, version, signer = value.get(1), value.get(4), value.get(5)
    if label is not None and not isinstance(label, str):
        raise _violation("psa_refval_id", f"{where}: psa.refval-id label must be text")
    if version is not None and not isinstance(version, str):
        raise _violation("psa_refval_id", f"{where}: psa.refval-id version must be text")
    if not isinstance(signer, bytes) or len(signer) not in (32, 48, 64):
        raise _violation("psa_refval_id", f"{where}: psa.refval-id signer-id must be 32, 48 "
                                          f"or 64 bytes")
    return label, version, signer


def _digests(value: Any, *, where: str) -> set[bytes]:
    if value is None:
        return set()
    if not isinstance(value, list) or not value:
        raise _fail("digests", f"{where}: digests (2) must be a non-empty array")
    out: set[bytes] = set()
    for d in value:
        if (not isinstance(d, list) or len(d) != 2 or not isinstance(d[1], bytes)
                or isinstance(d[0], bool) or not isinstance(d[0], int | str)):
            raise _fail("digest", f"{where}: a digest is [hash-alg-id (int/text), bstr]")
        expected = _HASH_LENGTHS.get(d[0].lower() if isinstance(d[0], str) else d[0])
        if expected is not None and len(d[1]) != expected:
            raise _fail("digest_length", f"{where}: digest for alg {show(d[0])} must be "
                                         f"{expected} bytes, got {len(d[1])}")
        if not d[1]:
            raise _fail("digest_length", f"{where}: empty digest")
        out.add(d[1])
    return out


def _signer_keys(value: Any, *, profile: Profile, where: str) -> set[bytes]:
    if value is None:
        return set()
    if not isinstance(value, list) or not value:
        raise _fail("cryptokeys", f"{where}: cryptokeys (13) must be a non-empty array")
    out: set[bytes] = set()
    for k in value:
        if isinstance(k, cbor2.CBORTag) and k.tag == TAG_BYTES and isinstance(k.value, bytes):
            if profile == "psa" and len(k.value) not in (32, 48, 64):
                raise _violation("psa_signer_id_length",
                                 f"{where}: a PSA signer ID is 32, 48 or 64 bytes")
            out.add(k.value)
        else:
            raise errors.CorimUnsupported(
                f"{where}: cryptokeys entry {_kind(k)} is not a signer ID (tagged bytes)",
                reason="cryptokeys_type")
    return out


def _version(value: Any, *, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(0), str):
        raise _fail("version_map", f"{where}: version (0) must be {{0: text, ? 1: scheme}}")
    if len(value[0]) > MAX_VERSION_CHARS:
        raise _fail("version_map", f"{where}: version text longer than {MAX_VERSION_CHARS} "
                                   f"characters")
    return str(value[0])


def _svn(value: Any, *, where: str) -> int | None:
    # svn-type-choice = uint / 552(uint) exact / 553(uint) minimum. devattest keeps a floor
    # (ComponentReference.min_security_version), so an exact SVN becomes the floor.
    if value is None:
        return None
    inner = value.value if isinstance(value, cbor2.CBORTag) and value.tag in (
        TAG_SVN, TAG_MIN_SVN) else value
    if isinstance(value, cbor2.CBORTag) and value.tag not in (TAG_SVN, TAG_MIN_SVN):
        raise _fail("svn", f"{where}: svn must be uint, 552(uint) or 553(uint)")
    if isinstance(inner, bool) or not isinstance(inner, int) or not 0 <= inner <= MAX_UINT:
        raise _fail("svn", f"{where}: svn must be a uint (64 bits)")
    return inner


# --------------------------------------------------------------------------------------
# Attest-key triples (section 5.1.10) and keys (section 5.1.4.1.4.9).
# --------------------------------------------------------------------------------------
def _attest_key_triple(rec: Any, acc: Accumulator, *, profile: Profile, where: str,
                       source: str) -> None:
    if not isinstance(rec, list) or len(rec) not in (2, 3):
        raise _fail("attest_key_triple", f"{where}: an attest-key triple is [environment, "
                                         f"[+ key], ? conditions]")
    env = _environment(rec[0], where=where)
    keys = rec[1]
    if not isinstance(keys, list) or not keys:
        raise _fail("key_list", f"{where}: key-list must be a non-empty array")
    if profile == "psa":
        impl_id = _psa_environment(env, trust_anchor=True, where=where)
        if len(keys) != 1:
            raise _violation("psa_key_count",
                             f"{where}: expected exactly one key but got {len(keys)}")
        if not (isinstance(keys[0], cbor2.CBORTag) and keys[0].tag == TAG_PKIX_KEY):
            raise _violation("psa_key_type", f"{where}: trust anchor must be a PKIX base64 "
                                             f"key, found: {_kind(keys[0])}")
        if len(rec) == 3:
            raise _violation("psa_key_conditions",
                             f"{where}: conditional attestation keys are not part of PSA")
        instance_id = _ueid(env.instance, where=where)
        if instance_id[0] != 0x01 or len(instance_id) != 33:
            raise _violation("psa_instance_id", f"{where}: a PSA Instance ID is 0x01 followed "
                                                f"by 32 bytes")
        label = f"psa impl-id {impl_id.hex()}"
        if env.vendor or env.model:
            label += f" ({' '.join(x for x in (env.vendor, env.model) if x)})"
        acc.keys.append(KeyAnchor(public_key=_load_key(keys[0], where=where),
                                  instance_id=instance_id, label=label,
                                  authority=f"corim:{source}"))
        return
    if len(rec) == 3:
        acc.notes.append(f"{where}: skipped (conditional attestation keys are not supported)")
        return
    if env.instance is None:
        acc.notes.append(f"{where}: skipped (no instance to bind the key to)")
        return
    if env.instance_kind == "ueid":
        instance_id = _ueid(env.instance, where=where)
    elif env.instance_kind == "bytes" and isinstance(env.instance.value, bytes):
        instance_id = env.instance.value
    else:
        acc.notes.append(f"{where}: skipped (instance of type {env.instance_kind} cannot "
                         f"index a key)")
        return
    label = " ".join(x for x in (env.vendor, env.model) if x)
    for k in keys:
        acc.keys.append(KeyAnchor(public_key=_load_key(k, where=where), instance_id=instance_id,
                                  label=label, authority=f"corim:{source}"))


def _ueid(value: Any, *, where: str) -> bytes:
    if not (isinstance(value, cbor2.CBORTag) and value.tag == TAG_UEID
            and isinstance(value.value, bytes) and 7 <= len(value.value) <= 33):
        raise _fail("ueid", f"{where}: UEID must be 550(bytes .size (7..33))")
    return value.value


_PUBLIC_KEY_TYPES = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey,
                     ed448.Ed448PublicKey, rsa.RSAPublicKey)


def _load_key(key: Any, *, where: str) -> Any:
    """A ``cryptography`` public key from a crypto-key-type-choice."""
    if not isinstance(key, cbor2.CBORTag):
        raise errors.CorimUnsupported(f"{where}: key of type {_kind(key)} is not supported",
                                      reason="key_type")
    try:
        if key.tag == TAG_PKIX_KEY and isinstance(key.value, str):
            text = key.value.strip()
            pub = (load_pem_public_key(text.encode()) if text.startswith("-----BEGIN")
                   else load_der_public_key(_b64(text)))
        elif key.tag == TAG_PKIX_CERT and isinstance(key.value, str):
            pub = _cert(key.value).public_key()
        elif key.tag == TAG_PKIX_CERT_PATH and isinstance(key.value, str):
            pub = _cert(key.value).public_key()  # the leaf comes first
        elif key.tag == TAG_PKIX_DER_CERT and isinstance(key.value, bytes):
            pub = x509.load_der_x509_certificate(key.value).public_key()
        else:
            raise errors.CorimUnsupported(
                f"{where}: key type {_kind(key)} is not supported (use a PKIX key or "
                f"certificate)", reason="key_type")
    except UnsupportedAlgorithm as exc:
        # A key on a curve (or of a type) the cryptography backend does not implement.
        raise errors.CorimUnsupported(f"{where}: {_kind(key)} holds a key devattest cannot "
                                      f"use ({exc})", reason="key_algorithm") from exc
    except (ValueError, TypeError, binascii.Error) as exc:
        raise _fail("key_invalid", f"{where}: {_kind(key)} does not hold a valid public "
                                   f"key ({exc})") from exc
    if not isinstance(pub, _PUBLIC_KEY_TYPES):
        raise errors.CorimUnsupported(f"{where}: key algorithm {type(pub).__name__} is not "
                                      f"supported", reason="key_algorithm")
    return pub


def _b64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


def _cert(text: str) -> x509.Certificate:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return x509.load_pem_x509_certificate(text.encode())
    return x509.load_der_x509_certificate(_b64(text))


def freeze_components(components: Mapping[str, _Component]) -> tuple[ComponentReference, ...]:
    """Deterministic, frozen component references."""
    return tuple(components[k].freeze() for k in sorted(components))
