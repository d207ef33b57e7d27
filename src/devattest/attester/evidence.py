"""Evidence production: the Attester's claims, signed inside its secure element."""

from __future__ import annotations

from devattest.attester.backends._base import SecureElement
from devattest.attester.claims import DeviceState, eat_claims, psa_claims
from devattest.schemes.eat import create_eat
from devattest.schemes.psa import create_psa_token, psa_instance_id

PSA_MEDIA_TYPE = "application/psa-attestation-token"
EAT_MEDIA_TYPE = "application/eat+cwt"


def instance_id_of(se: SecureElement) -> bytes:
    """The PSA Instance ID of the secure element's key (0x01 || SHA-256 of the public key)."""
    iid = psa_instance_id(se.public_key())
    if iid is None:  # pragma: no cover - every backend holds an EC key
        raise ValueError("the secure element's key has no PSA Instance ID")
    return iid


def attest_psa(state: DeviceState, se: SecureElement, *, nonce: bytes,
               x5chain: tuple[bytes, ...] = ()) -> bytes:
    """A PSA attestation token (RFC 9783) over the Verifier's ``nonce``, signed by ``se``.

    Args:
        state: the measured device state.
        se: the secure element holding the attestation key; it signs the COSE ToBeSigned.
        nonce: the Verifier's challenge (32, 48 or 64 bytes).
        x5chain: the attestation-key certificate chain (DER, leaf first) to send along.

    Raises:
        SecureElementError: the secure element refused to sign.
        ValueError: the claims cannot be encoded (e.g. a nonce of a wrong length).
    """
    claims = psa_claims(state, nonce=nonce, instance_id=instance_id_of(se))
    return create_psa_token(claims, se, x5chain=x5chain)


def attest_eat(state: DeviceState, se: SecureElement, *, nonce: bytes,
               x5chain: tuple[bytes, ...] = ()) -> bytes:
    """An EAT (RFC 9711, CWT over COSE_Sign1) over the Verifier's ``nonce``, signed by ``se``.

    Unlike a PSA token it carries the whole device state: boot count, debug and secure-boot
    state, and the owner and provisioning epochs that ownership transfer and re-provisioning
    change. The UEID is the PSA-style Instance ID of the key, so Trust Anchors registered by
    Instance ID find it.

    Raises:
        SecureElementError: the secure element refused to sign.
    """
    ueid = state.ueid if state.ueid is not None else instance_id_of(se)
    return create_eat(eat_claims(state, nonce=nonce, ueid=ueid), se, x5chain=x5chain)
