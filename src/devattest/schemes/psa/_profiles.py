"""PSA attestation token profiles and their claim keys (RFC 9783 section 4 and appendix B).

Three claim-key sets are in use:

* ``tag:psacertified.org,2023:psa#tfm`` (RFC 9783): EAT keys for nonce (10), Instance ID (ueid,
  256), profile (265) and boot seed (268, 8 to 32 bytes), PSA keys 2394 to 2400.
* ``http://arm.com/psa/2.0.0`` (draft-tschofenig-rats-psa-token-08 to -12, TF-M 1.x): the same
  keys, but the boot seed under the older key 2397.
* ``PSA_IOT_PROFILE_1`` (PSA Attestation API 1.0, draft -07 and earlier): private-use keys
  -75000 to -75010, with a "no software measurements" claim (-75007).

Everything here is a precomputed constant: the appraisal path does plain dict look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE_RFC9783 = "tag:psacertified.org,2023:psa#tfm"
PROFILE_PSA_2_0_0 = "http://arm.com/psa/2.0.0"
PROFILE_IOT_1 = "PSA_IOT_PROFILE_1"

#: Media types registered by RFC 9783 section 10 (exact, lower-case, as the registry stores them).
MEDIA_TYPE_EAT_CWT = f'application/eat+cwt; eat_profile="{PROFILE_RFC9783}"'
MEDIA_TYPE_PSA = "application/psa-attestation-token"


@dataclass(frozen=True, slots=True)
class PsaProfile:
    """The claim keys one profile uses. ``None`` means the profile has no such claim."""

    name: str
    legacy: bool
    nonce: int
    instance_id: int
    profile: int
    client_id: int
    lifecycle: int
    implementation_id: int
    boot_seed: int
    #: Is the boot seed mandatory, and its allowed length range (inclusive).
    boot_seed_mandatory: bool
    boot_seed_sizes: tuple[int, int]
    certification_reference: int
    software_components: int
    verification_service: int
    no_sw_measurements: int | None
    #: Is the profile claim mandatory (it is optional in PSA_IOT_PROFILE_1).
    profile_mandatory: bool
    #: Is the signer ID of a software component mandatory (RECOMMENDED in PSA_IOT_PROFILE_1).
    signer_id_mandatory: bool
    #: Accepted Certification Reference formats: EAN-13 alone is legacy-only.
    ean13_alone_allowed: bool
    #: Readable claim names, keyed by claim key (for Claims.raw and messages).
    names: dict[int, str]


def _names(nonce: int, iid: int, prof: int, cid: int, lc: int, impl: int, bs: int, cert: int,
           swc: int, vsi: int, nosw: int | None) -> dict[int, str]:
    out = {
        nonce: "nonce",
        iid: "instance_id",
        prof: "profile",
        cid: "client_id",
        lc: "security_lifecycle",
        impl: "implementation_id",
        bs: "boot_seed",
        cert: "certification_reference",
        swc: "software_components",
        vsi: "verification_service_indicator",
    }
    if nosw is not None:
        out[nosw] = "no_sw_measurements"
    return out


RFC9783 = PsaProfile(
    name=PROFILE_RFC9783, legacy=False, nonce=10, instance_id=256, profile=265, client_id=2394,
    lifecycle=2395, implementation_id=2396, boot_seed=268, boot_seed_mandatory=False,
    boot_seed_sizes=(8, 32), certification_reference=2398, software_components=2399,
    verification_service=2400, no_sw_measurements=None, profile_mandatory=True,
    signer_id_mandatory=True, ean13_alone_allowed=False,
    names=_names(10, 256, 265, 2394, 2395, 2396, 268, 2398, 2399, 2400, None),
)

PSA_2_0_0 = PsaProfile(
    name=PROFILE_PSA_2_0_0, legacy=True, nonce=10, instance_id=256, profile=265, client_id=2394,
    lifecycle=2395, implementation_id=2396, boot_seed=2397, boot_seed_mandatory=False,
    boot_seed_sizes=(8, 32), certification_reference=2398, software_components=2399,
    verification_service=2400, no_sw_measurements=None, profile_mandatory=True,
    signer_id_mandatory=True, ean13_alone_allowed=False,
    names=_names(10, 256, 265, 2394, 2395, 2396, 2397, 2398, 2399, 2400, None),
)

IOT_1 = PsaProfile(
    name=PROFILE_IOT_1, legacy=True, nonce=-75008, instance_id=-75009, profile=-75000,
    client_id=-75001, lifecycle=-75002, implementation_id=-75003, boot_seed=-75004,
    boot_seed_mandatory=True, boot_seed_sizes=(32, 32), certification_reference=-75005,
    software_components=-75006, verification_service=-75010, no_sw_measurements=-75007,
    profile_mandatory=False, signer_id_mandatory=False, ean13_alone_allowed=True,
    names=_names(-75008, -75009, -75000, -75001, -75002, -75003, -75004, -75005, -75006,
                 -75010, -75007),
)

#: Profile claim value (key 265) -> profile.
BY_NAME: dict[str, PsaProfile] = {RFC9783.name: RFC9783, PSA_2_0_0.name: PSA_2_0_0}

#: Keys whose presence marks a PSA_IOT_PROFILE_1 claims set (its profile claim is optional).
IOT_1_KEYS = frozenset(range(-75010, -74999))

# Software component map keys (RFC 9783 section 4.4.1).
SWC_MEASUREMENT_TYPE = 1
SWC_MEASUREMENT_VALUE = 2
SWC_VERSION = 4
SWC_SIGNER_ID = 5
SWC_MEASUREMENT_DESC = 6

#: Sizes of psa-hash-type (RFC 9783 section 4.1.1 nonce, 4.4.1 measurement value, signer ID).
HASH_SIZES = frozenset((32, 48, 64))
INSTANCE_ID_SIZE = 33
IMPLEMENTATION_ID_SIZE = 32
#: UEID type byte for RAND (RFC 9711 section 4.2.1), required by RFC 9783 section 4.2.1.
UEID_TYPE_RAND = 0x01

# Security lifecycle (RFC 9783 section 4.3.1): major state is the high byte, minor the low.
LIFECYCLE_STATES: dict[int, str] = {
    0x00: "unknown",
    0x10: "assembly-and-test",
    0x20: "psa-rot-provisioning",
    0x30: "secured",
    0x40: "non-psa-rot-debug",
    0x50: "recoverable-psa-rot-debug",
    0x60: "decommissioned",
}
LIFECYCLE_SECURED = 0x30
LIFECYCLE_NON_PSA_ROT_DEBUG = 0x40
LIFECYCLE_RECOVERABLE_DEBUG = 0x50

#: Names accepted by ``create_psa_token`` for the lifecycle (tf-m-tools YAML spelling).
LIFECYCLE_BY_NAME: dict[str, int] = {
    "sl_unknown": 0x0000,
    "sl_assembly_and_test": 0x1000,
    "sl_psa_rot_provisioning": 0x2000,
    "sl_secured": 0x3000,
    "sl_non_psa_rot_debug": 0x4000,
    "sl_recoverable_psa_rot_debug": 0x5000,
    "sl_decommissioned": 0x6000,
}

#: Claim key -> readable name, over every PSA profile (for ``token inspect``).
CLAIM_NAMES: dict[int, str] = {**IOT_1.names, **PSA_2_0_0.names, **RFC9783.names}
