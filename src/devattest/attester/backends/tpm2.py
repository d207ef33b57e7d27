"""The ``tpm2`` secure-element backend: an ECC P-256 signing key inside a TPM 2.0.

The key is created by the TPM under the owner-hierarchy storage root key (SRK) with the
attributes ``fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign``:

* ``sensitiveDataOrigin`` - the TPM generated the private scalar itself;
* ``fixedTPM | fixedParent`` - the key can never be duplicated (TPM2_Duplicate fails with
  ``TPM_RC_ATTRIBUTES``), so its sensitive area never leaves this TPM in any form;
* not ``restricted`` - TPM2_Sign accepts an arbitrary host-computed digest, which is what a COSE
  ``Sig_structure`` needs (a restricted key would only sign TPM-generated structures, and is
  what the ``tpm`` quote scheme uses for its AK instead).

The key is made persistent with TPM2_EvictControl and reopened by its handle, so it survives
reboots. The TCTI string is configurable: ``device:/dev/tpmrm0`` for a real TPM (the default)
and ``swtpm:host=127.0.0.1,port=2321`` for the simulator run the same code.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from devattest.attester.backends._base import SecureElementProperties
from devattest.errors import SecureElementError

try:
    from tpm2_pytss import ESAPI, TSS2_Exception
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_RH, TPM2_ST, TPMA_OBJECT
    from tpm2_pytss.types import (
        TPM2B_PUBLIC,
        TPM2B_SENSITIVE_CREATE,
        TPMS_SENSITIVE_CREATE,
        TPMT_SIG_SCHEME,
        TPMT_TK_HASHCHECK,
    )
except ImportError as exc:  # pragma: no cover - depends on the hardware extra
    raise ImportError("the tpm2 backend needs tpm2-pytss (pip install devattest[hardware])"
                      ) from exc

_log = logging.getLogger(__name__)

#: COSE ES256 (RFC 9053 section 2.1).
ES256 = -7

#: Attributes of the signing key (TPM 2.0 Part 2 section 8.3, TPMA_OBJECT).
SIGNING_KEY_ATTRIBUTES = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                          | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH
                          | TPMA_OBJECT.SIGN_ENCRYPT)
#: Attributes of the storage root key (TCG TPM v2.0 Provisioning Guidance, section 7.5.1).
SRK_ATTRIBUTES = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
                  | TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH
                  | TPMA_OBJECT.NODA | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT)
#: Persistent handles the owner may use (TPM 2.0 Part 2 section 7.5, TCG handle registry).
_OWNER_PERSISTENT_RANGE = range(0x81000000, 0x81800000)


@dataclass(frozen=True, slots=True)
class Tpm2Config:
    """Where the TPM is and how the key is addressed."""

    #: TCTI configuration: ``device:/dev/tpmrm0``, ``swtpm:host=...,port=...``, ``mssim:...``.
    tcti: str = "device:/dev/tpmrm0"
    #: Persistent handle of the signing key (owner range 0x81000000-0x817FFFFF).
    persistent_handle: int = 0x81010010
    #: Owner hierarchy authorisation (needed to create the SRK and for EvictControl).
    owner_auth: bytes = b""
    #: Authorisation value of the parent (the SRK); empty for the standard SRK.
    parent_auth: bytes = b""
    #: Authorisation value given to the signing key.
    key_auth: bytes = b""


def srk_template() -> Any:
    """The ECC P-256 SRK template (TCG Provisioning Guidance, AES-128-CFB storage key)."""
    return TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=SRK_ATTRIBUTES)


def signing_key_template(*, auth_policy: bytes = b"") -> Any:
    """The public template of the signing key: P-256, ECDSA with SHA-256, non-restricted.

    ``auth_policy`` exists for tests only (to show that fixedTPM/fixedParent block duplication
    even when a policy would allow it).
    """
    tmpl = TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256", objectAttributes=SIGNING_KEY_ATTRIBUTES)
    if auth_policy:
        tmpl.publicArea.authPolicy = auth_policy
    return tmpl


def _ecc_public_key(public: Any) -> ec.EllipticCurvePublicKey:
    area = public.publicArea
    if area.type != TPM2_ALG.ECC:
        raise SecureElementError("the TPM key is not an ECC key")
    x = int.from_bytes(bytes(area.unique.ecc.x), "big")
    y = int.from_bytes(bytes(area.unique.ecc.y), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


class Tpm2Key:
    """A persistent ECC P-256 signing key in a TPM 2.0: a :class:`SecureElement`.

    Use :meth:`provision` once (factory line), then :meth:`open` on every boot. The object
    holds an ESAPI context; call :meth:`close` (or use it as a context manager) when done.
    """

    def __init__(self, esapi: Any, handle: Any, public: Any, name: bytes, *,
                 config: Tpm2Config, owns_esapi: bool) -> None:
        self._esapi = esapi
        self._handle = handle
        self._public = public
        self._name = name
        self._config = config
        self._owns_esapi = owns_esapi
        self._public_key = _ecc_public_key(public)
        self._scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        self._scheme.details.any.hashAlg = TPM2_ALG.SHA256
        # A NULL hash-check ticket: allowed because the key is not restricted (Part 3 20.2).
        self._ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def _connect(config: Tpm2Config, esapi: Any | None) -> tuple[Any, bool]:
        if esapi is not None:
            return esapi, False
        try:
            return ESAPI(config.tcti), True
        except TSS2_Exception as exc:
            raise SecureElementError(f"cannot open TPM at {config.tcti!r}: {exc}") from exc

    @classmethod
    def provision(cls, config: Tpm2Config, *, esapi: Any | None = None,
                  replace: bool = False) -> Tpm2Key:
        """Generate the signing key inside the TPM and make it persistent.

        Args:
            config: TCTI, persistent handle and authorisation values.
            esapi: an open ESAPI context to reuse (else one is opened from ``config.tcti``).
            replace: evict an existing key at ``config.persistent_handle`` first.

        Raises:
            SecureElementError: the TPM refused, or the handle is taken and ``replace`` is off.
            ValueError: the persistent handle is outside the owner range.
        """
        if config.persistent_handle not in _OWNER_PERSISTENT_RANGE:
            raise ValueError(f"handle {config.persistent_handle:#x} is not an owner "
                             "persistent handle")
        ectx, owns = cls._connect(config, esapi)
        try:
            ectx.tr_set_auth(ESYS_TR.OWNER, config.owner_auth)
            existing = _find_persistent(ectx, config.persistent_handle)
            if existing is not None:
                if not replace:
                    raise SecureElementError(
                        f"persistent handle {config.persistent_handle:#x} is already in use")
                ectx.evict_control(ESYS_TR.OWNER, existing, config.persistent_handle)
            srk, _, _, _, _ = ectx.create_primary(
                TPM2B_SENSITIVE_CREATE(TPMS_SENSITIVE_CREATE(userAuth=config.parent_auth)),
                srk_template(), ESYS_TR.OWNER)
            try:
                ectx.tr_set_auth(srk, config.parent_auth)
                sensitive = TPM2B_SENSITIVE_CREATE(
                    TPMS_SENSITIVE_CREATE(userAuth=config.key_auth))
                priv, pub, _, _, _ = ectx.create(srk, sensitive, signing_key_template())
                transient = ectx.load(srk, priv, pub)
                try:
                    persistent = ectx.evict_control(ESYS_TR.OWNER, transient,
                                                    config.persistent_handle)
                finally:
                    ectx.flush_context(transient)
            finally:
                ectx.flush_context(srk)
            ectx.tr_close(persistent)
        except TSS2_Exception as exc:
            if owns:
                ectx.close()
            raise SecureElementError(f"TPM refused to provision the key: {exc}") from exc
        except BaseException:
            if owns:
                ectx.close()
            raise
        if owns:
            ectx.close()
        return cls.open(config, esapi=esapi)

    @classmethod
    def open(cls, config: Tpm2Config, *, esapi: Any | None = None) -> Tpm2Key:
        """Reopen the persistent key by its handle and check its attributes.

        Raises:
            SecureElementError: no key at the handle, or it is not a fixedTPM non-duplicable
                P-256 signing key generated by the TPM.
        """
        ectx, owns = cls._connect(config, esapi)
        try:
            handle = ectx.tr_from_tpmpublic(config.persistent_handle)
            public, name, _ = ectx.read_public(handle)
            area = public.publicArea
            want = int(SIGNING_KEY_ATTRIBUTES)
            if int(area.objectAttributes) & want != want or (
                    int(area.objectAttributes) & int(TPMA_OBJECT.RESTRICTED)):
                raise SecureElementError(
                    f"key at {config.persistent_handle:#x} has attributes "
                    f"{int(area.objectAttributes):#x}, not fixedTPM|fixedParent|"
                    "sensitiveDataOrigin|userWithAuth|sign (unrestricted)")
            ectx.tr_set_auth(handle, config.key_auth)
        except TSS2_Exception as exc:
            if owns:
                ectx.close()
            raise SecureElementError(
                f"no usable key at handle {config.persistent_handle:#x}: {exc}") from exc
        except BaseException:
            if owns:
                ectx.close()
            raise
        return cls(ectx, handle, public, bytes(name), config=config, owns_esapi=owns)

    def evict(self) -> None:
        """Remove the key from persistent storage (decommissioning). The object is closed.

        Raises:
            SecureElementError: the TPM refused.
        """
        try:
            self._esapi.tr_set_auth(ESYS_TR.OWNER, self._config.owner_auth)
            self._esapi.evict_control(ESYS_TR.OWNER, self._handle,
                                      self._config.persistent_handle)
        except TSS2_Exception as exc:
            raise SecureElementError(f"TPM refused to evict the key: {exc}") from exc
        finally:
            self._handle = None
            self.close()

    def close(self) -> None:
        """Release the ESAPI context (if this object opened it)."""
        if self._esapi is not None and self._owns_esapi:
            self._esapi.close()
        self._esapi = None

    def __enter__(self) -> Tpm2Key:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ SecureElement
    @property
    def key_id(self) -> bytes:
        """The key's TPM name (nameAlg || H(TPMT_PUBLIC)), stable across reboots."""
        return self._name

    @property
    def name(self) -> bytes:
        """Same as :attr:`key_id`."""
        return self._name

    @property
    def alg(self) -> int:
        return ES256

    @property
    def properties(self) -> SecureElementProperties:
        return SecureElementProperties(hardware_backed=True, non_exportable=True,
                                       backend="tpm2")

    @property
    def tpm_public(self) -> bytes:
        """The marshalled TPMT_PUBLIC of the key (what TPM2_ReadPublic returns)."""
        return bytes(self._public.publicArea.marshal())

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The P-256 public key."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """Hash ``data`` with SHA-256 on the host and sign the digest with TPM2_Sign (ECDSA).

        Returns:
            The raw 64-byte ``r || s`` signature (the COSE ES256 form).

        Raises:
            SecureElementError: the TPM refused or the key is closed.
        """
        if self._esapi is None or self._handle is None:
            raise SecureElementError("the TPM key is closed")
        digest = hashlib.sha256(data).digest()
        try:
            sig = self._esapi.sign(self._handle, digest, self._scheme, self._ticket)
        except TSS2_Exception as exc:
            raise SecureElementError(f"TPM2_Sign failed: {exc}") from exc
        r = bytes(sig.signature.ecdsa.signatureR)
        s = bytes(sig.signature.ecdsa.signatureS)
        if len(r) > 32 or len(s) > 32:
            raise SecureElementError("TPM returned an oversized ECDSA signature")
        return r.rjust(32, b"\0") + s.rjust(32, b"\0")


def _find_persistent(ectx: Any, handle: int) -> Any | None:
    try:
        return ectx.tr_from_tpmpublic(handle)
    except TSS2_Exception:
        return None


__all__ = ["ES256", "SIGNING_KEY_ATTRIBUTES", "Tpm2Config", "Tpm2Key", "signing_key_template",
           "srk_template"]
