"""Claim collection: from a device description to the claims the Attester signs.

A device description (YAML or a mapping) names the firmware images and the state the device's
Root of Trust reports::

    ueid: 01a1b2...                       # optional; by default the PSA Instance ID of the key
    implementation_id: 7f45...             # 32 bytes hex: the device class (PSA)
    hardware_model: acme-sensor-v2         # the device class for EAT / Reference Values
    hardware_version: "2.1"
    security_lifecycle: secured            # or a number: 0x3000
    secure_boot: true
    debug: disabled                        # disabled | enabled | disabled-since-boot | ...
    boot_count: 7
    boot_seed: 0011...                     # optional; random per boot otherwise
    provisioning_epoch: 1
    owner_id: acme-fleet-ops
    owner_epoch: 2
    firmware:                              # measured boot components, in boot order
      - type: BL
        image: images/bl2.bin              # measured: SHA-256 of the file
        version: 1.9.0
        security_version: 3
        signer_id: 5378...                 # or signer_key: keys/fw-signer.pem
    components:                            # loaded components and applets (optional)
      - type: app.payment
        image: applets/payment.cap
        version: 4.2.0

Measuring files is the only I/O here (:func:`measure_device`); everything else is pure.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from devattest.errors import ConfigurationError

#: PSA security lifecycle names (RFC 9783 section 4.3.1) -> the base value of the range.
LIFECYCLES = {
    "unknown": 0x0000,
    "assembly_and_test": 0x1000,
    "psa_rot_provisioning": 0x2000,
    "secured": 0x3000,
    "non_psa_rot_debug": 0x4000,
    "recoverable_psa_rot_debug": 0x5000,
    "decommissioned": 0x6000,
}
#: EAT dbgstat (RFC 9711 section 4.2.9).
DEBUG_STATES = {
    "enabled": 0,
    "disabled": 1,
    "disabled-since-boot": 2,
    "disabled-permanently": 3,
    "disabled-fully-and-permanently": 4,
}
MAX_IMAGE_SIZE = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MeasuredComponent:
    """One measured firmware component or applet."""

    measurement_type: str
    measurement_value: bytes
    version: str | None = None
    security_version: int | None = None
    signer_id: bytes | None = None
    description: str = "sha-256"


@dataclass(frozen=True, slots=True)
class DeviceState:
    """Everything the Attester reports, measured and ready to sign."""

    implementation_id: bytes
    security_lifecycle: int
    firmware: tuple[MeasuredComponent, ...]
    components: tuple[MeasuredComponent, ...] = ()
    hardware_model: str | None = None
    hardware_version: str | None = None
    secure_boot: bool = True
    debug: str = "disabled"
    boot_count: int = 0
    boot_seed: bytes | None = None
    provisioning_epoch: int = 0
    owner_id: str | None = None
    owner_epoch: int = 0
    ueid: bytes | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_owner(self, owner_id: str, owner_epoch: int) -> DeviceState:
        return replace(self, owner_id=owner_id, owner_epoch=owner_epoch)


def _hex(value: Any, *, what: str, length: int | None = None) -> bytes:
    if isinstance(value, bytes):
        out = value
    elif isinstance(value, str):
        try:
            out = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise ConfigurationError(f"{what} must be hexadecimal") from None
    else:
        raise ConfigurationError(f"{what} must be hexadecimal text")
    if length is not None and len(out) != length:
        raise ConfigurationError(f"{what} must be {length} bytes, not {len(out)}")
    return out


def _lifecycle(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.strip().lower().removeprefix("sl_")
        if name in LIFECYCLES:
            return LIFECYCLES[name]
        try:
            return int(name, 0)
        except ValueError:
            pass
    raise ConfigurationError(f"unknown security lifecycle {value!r}")


def signer_id_of_key(pem: bytes) -> bytes:
    """The PSA signer ID of a firmware-signing key: SHA-256 of its SubjectPublicKeyInfo."""
    key = load_pem_public_key(pem)
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                          ).digest()


def measure_file(path: Path) -> bytes:
    """SHA-256 of a firmware image, streamed.

    Raises:
        ConfigurationError: the file is missing or absurdly large.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigurationError(f"cannot measure {path}: {exc}") from exc
    if size > MAX_IMAGE_SIZE:
        raise ConfigurationError(f"{path} is larger than {MAX_IMAGE_SIZE} bytes")
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _component(entry: Any, *, base: Path, where: str) -> MeasuredComponent:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where} must be a mapping")
    mtype = entry.get("type")
    if not isinstance(mtype, str) or not mtype:
        raise ConfigurationError(f"{where}.type must be a component name")
    if "image" in entry:
        value = measure_file(base / str(entry["image"]))
    elif "measurement" in entry:
        value = _hex(entry["measurement"], what=f"{where}.measurement")
    else:
        raise ConfigurationError(f"{where} needs an image (or a measurement)")
    signer: bytes | None = None
    if "signer_id" in entry:
        signer = _hex(entry["signer_id"], what=f"{where}.signer_id")
    elif "signer_key" in entry:
        signer = signer_id_of_key((base / str(entry["signer_key"])).read_bytes())
    version = entry.get("version")
    svn = entry.get("security_version")
    if svn is not None and not isinstance(svn, int):
        raise ConfigurationError(f"{where}.security_version must be an integer")
    return MeasuredComponent(measurement_type=mtype, measurement_value=value,
                             version=None if version is None else str(version),
                             security_version=svn, signer_id=signer)


def measure_device(description: Mapping[str, Any], *, base: Path = Path()) -> DeviceState:
    """Measure the firmware images a device description names and collect its state.

    Args:
        description: the device description (see the module documentation).
        base: directory that relative image paths are resolved against.

    Raises:
        ConfigurationError: the description is invalid or an image cannot be measured.
    """
    fw = description.get("firmware")
    if not isinstance(fw, Sequence) or isinstance(fw, (str, bytes)) or not fw:
        raise ConfigurationError("the device description needs a non-empty firmware list")
    comps = description.get("components", ())
    if not isinstance(comps, Sequence) or isinstance(comps, (str, bytes)):
        raise ConfigurationError("components must be a list")
    debug = str(description.get("debug", "disabled"))
    if debug not in DEBUG_STATES:
        raise ConfigurationError(f"debug must be one of {sorted(DEBUG_STATES)}")
    return DeviceState(
        implementation_id=_hex(description.get("implementation_id", ""),
                               what="implementation_id", length=32),
        security_lifecycle=_lifecycle(description.get("security_lifecycle", "secured")),
        firmware=tuple(_component(e, base=base, where=f"firmware[{i}]")
                       for i, e in enumerate(fw)),
        components=tuple(_component(e, base=base, where=f"components[{i}]")
                         for i, e in enumerate(comps)),
        hardware_model=description.get("hardware_model"),
        hardware_version=description.get("hardware_version"),
        secure_boot=bool(description.get("secure_boot", True)),
        debug=debug,
        boot_count=int(description.get("boot_count", 0)),
        boot_seed=_hex(description["boot_seed"], what="boot_seed")
        if "boot_seed" in description else None,
        provisioning_epoch=int(description.get("provisioning_epoch", 0)),
        owner_id=description.get("owner_id"),
        owner_epoch=int(description.get("owner_epoch", 0)),
        ueid=_hex(description["ueid"], what="ueid") if "ueid" in description else None,
    )


def _sw_component(c: MeasuredComponent) -> dict[str, Any]:
    out: dict[str, Any] = {"measurement_type": c.measurement_type,
                           "measurement_value": c.measurement_value,
                           "measurement_description": c.description}
    if c.version is not None:
        out["version"] = c.version
    if c.signer_id is not None:
        out["signer_id"] = c.signer_id
    return out


def psa_claims(state: DeviceState, *, nonce: bytes, instance_id: bytes,
               client_id: int = 1) -> dict[str, Any]:
    """The PSA claims (RFC 9783 section 4) for ``state``, as the YAML-ish dict that
    :func:`devattest.schemes.psa.create_psa_token` takes.

    Debug state is reflected in the security lifecycle: a debug-enabled device reports
    ``recoverable_psa_rot_debug`` unless its description already says otherwise.
    """
    lifecycle = state.security_lifecycle
    if state.debug == "enabled" and lifecycle == LIFECYCLES["secured"]:
        lifecycle = LIFECYCLES["recoverable_psa_rot_debug"]
    return {
        "profile_id": "tag:psacertified.org,2023:psa#tfm",
        "client_id": client_id,
        "security_lifecycle": lifecycle,
        "implementation_id": state.implementation_id,
        "boot_seed": state.boot_seed if state.boot_seed is not None else secrets.token_bytes(32),
        "instance_id": instance_id,
        "challenge": nonce,
        "sw_components": [_sw_component(c) for c in (*state.firmware, *state.components)],
    }


#: devattest's private EAT claims (RFC 8392 section 9.1: integer keys below -65536 are for
#: private use). Documented in docs/schemes.md.
CLAIM_OWNER_ID = -70000
CLAIM_OWNER_EPOCH = -70001
CLAIM_PROVISIONING_EPOCH = -70002
CLAIM_SECURITY_VERSIONS = -70003
#: CoAP content format of a CoSWID tag (RFC 9393 section 6.6) and its CBOR tag.
_COAP_CT_COSWID = 258
_TAG_COSWID = 1398229316


def _coswid(c: MeasuredComponent) -> bytes:
    """A minimal CoSWID (RFC 9393) naming one measured file: tag-id (0), software-name (1),
    software-version (13), evidence (3) with one file (17): fs-name (24), hash (7)."""
    tag_id = f"devattest:{c.measurement_type}:{c.version or '-'}"
    body: dict[int, Any] = {0: tag_id, 12: 0, 1: c.measurement_type,
                            3: {17: {24: c.measurement_type, 7: [1, c.measurement_value]}}}
    if c.version is not None:
        body[13] = c.version
    return bytes(cbor2.dumps(cbor2.CBORTag(_TAG_COSWID, body)))


def eat_claims(state: DeviceState, *, nonce: bytes, ueid: bytes) -> dict[int, Any]:
    """The EAT claims (RFC 9711) for ``state``: nonce, UEID, hardware model and version,
    OEM-authorised boot (secure boot), debug status, boot count and seed, measurements as
    CoSWIDs, and devattest's private ownership claims (owner ID and epoch, provisioning
    epoch) that change on re-provisioning and ownership transfer."""
    claims: dict[int, Any] = {
        10: nonce,                                   # eat_nonce (RFC 9711 section 4.1)
        256: ueid,                                   # ueid (4.2.1)
        262: state.secure_boot,                      # oemboot (4.2.8)
        263: DEBUG_STATES[state.debug],              # dbgstat (4.2.9)
        267: state.boot_count,                       # bootcount (4.3.3)
        268: state.boot_seed if state.boot_seed is not None else secrets.token_bytes(32),
        273: [[_COAP_CT_COSWID, _coswid(c)]          # measurements (4.2.16)
              for c in (*state.firmware, *state.components)],
        CLAIM_OWNER_EPOCH: state.owner_epoch,
        CLAIM_PROVISIONING_EPOCH: state.provisioning_epoch,
    }
    if state.hardware_model is not None:
        claims[259] = state.hardware_model.encode()  # hwmodel (4.2.4)
    if state.hardware_version is not None:
        claims[260] = [state.hardware_version]       # hwversion (4.2.5)
    if state.owner_id is not None:
        claims[CLAIM_OWNER_ID] = state.owner_id
    svns = {c.measurement_type: c.security_version
            for c in (*state.firmware, *state.components) if c.security_version is not None}
    if svns:
        claims[CLAIM_SECURITY_VERSIONS] = svns
    return claims
