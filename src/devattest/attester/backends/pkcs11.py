"""PKCS#11 secure-element backend (python-pkcs11): SoftHSM2, HSMs, and any secure element
that ships a PKCS#11 module.

The attestation key is an EC P-256 key pair generated ON the token (PKCS#11 v2.40 section
5.13 C_GenerateKeyPair) with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true and CKA_EXTRACTABLE
false, found again by label (and CKA_ID) on later opens. An existing key is only accepted if
the token says it was generated there (CKA_LOCAL) and has never been readable
(CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE). Signing is CKM_ECDSA over a SHA-256 digest
computed on the host (SoftHSM2 lacks CKM_ECDSA_SHA256); PKCS#11 returns r||s, which is
exactly the COSE ES256 signature format (RFC 9053 section 2.1).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, SlotFlag
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from devattest.attester.backends._base import SecureElementProperties
from devattest.cose import ES256
from devattest.crypto.pki import key_identifier
from devattest.errors import ConfigurationError, SecureElementError

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_P256_PARAMS = encode_named_curve_parameters("secp256r1")

_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    """Where the PKCS#11 attestation key lives."""

    token_label: str
    pin: str = field(repr=False)
    module: str = DEFAULT_MODULE
    key_label: str = "devattest-attestation"
    #: CKA_ID of the key pair (defaults to the UTF-8 label).
    key_id: bytes | None = None
    #: Generate the key pair when no key with this label/ID exists.
    create: bool = True
    #: Whether the token is real hardware. ``None``: true only for a hardware slot
    #: (CKF_HW_SLOT) of a module other than SoftHSM.
    hardware_backed: bool | None = None


def _load_lib(module: str) -> Any:
    with _LIBS_LOCK:
        lib = _LIBS.get(module)
        if lib is None:
            try:
                lib = pkcs11.lib(module)
            except pkcs11.PKCS11Error as exc:
                raise ConfigurationError(f"cannot load PKCS#11 module {module}: {exc}") from exc
            _LIBS[module] = lib
        return lib


class Pkcs11Key:
    """A SecureElement whose P-256 key is generated and used inside a PKCS#11 token."""

    def __init__(self, config: Pkcs11Config) -> None:
        """Open the token and find (or generate) the key.

        Raises:
            ConfigurationError: if the module or token cannot be found, or the key is absent
                and ``create`` is off.
            SecureElementError: on a wrong PIN, an ambiguous or exportable key, or a token
                failure.
        """
        self._config = config
        self._lock = threading.Lock()
        lib = _load_lib(config.module)
        try:
            token = lib.get_token(token_label=config.token_label)
        except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned) as exc:
            raise ConfigurationError(
                f"PKCS#11 token {config.token_label!r}: {type(exc).__name__}") from exc
        try:
            self._session = token.open(user_pin=config.pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 login state is per application: another session of this process has
            # logged in already, and new sessions share that state (PKCS#11 v2.40 5.6).
            self._session = token.open(rw=True)
        except pkcs11.PKCS11Error as exc:
            raise SecureElementError(
                f"cannot log in to token {config.token_label!r}: {type(exc).__name__}") from exc
        try:
            self._private, public = self._open_or_create()
            self._public = self._check_key(self._private, public)
        except BaseException:
            self._session.close()
            raise
        self._key_id = key_identifier(self._public)
        hw = config.hardware_backed
        if hw is None:
            hw = (SlotFlag.HW_SLOT in token.slot.flags
                  and "softhsm" not in token.manufacturer_id.lower())
        self._properties = SecureElementProperties(hardware_backed=hw, non_exportable=True,
                                                   backend="pkcs11")

    # ------------------------------------------------------------------ key management
    def _template(self) -> dict[Attribute, Any]:
        key_id = self._config.key_id or self._config.key_label.encode()
        return {Attribute.LABEL: self._config.key_label, Attribute.ID: key_id,
                Attribute.KEY_TYPE: KeyType.EC}

    def _find(self, object_class: ObjectClass) -> list[Any]:
        return list(self._session.get_objects({**self._template(), Attribute.CLASS: object_class}))

    def _open_or_create(self) -> tuple[Any, Any]:
        try:
            privs = self._find(ObjectClass.PRIVATE_KEY)
            pubs = self._find(ObjectClass.PUBLIC_KEY)
        except pkcs11.PKCS11Error as exc:
            raise SecureElementError(f"cannot search the token: {type(exc).__name__}") from exc
        if len(privs) > 1 or len(pubs) > 1:
            raise SecureElementError(
                f"more than one key labelled {self._config.key_label!r} on the token")
        if privs:
            if not pubs:
                raise SecureElementError(
                    f"key {self._config.key_label!r} has no public-key object on the token")
            return privs[0], pubs[0]
        if not self._config.create:
            raise ConfigurationError(f"no key {self._config.key_label!r} on the token")
        return self._generate()

    def _generate(self) -> tuple[Any, Any]:
        tmpl = self._template()
        try:
            params = self._session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True)
            public, private = params.generate_keypair(
                store=True, label=tmpl[Attribute.LABEL], id=tmpl[Attribute.ID],
                public_template={Attribute.TOKEN: True, Attribute.VERIFY: True,
                                 Attribute.PRIVATE: False},
                private_template={
                    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SIGN: True,
                    # The private key never leaves the token, in clear or wrapped.
                    Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                    Attribute.DECRYPT: False, Attribute.DERIVE: False,
                    Attribute.UNWRAP: False,
                })
        except pkcs11.PKCS11Error as exc:
            raise SecureElementError(
                f"key generation on the token failed: {type(exc).__name__}") from exc
        return private, public

    def _check_key(self, private: Any, public: Any) -> ec.EllipticCurvePublicKey:
        try:
            attrs = {a: private[a] for a in (
                Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.ALWAYS_SENSITIVE,
                Attribute.NEVER_EXTRACTABLE, Attribute.LOCAL, Attribute.SIGN)}
            params = private[Attribute.EC_PARAMS]
            spki = encode_ec_public_key(public)
        except pkcs11.PKCS11Error as exc:
            raise SecureElementError(f"cannot read key attributes: {type(exc).__name__}") \
                from exc
        expected = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                    Attribute.ALWAYS_SENSITIVE: True, Attribute.NEVER_EXTRACTABLE: True,
                    Attribute.LOCAL: True, Attribute.SIGN: True}
        bad = [a.name for a, v in expected.items() if bool(attrs[a]) is not v]
        if bad:
            raise SecureElementError(
                f"key {self._config.key_label!r} is not a non-exportable on-token key "
                f"(wrong {', '.join(bad)}); refusing to attest with it")
        if params != _P256_PARAMS:
            raise SecureElementError(f"key {self._config.key_label!r} is not a P-256 key")
        pub = serialization.load_der_public_key(spki)
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        # The public object must belong to the private key (no planted public key).
        probe = b"devattest pkcs11 key pairing check"
        raw = self._raw_sign(private, probe)
        try:
            pub.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                            int.from_bytes(raw[32:], "big")),
                       probe, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SecureElementError(
                f"the public-key object of {self._config.key_label!r} does not match its "
                "private key") from None
        return pub

    def _raw_sign(self, private: Any, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        try:
            with self._lock:
                sig = private.sign(digest, mechanism=Mechanism.ECDSA)
        except pkcs11.PKCS11Error as exc:
            raise SecureElementError(f"token refused to sign: {type(exc).__name__}") from exc
        if len(sig) != 64:
            raise SecureElementError("token returned a malformed ECDSA signature")
        return bytes(sig)

    # ------------------------------------------------------------------ SecureElement
    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def alg(self) -> int:
        return ES256

    @property
    def properties(self) -> SecureElementProperties:
        return self._properties

    @property
    def label(self) -> str:
        return self._config.key_label

    def public_key(self) -> Any:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """ES256 over ``data`` inside the token: SHA-256 on the host, CKM_ECDSA on the token;
        raw r||s.

        Raises:
            SecureElementError: if the token fails.
        """
        return self._raw_sign(self._private, data)

    def close(self) -> None:
        """Close the PKCS#11 session."""
        self._session.close()

    def __enter__(self) -> Pkcs11Key:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TokenCaKey(ec.EllipticCurvePrivateKey):
    """A CA's P-256 signing key inside a PKCS#11 token, usable wherever ``cryptography``
    takes an EC private key to sign a certificate or a CRL.

    ``cryptography``'s X.509 builders call ``sign(data, ECDSA(hash))`` on the key object they
    are given; here that is SHA-256 on the host and CKM_ECDSA on the token (the key pair is
    a :class:`Pkcs11Key`: generated on the token, sensitive, never extractable), returned
    DER-encoded as X.509 wants (RFC 5480 section 2.2 / RFC 3279 section 2.2.3). Every way
    out of the token (``private_numbers``, ``private_bytes``, ``exchange``) raises.
    """

    def __init__(self, key: Pkcs11Key) -> None:
        self._key = key

    @classmethod
    def open(cls, *, module: str, token_label: str, key_label: str, pin: str,
             create: bool = False) -> TokenCaKey:
        """Open a CA key on a token (``create``: generate it, refusing an existing one).

        Raises:
            ConfigurationError: if the module, token or (not ``create``) key is missing.
            SecureElementError: on a wrong PIN, a key already present when ``create``, an
                exportable key or a token failure.
        """
        config = Pkcs11Config(token_label=token_label, pin=pin, module=module,
                              key_label=key_label, create=False, hardware_backed=None)
        if create:
            try:
                Pkcs11Key(config).close()
            except ConfigurationError as exc:
                if "no key" not in str(exc):
                    raise
            else:
                raise SecureElementError(f"the token already holds a key labelled "
                                         f"{key_label!r}; choose another --key-label")
            config = Pkcs11Config(token_label=token_label, pin=pin, module=module,
                                  key_label=key_label, create=True)
        return cls(Pkcs11Key(config))

    def close(self) -> None:
        """Close the token session."""
        self._key.close()

    # ------------------------------------------------------------------ cryptography's API
    def sign(self, data: Any, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
             ) -> bytes:
        """ECDSA with SHA-256 inside the token; a DER ``Ecdsa-Sig-Value``.

        Raises:
            SecureElementError: if the algorithm is not ECDSA with SHA-256, or the token fails.
        """
        algorithm = getattr(signature_algorithm, "algorithm", None)
        if not isinstance(signature_algorithm, ec.ECDSA) or \
                not isinstance(algorithm, hashes.SHA256):
            raise SecureElementError("a PKCS#11 CA key signs ECDSA with SHA-256 only")
        raw = self._key.sign(bytes(data))
        return encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                    int.from_bytes(raw[32:], "big"))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        public: ec.EllipticCurvePublicKey = self._key.public_key()
        return public

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1()

    @property
    def key_size(self) -> int:
        return 256

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey
                 ) -> bytes:
        raise SecureElementError("a PKCS#11 CA key does not do key agreement")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise SecureElementError("a PKCS#11 CA key never leaves its token")

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption
                      ) -> bytes:
        raise SecureElementError("a PKCS#11 CA key never leaves its token")

    def __copy__(self) -> TokenCaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenCaKey:
        return self
