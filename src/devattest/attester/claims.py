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
