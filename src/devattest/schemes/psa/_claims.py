"""The PSA attestation token claim rules (RFC 9783 sections 4 and 5), as pure functions.

``detect_profile`` picks the profile a claims set follows; ``parse_psa_claims`` checks every
mandatory-claim, type and length rule of that profile and returns a :class:`ParsedPsa`, which
is well-formed by construction. Each rule raises its own message (tests match them):
:class:`MissingClaim` for an absent mandatory claim, :class:`InvalidClaim` for a wrong type,
length or value, :class:`UnknownProfile` for a profile this scheme does not implement.

The security lifecycle is checked for a valid value here; whether the state can affirm is a
finding (``lifecycle_finding``), not a parse failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from devattest.errors import InvalidClaim, MissingClaim, UnknownProfile, shown
from devattest.model import Finding, SoftwareComponent, ar4si
from devattest.model.evidence import new_software_component
from devattest.schemes.psa._profiles import (
    BY_NAME,
    HASH_SIZES,
    IMPLEMENTATION_ID_SIZE,
    INSTANCE_ID_SIZE,
    IOT_1,
    IOT_1_KEYS,
    LIFECYCLE_NON_PSA_ROT_DEBUG,
    LIFECYCLE_RECOVERABLE_DEBUG,
    LIFECYCLE_SECURED,
    LIFECYCLE_STATES,
    PROFILE_IOT_1,
    RFC9783,
    SWC_MEASUREMENT_DESC,
    SWC_MEASUREMENT_TYPE,
    SWC_MEASUREMENT_VALUE,
    SWC_SIGNER_ID,
    SWC_VERSION,
    UEID_TYPE_RAND,
    PsaProfile,
)

#: The step these rules implement (devattest.verifier.core step 5).
STEP = "5"

# RFC 9783 section 4.2.4 (and the CDDL psa-certification-reference-type): EAN-13 "-" 5 digits.
# PSA_IOT_PROFILE_1 (PSA Attestation API 1.0 section 3.4) also allowed EAN-13 alone.
_EAN13_5 = re.compile(r"[0-9]{13}-[0-9]{5}")
_EAN13 = re.compile(r"[0-9]{13}")

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


class ParsedPsa(NamedTuple):
    """A PSA claims set that passed every rule of its profile (a tuple: cheap to build)."""

    profile: PsaProfile
    nonce: bytes
    instance_id: bytes
    implementation_id: bytes
    client_id: int
    security_lifecycle: int
    software_components: tuple[SoftwareComponent, ...]
    #: Every claim by readable name (unknown claims under their integer key).
    raw: dict[str | int, Any]
    annotations: tuple[str, ...]


def _type_name(value: Any) -> str:
    return type(value).__name__


def detect_profile(claims: Mapping[Any, Any]) -> tuple[PsaProfile, tuple[str, ...]]:
    """The profile a PSA claims set follows, and notices about it.

    Order: the EAT profile claim (265); else the PSA_IOT_PROFILE_1 profile claim (-75000);
    else any PSA_IOT_PROFILE_1 claim key (its profile claim is optional).

    Raises:
        UnknownProfile: the profile claim is not text, names an unknown profile, or no PSA
            profile can be recognised.
    """
    value = claims.get(RFC9783.profile)
    if value is not None:
        if not isinstance(value, str):
            raise UnknownProfile(
                f"invalid profile ID: the profile claim (265) must be a text string, "
                f"found {_type_name(value)}", step="1")
        profile = BY_NAME.get(value)
        if profile is None:
            raise UnknownProfile(f"unknown PSA profile {shown(value)}", step="1")
        if profile.legacy:
            return profile, (f"legacy PSA profile {shown(value)} (boot seed under claim key 2397); "
                             f"RFC 9783 profile is {RFC9783.name!r}",)
        return profile, ()
    if IOT_1.profile in claims:
        value = claims[IOT_1.profile]
        if not isinstance(value, str):
            raise UnknownProfile(
                f"invalid profile ID: the PSA_IOT_PROFILE_1 profile claim (-75000) must be a "
                f"text string, found {_type_name(value)}", step="1")
        note = "legacy PSA profile PSA_IOT_PROFILE_1 (claim keys -75000 to -75010)"
        if value != PROFILE_IOT_1:
            note += f"; its profile claim says {shown(value)}"
        return IOT_1, (note,)
    for key in claims:
        if key in IOT_1_KEYS:
            return IOT_1, ("legacy PSA profile PSA_IOT_PROFILE_1 (claim keys -75000 to "
                           "-75010), profile claim absent",)
    raise UnknownProfile("no PSA profile claim (265 or -75000) and no PSA claim keys", step="1")


def _claim(profile: PsaProfile, key: int) -> str:
    return f"{profile.names[key]} ({key})"


def _bytes_of(claims: Mapping[Any, Any], profile: PsaProfile, key: int) -> bytes:
    try:
        value = claims[key]
    except KeyError:
        raise MissingClaim(f"missing mandatory claim {_claim(profile, key)}", step=STEP) from None
    if type(value) is not bytes:
        raise InvalidClaim(f"{_claim(profile, key)} must be a byte string, found "
                           f"{_type_name(value)}", step=STEP)
    return value


def _int_of(claims: Mapping[Any, Any], profile: PsaProfile, key: int) -> int:
    try:
        value = claims[key]
    except KeyError:
        raise MissingClaim(f"missing mandatory claim {_claim(profile, key)}", step=STEP) from None
    if type(value) is not int:  # bool is an int subclass in Python but not in CBOR
        raise InvalidClaim(f"{_claim(profile, key)} must be an integer, found "
                           f"{_type_name(value)}", step=STEP)
    return value


def _hash(value: Any, what: str) -> bytes:
    if type(value) is not bytes:
        raise InvalidClaim(f"{what} must be a byte string, found {_type_name(value)}",
                           step=STEP)
    if len(value) not in HASH_SIZES:
        raise InvalidClaim(f"{what} must be 32, 48 or 64 bytes, found {len(value)}", step=STEP)
    return value


def _text(value: Any, what: str) -> str:
    if type(value) is not str:
        raise InvalidClaim(f"{what} must be a text string, found {_type_name(value)}",
                           step=STEP)
    return value


def _where(index: int, mtype: Any) -> str:
    if type(mtype) is str:
        return f"software component {index} ({mtype})"
    return f"software component {index}"


def _software_component(index: int, entry: Any, profile: PsaProfile
                        ) -> tuple[SoftwareComponent, dict[str | int, Any], str | None]:
    # RFC 9783 section 4.4.1: psa-software-component. The happy path does plain look-ups;
    # messages are built only on failure.
    if type(entry) is not dict:
        raise InvalidClaim(f"software component {index} must be a map, found "
                           f"{_type_name(entry)}", step=STEP)
    get = entry.get
    mtype = get(SWC_MEASUREMENT_TYPE)
    if mtype is not None and type(mtype) is not str:
        _text(mtype, f"software component {index}: measurement type (1)")
    value = get(SWC_MEASUREMENT_VALUE)
    if type(value) is not bytes or len(value) not in HASH_SIZES:
        if value is None:
            raise MissingClaim(f"{_where(index, mtype)}: missing mandatory measurement value "
                               f"(2)", step=STEP)
        _hash(value, f"{_where(index, mtype)}: measurement value (2)")
    notice = None
    signer = get(SWC_SIGNER_ID)
    if signer is None:
        if profile.signer_id_mandatory:
            raise MissingClaim(f"{_where(index, mtype)}: missing mandatory signer ID (5)",
                               step=STEP)
        notice = f"{_where(index, mtype)}: RECOMMENDED signer ID (5) is missing"
    elif type(signer) is not bytes or len(signer) not in HASH_SIZES:
        _hash(signer, f"{_where(index, mtype)}: signer ID (5)")
    version = get(SWC_VERSION)
    if version is not None and type(version) is not str:
        _text(version, f"{_where(index, mtype)}: version (4)")
    desc = get(SWC_MEASUREMENT_DESC)
    if desc is not None and type(desc) is not str:
        _text(desc, f"{_where(index, mtype)}: measurement description (6)")
    raw: dict[str | int, Any] = {"measurement_value": value}
    if mtype is not None:
        raw["measurement_type"] = mtype
    if signer is not None:
        raw["signer_id"] = signer
    if version is not None:
        raw["version"] = version
    if desc is not None:
        raw["measurement_desc"] = desc
    if len(entry) > len(raw):  # keys this profile does not define are kept
        for k, v in entry.items():
            if k not in _SWC_KEYS:
                raw[k] = v
    comp = new_software_component(measurement_value=value, measurement_type=mtype, signer_id=signer,
                             version=version, measurement_desc=desc)
    return comp, raw, notice


_SWC_KEYS = frozenset((SWC_MEASUREMENT_TYPE, SWC_MEASUREMENT_VALUE, SWC_VERSION, SWC_SIGNER_ID,
                       SWC_MEASUREMENT_DESC))


def parse_psa_claims(claims: Mapping[Any, Any], profile: PsaProfile,
                     annotations: tuple[str, ...] = ()) -> ParsedPsa:
    """Apply every claim rule of ``profile`` (RFC 9783 sections 4.1 to 4.4; PSA Attestation
    API 1.0 for PSA_IOT_PROFILE_1) and return the parsed claims.

    Raises:
        MissingClaim: a mandatory claim is absent (the message names it and its key).
        InvalidClaim: a claim has the wrong type, length or value.
    """
    p = profile
    notes = list(annotations)
    # The rules run in the PSA_IOT_PROFILE_1 claim-key order (client ID -75001 up to the
    # verification service indicator -75010), whatever the profile, so the first broken rule
    # reported is stable across profiles.
    raw: dict[str | int, Any] = {"profile": p.name}

    # 4.2.3 Client ID: int32 (negative for the NSPE, positive for the SPE), mandatory.
    get = claims.get
    client_id = get(p.client_id)
    if type(client_id) is not int:  # the helper raises the precise error
        client_id = _int_of(claims, p, p.client_id)
    if not _INT32_MIN <= client_id <= _INT32_MAX:
        raise InvalidClaim(f"{_claim(p, p.client_id)} must be a 32-bit signed integer, "
                           f"found {shown(client_id)}", step=STEP)
    # 4.3.1 Security Lifecycle: one of the seven ranges, mandatory.
    lifecycle = get(p.lifecycle)
    if type(lifecycle) is not int:
        lifecycle = _int_of(claims, p, p.lifecycle)
    if not 0 <= lifecycle <= 0xFFFF or (lifecycle >> 8) not in LIFECYCLE_STATES:
        raise InvalidClaim(f"{_claim(p, p.lifecycle)} value 0x{lifecycle:x} is not a PSA "
                           f"security lifecycle state", step=STEP)
    # 4.2.2 Implementation ID: 32 bytes, mandatory.
    impl = get(p.implementation_id)
    if type(impl) is not bytes:
        impl = _bytes_of(claims, p, p.implementation_id)
    if len(impl) != IMPLEMENTATION_ID_SIZE:
        raise InvalidClaim(f"{_claim(p, p.implementation_id)} must be "
                           f"{IMPLEMENTATION_ID_SIZE} bytes, found {len(impl)}", step=STEP)
    raw["implementation_id"] = impl
    raw["client_id"] = client_id
    raw["security_lifecycle"] = lifecycle
    raw["security_lifecycle_state"] = LIFECYCLE_STATES[lifecycle >> 8]

    # 4.3.2 Boot Seed: 8 to 32 bytes (RFC 9783, key 268; PSA 2.0.0, key 2397); optional, but
    # mandatory and exactly 32 bytes in PSA_IOT_PROFILE_1.
    seed = claims.get(p.boot_seed)
    if seed is None:
        if p.boot_seed_mandatory:
            raise MissingClaim(f"missing mandatory claim {_claim(p, p.boot_seed)}", step=STEP)
    else:
        lo, hi = p.boot_seed_sizes
        if type(seed) is not bytes:
            raise InvalidClaim(f"{_claim(p, p.boot_seed)} must be a byte string, found "
                               f"{_type_name(seed)}", step=STEP)
        if not lo <= len(seed) <= hi:
            size = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise InvalidClaim(f"{_claim(p, p.boot_seed)} must be {size} bytes, found "
                               f"{len(seed)}", step=STEP)
        raw["boot_seed"] = seed

    # 4.2.4 Certification Reference: EAN-13 "-" 5 digits (EAN-13 alone also in profile 1).
    cert = claims.get(p.certification_reference)
    if cert is not None:
        if type(cert) is not str:
            raise InvalidClaim(f"{_claim(p, p.certification_reference)} must be a text string, "
                               f"found {_type_name(cert)}", step=STEP)
        if not (_EAN13_5.fullmatch(cert)
                or (p.ean13_alone_allowed and _EAN13.fullmatch(cert))):
            want = "EAN-13 or EAN-13+5" if p.ean13_alone_allowed else "EAN-13+5"
            raise InvalidClaim(f"{_claim(p, p.certification_reference)} {shown(cert)} is not in "
                               f"{want} format (13 digits, '-', 5 digits)", step=STEP)
        raw["certification_reference"] = cert

    # 4.4.1 Software Components: a non-empty array, mandatory; PSA_IOT_PROFILE_1 allows it to
    # be absent only when the no-software-measurements claim (-75007) says so.
    comps_value = claims.get(p.software_components)
    nosw = claims.get(p.no_sw_measurements) if p.no_sw_measurements is not None else None
    components: tuple[SoftwareComponent, ...] = ()
    if comps_value is None:
        if p.no_sw_measurements is None:
            raise MissingClaim(f"missing mandatory claim {_claim(p, p.software_components)}",
                               step=STEP)
        if nosw is None:
            raise MissingClaim(
                f"missing mandatory claim {_claim(p, p.software_components)}: "
                f"no-software-measurements ({p.no_sw_measurements}) is not indicated",
                step=STEP)
        if type(nosw) is not int or nosw != 1:
            raise InvalidClaim(f"{_claim(p, p.no_sw_measurements)} must be 1, found {shown(nosw)}",
                               step=STEP)
        raw["no_sw_measurements"] = nosw
        notes.append("no software measurements: the token indicates none were taken")
    else:
        if nosw is not None:
            raise InvalidClaim(f"{_claim(p, p.software_components)} and no-software-"
                               f"measurements ({p.no_sw_measurements}) cannot both be present",
                               step=STEP)
        if not isinstance(comps_value, list):
            raise InvalidClaim(f"{_claim(p, p.software_components)} must be an array, found "
                               f"{_type_name(comps_value)}", step=STEP)
        if not comps_value:
            raise InvalidClaim(f"{_claim(p, p.software_components)} must have at least one "
                               f"entry", step=STEP)
        built = []
        raw_comps = []
        for i, entry in enumerate(comps_value):
            comp, raw_comp, notice = _software_component(i, entry, p)
            built.append(comp)
            raw_comps.append(raw_comp)
            if notice is not None:
                notes.append(notice)
        components = tuple(built)
        raw["software_components"] = raw_comps

    # 4.1.1 Nonce: psa-hash-type (32, 48 or 64 bytes), mandatory.
    nonce = get(p.nonce)
    if type(nonce) is not bytes:
        nonce = _bytes_of(claims, p, p.nonce)
    if len(nonce) not in HASH_SIZES:
        raise InvalidClaim(f"{_claim(p, p.nonce)} must be 32, 48 or 64 bytes, found "
                           f"{len(nonce)}", step=STEP)
    # 4.2.1 Instance ID: a RAND UEID, 0x01 followed by a 32-byte hash of the IAK, mandatory.
    instance_id = get(p.instance_id)
    if type(instance_id) is not bytes:
        instance_id = _bytes_of(claims, p, p.instance_id)
    if len(instance_id) != INSTANCE_ID_SIZE:
        raise InvalidClaim(f"{_claim(p, p.instance_id)} must be {INSTANCE_ID_SIZE} bytes, "
                           f"found {len(instance_id)}", step=STEP)
    if instance_id[0] != UEID_TYPE_RAND:
        raise InvalidClaim(f"{_claim(p, p.instance_id)} must start with the UEID type 0x01 "
                           f"(RAND), found 0x{instance_id[0]:02x}", step=STEP)
    raw["nonce"] = nonce
    raw["instance_id"] = instance_id

    # 4.5.1 Verification Service Indicator: a non-empty text string, optional.
    vsi = claims.get(p.verification_service)
    if vsi is not None:
        if type(vsi) is not str or not vsi:
            raise InvalidClaim(f"{_claim(p, p.verification_service)} must be a non-empty text "
                               f"string", step=STEP)
        raw["verification_service_indicator"] = vsi

    # Claims this profile does not define are kept, never fatal (RFC 9711 section 4).
    has_profile_claim = p.profile in claims
    # Each raw entry but "profile" and the lifecycle state name stands for one defined claim
    # present, as does the profile claim: no more claims than that means none is unknown.
    if len(claims) > len(raw) - 2 + has_profile_claim:
        names = p.names
        for key, value in claims.items():
            if key not in names:
                raw[key] = value
    if has_profile_claim:
        raw["profile_claim"] = claims[p.profile]
    return ParsedPsa(profile=p, nonce=nonce, instance_id=instance_id, implementation_id=impl,
                     client_id=client_id, security_lifecycle=lifecycle,
                     software_components=components, raw=raw, annotations=tuple(notes))


# Which lifecycle states can affirm, and what the others make of the configuration claim
# (docs/schemes.md "PSA security lifecycle"): RFC 9783 section 4.3.1 and the PSA Security Model.
_LIFECYCLE_FINDINGS: dict[int, tuple[int, str]] = {
    0x00: (ar4si.UNSUPPORTABLE_CONFIG, "the security lifecycle state is unknown"),
    0x10: (ar4si.UNSUPPORTABLE_CONFIG,
           "the device is in the assembly-and-test state: no security guarantees"),
    0x20: (ar4si.UNSAFE_CONFIG,
           "the device is in the PSA RoT provisioning state: the RoT is not yet locked"),
    # The RoT, and with it the attestation key, can be debugged: nothing it signs can be
    # trusted, so this state is contraindicated rather than a warning.
    0x50: (ar4si.UNSUPPORTABLE_CONFIG,
           "the device is in the recoverable PSA RoT debug state: the RoT can be debugged"),
    0x60: (ar4si.UNSUPPORTABLE_CONFIG, "the device is decommissioned"),
}


def lifecycle_finding(lifecycle: int) -> Finding | None:
    """The finding a security lifecycle value produces, or None if the state can affirm
    (secured, 0x3000 to 0x30ff; non-PSA-RoT debug, 0x4000 to 0x40ff)."""
    major = lifecycle >> 8
    found = _LIFECYCLE_FINDINGS.get(major)
    if found is None:
        return None
    value, why = found
    state = LIFECYCLE_STATES[major]
    return Finding(claim="configuration", value=value,
                   code=f"psa_lifecycle_{state.replace('-', '_')}",
                   message=f"{why} (security lifecycle 0x{lifecycle:04x})")


def debug_enabled(lifecycle: int) -> bool | None:
    """Whether the lifecycle state permits debugging of the PSA RoT (None if not known)."""
    major = lifecycle >> 8
    if major in (LIFECYCLE_SECURED, LIFECYCLE_NON_PSA_ROT_DEBUG):
        return False
    if major == LIFECYCLE_RECOVERABLE_DEBUG:
        return True
    return None
