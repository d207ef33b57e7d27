"""EK credential activation, Verifier side: TPM2_MakeCredential in pure Python.

The Verifier trusts a device's endorsement key (EK, from its EK certificate or a
registration record). To trust an AK it has never seen, it seals a random secret to the EK
*and* the AK's name (TPM 2.0 Part 1 section 24, "Credential Protection"); only a TPM that
holds both the EK private key and a loaded object with that exact name can recover it with
TPM2_ActivateCredential. When the device returns the secret, the AK is registered as a
:class:`KeyAnchor` under its TPM name.

Algorithms (TPM 2.0 Part 1): KDFa (section 11.4.10.2, SP 800-108 counter mode with HMAC),
KDFe (section 11.4.10.3, SP 800-56A one-step KDF), seed protection with RSA-OAEP (label
``"IDENTITY"``, Annex B.10.3) or ECDH (Annex C.6.4), and the credential blob
``TPM2B_DIGEST(outerHMAC) || AES-CFB(TPM2B_DIGEST(secret))`` (section 24.4, 24.5).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from struct import Struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # AES-CFB is what TPM 2.0 mandates; cryptography files it under "decrepit".
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from devattest.errors import AttestationKeyAttributes, CredentialActivationFailed
from devattest.model import KeyAnchor
from devattest.schemes.tpm.scheme import AK_REQUIRED_ATTRIBUTES
from devattest.schemes.tpm.structures import (
    ALG_AES,
    ALG_CFB,
    ALG_ECC,
    ALG_RSA,
    DECRYPT,
    HASH_ALGS,
    RESTRICTED,
    Public,
    parse_public,
)

_U16 = Struct(">H")
_U32 = Struct(">I")


def _label(label: bytes) -> bytes:
    return label if label.endswith(b"\0") else label + b"\0"


def kdfa(hash_alg: int, key: bytes, label: bytes, context_u: bytes, context_v: bytes,
         bits: int) -> bytes:
    """KDFa (TPM 2.0 Part 1 section 11.4.10.2): SP 800-108 counter-mode KDF with HMAC."""
    name, size = HASH_ALGS[hash_alg]
    out = b""
    counter = 0
    tail = _label(label) + context_u + context_v + _U32.pack(bits)
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, _U32.pack(counter) + tail, name).digest()
    out = out[:(bits + 7) // 8]
    if bits % 8:
        out = bytes([out[0] & ((1 << (bits % 8)) - 1)]) + out[1:]
    del size
    return out


def kdfe(hash_alg: int, z: bytes, label: bytes, party_u: bytes, party_v: bytes,
         bits: int) -> bytes:
    """KDFe (TPM 2.0 Part 1 section 11.4.10.3): SP 800-56A concatenation KDF."""
    name, _ = HASH_ALGS[hash_alg]
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hashlib.new(name, _U32.pack(counter) + z + _label(label) + party_u
                           + party_v).digest()
    return out[:(bits + 7) // 8]


def _tpm2b(b: bytes) -> bytes:
    return _U16.pack(len(b)) + b


@dataclass(frozen=True, slots=True)
class CredentialChallenge:
    """What the Verifier sends the device: the two inputs of TPM2_ActivateCredential."""

    #: TPM2B_ID_OBJECT contents: TPM2B_DIGEST(integrityHMAC) || encIdentity.
    credential_blob: bytes
    #: TPM2B_ENCRYPTED_SECRET contents: the seed, RSA-OAEP encrypted or an ECC point.
    encrypted_secret: bytes


def _protect_seed(ek: Public, rng: Callable[[int], bytes]) -> tuple[bytes, bytes]:
    name_alg = ek.name_alg
    hname, dsize = HASH_ALGS[name_alg]
    # SHA-1 only when the EK's nameAlg is SHA-1 (legacy EK templates); OAEP/MGF1, not signing.
    h = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(),  # noqa: S303
         "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hname]
    if ek.type == ALG_RSA:
        seed = rng(dsize)
        pub = ek.public_key()
        assert isinstance(pub, rsa.RSAPublicKey)
        enc = pub.encrypt(seed, padding.OAEP(padding.MGF1(h), h, b"IDENTITY\0"))
        return seed, enc
    if ek.type == ALG_ECC:
        pub_ec = ek.public_key()
        assert isinstance(pub_ec, ec.EllipticCurvePublicKey)
        eph = ec.generate_private_key(pub_ec.curve)
        z = eph.exchange(ec.ECDH(), pub_ec)
        size = (pub_ec.curve.key_size + 7) // 8
        nums = eph.public_key().public_numbers()
        ex, ey = nums.x.to_bytes(size, "big"), nums.y.to_bytes(size, "big")
        seed = kdfe(name_alg, z, b"IDENTITY", ex, ek.x.rjust(size, b"\0"), dsize * 8)
        return seed, _tpm2b(ex) + _tpm2b(ey)
    raise AttestationKeyAttributes("the EK is neither an RSA nor an ECC key")  # pragma: no cover


def make_credential(ek_public: bytes, ak_name: bytes, secret: bytes, *,
                    rng: Callable[[int], bytes] = secrets.token_bytes) -> CredentialChallenge:
    """TPM2_MakeCredential without a TPM: seal ``secret`` to the EK and the AK name.

    Args:
        ek_public: the trusted EK's TPMT_PUBLIC (a restricted decryption key).
        ak_name: the TPM name of the AK to be activated.
        secret: the credential (at most the EK nameAlg's digest size).
        rng: randomness for an RSA seed (tests may fix it).

    Raises:
        MalformedTpmStructure: the EK public area is malformed.
        AttestationKeyAttributes: the EK is not a restricted decryption key with AES-CFB.
        ValueError: the secret is too long.
    """
    ek = parse_public(ek_public)
    if ek.object_attributes & (RESTRICTED | DECRYPT) != RESTRICTED | DECRYPT:
        raise AttestationKeyAttributes("the EK is not a restricted decryption key")
    sym_alg, sym_bits, sym_mode = ek.symmetric
    if sym_alg != ALG_AES or sym_mode != ALG_CFB:
        raise AttestationKeyAttributes("the EK's symmetric algorithm is not AES-CFB")
    name_alg = ek.name_alg
    hname, dsize = HASH_ALGS[name_alg]
    if not 0 < len(secret) <= dsize:
        raise ValueError(f"the credential must be 1-{dsize} bytes")
    seed, enc_seed = _protect_seed(ek, rng)
    # Part 1 24.4: symmetric key from the seed, bound to the AK name; AES-CFB, zero IV.
    sym_key = kdfa(name_alg, seed, b"STORAGE", ak_name, b"", sym_bits)
    enc = Cipher(algorithms.AES(sym_key), CFB(b"\0" * 16)).encryptor()
    enc_identity = enc.update(_tpm2b(secret)) + enc.finalize()
    # Part 1 24.5: outer HMAC over encIdentity || name.
    hmac_key = kdfa(name_alg, seed, b"INTEGRITY", b"", b"", dsize * 8)
    outer = hmac.new(hmac_key, enc_identity + ak_name, hname).digest()
    return CredentialChallenge(_tpm2b(outer) + enc_identity, enc_seed)


@dataclass(frozen=True, slots=True)
class PendingActivation:
    """Verifier-side state between the challenge and the device's answer."""

    ak_public: bytes
    ak_name: bytes
    secret: bytes
    challenge: CredentialChallenge


def start_activation(ek_public: bytes, ak_public: bytes, *,
                     rng: Callable[[int], bytes] = secrets.token_bytes) -> PendingActivation:
    """Check the AK is a proper attestation key and seal a fresh secret to EK + AK name.

    Raises:
        AttestationKeyAttributes: the AK is not restricted|sign|fixedTPM.
        MalformedTpmStructure: a public area is malformed.
    """
    ak = parse_public(ak_public)
    if ak.object_attributes & AK_REQUIRED_ATTRIBUTES != AK_REQUIRED_ATTRIBUTES \
            or ak.object_attributes & DECRYPT:
        raise AttestationKeyAttributes(
            f"AK objectAttributes {ak.object_attributes:#010x} are not restricted|sign|fixedTPM")
    ak.public_key()  # a valid point / modulus
    secret = rng(32)
    name = ak.name
    return PendingActivation(ak_public, name, secret, make_credential(ek_public, name, secret,
                                                                      rng=rng))


def finish_activation(pending: PendingActivation, returned_secret: bytes, *, label: str = "",
                      authority: str = "") -> KeyAnchor:
    """Compare the device's answer; on success the AK becomes a Trust Anchor by name.

    Raises:
        CredentialActivationFailed: the returned secret is not the sealed one.
    """
    if not hmac.compare_digest(returned_secret, pending.secret):
        raise CredentialActivationFailed(
            "the device did not recover the credential: the AK is not resident in the TPM "
            "that holds the EK")
    ak = parse_public(pending.ak_public)
    return KeyAnchor(public_key=ak.public_key(), instance_id=pending.ak_name, label=label,
                     hardware_backed=True, authority=authority)


__all__ = [
    "CredentialChallenge",
    "PendingActivation",
    "finish_activation",
    "kdfa",
    "kdfe",
    "make_credential",
    "start_activation",
]
