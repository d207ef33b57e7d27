"""The tpm2 secure-element backend against a real (simulated) TPM: swtpm."""

from __future__ import annotations

import hashlib

import pytest

tpm2_pytss = pytest.importorskip("tpm2_pytss")

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: E402
    encode_dss_signature,
)
from tpm2_pytss import ESAPI, TSS2_Exception  # noqa: E402
from tpm2_pytss.constants import (  # noqa: E402
    ESYS_TR,
    TPM2_ALG,
    TPM2_CC,
    TPM2_RC,
    TPM2_SE,
    TPMA_OBJECT,
)
from tpm2_pytss.types import (  # noqa: E402
    TPM2B_SENSITIVE_CREATE,
    TPMT_SYM_DEF,
    TPMT_SYM_DEF_OBJECT,
)

from devattest.attester.backends._base import SecureElement  # noqa: E402
from devattest.attester.backends.tpm2 import (  # noqa: E402
    Tpm2Config,
    Tpm2Key,
    signing_key_template,
    srk_template,
)
from devattest.errors import SecureElementError  # noqa: E402

pytestmark = pytest.mark.integration


def _verify_raw(pub: ec.EllipticCurvePublicKey, sig: bytes, data: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture
def key(swtpm_tcti: str):
    k = Tpm2Key.provision(Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010020))
    yield k
    k.close()


def test_sign_verifies_with_cryptography(key: Tpm2Key) -> None:
    se: SecureElement = key
    data = b"COSE Sig_structure bytes" * 10
    sig = se.sign(data)
    assert len(sig) == 64
    _verify_raw(se.public_key(), sig, data)
    with pytest.raises(InvalidSignature):
        _verify_raw(se.public_key(), sig, data + b"x")
    assert se.properties.hardware_backed and se.properties.non_exportable
    assert se.properties.backend == "tpm2"
    assert se.alg == -7
    # key_id is the TPM name: nameAlg (SHA-256) || SHA-256(TPMT_PUBLIC).
    assert se.key_id == b"\x00\x0b" + hashlib.sha256(key.tpm_public).digest()


def test_key_is_persistent_and_reopens_by_handle(swtpm_tcti: str) -> None:
    cfg = Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010021, key_auth=b"k3y")
    with Tpm2Key.provision(cfg) as k1:
        pub1 = k1.public_key().public_numbers()
        name1 = k1.key_id
    with Tpm2Key.open(cfg) as k2:
        assert k2.public_key().public_numbers() == pub1
        assert k2.key_id == name1
        _verify_raw(k2.public_key(), k2.sign(b"after reopen"), b"after reopen")


def test_key_auth_is_enforced(swtpm_tcti: str) -> None:
    cfg = Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010022, key_auth=b"right")
    Tpm2Key.provision(cfg).close()
    with Tpm2Key.open(Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010022,
                                 key_auth=b"wrong")) as k, pytest.raises(SecureElementError):
        k.sign(b"data")


def test_provision_refuses_to_overwrite_a_taken_handle(swtpm_tcti: str) -> None:
    cfg = Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010023)
    Tpm2Key.provision(cfg).close()
    with pytest.raises(SecureElementError, match="already in use"):
        Tpm2Key.provision(cfg)
    with Tpm2Key.provision(cfg, replace=True) as k:
        assert len(k.sign(b"x")) == 64


def test_open_missing_handle_is_a_typed_error(swtpm_tcti: str) -> None:
    with pytest.raises(SecureElementError):
        Tpm2Key.open(Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010099))


def test_read_public_reveals_only_the_public_area(key: Tpm2Key, swtpm_tcti: str) -> None:
    # TPM2_ReadPublic is the only read path for an object; it returns the TPMT_PUBLIC
    # (type, nameAlg, attributes, policy, parameters, unique = the public point) and names.
    key.close()
    with ESAPI(swtpm_tcti) as ectx:
        h = ectx.tr_from_tpmpublic(0x81010020)
        public, name, _ = ectx.read_public(h)
    assert bytes(name) == key.key_id
    area = public.publicArea
    assert bytes(area.marshal()) == key.tpm_public
    nums = key.public_key().public_numbers()
    assert int.from_bytes(bytes(area.unique.ecc.x), "big") == nums.x
    assert int.from_bytes(bytes(area.unique.ecc.y), "big") == nums.y
    attrs = int(area.objectAttributes)
    for bit in (TPMA_OBJECT.FIXEDTPM, TPMA_OBJECT.FIXEDPARENT, TPMA_OBJECT.SENSITIVEDATAORIGIN,
                TPMA_OBJECT.USERWITHAUTH, TPMA_OBJECT.SIGN_ENCRYPT):
        assert attrs & int(bit)
    assert not attrs & int(TPMA_OBJECT.RESTRICTED)
    # Public area size: 2+2+4+2+(2+2+2+2)+(2+32)+(2+32) bytes; nothing else is returned.
    assert len(key.tpm_public) == 88


def test_fixed_tpm_key_cannot_be_duplicated_even_with_a_dup_policy(swtpm_tcti: str) -> None:
    """fixedTPM|fixedParent stop TPM2_Duplicate (Part 3 section 13.1: TPM_RC_ATTRIBUTES),
    the only command that exports a sensitive area, even when the key's policy allows it."""
    with ESAPI(swtpm_tcti) as ectx:
        # Policy digest for PolicyCommandCode(TPM2_CC_Duplicate), computed by a trial session.
        trial = ectx.start_auth_session(ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.TRIAL,
                                        TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
        ectx.policy_command_code(trial, TPM2_CC.Duplicate)
        dup_policy = bytes(ectx.policy_get_digest(trial))
        ectx.flush_context(trial)

        srk, _, _, _, _ = ectx.create_primary(TPM2B_SENSITIVE_CREATE(), srk_template(),
                                              ESYS_TR.OWNER)
        priv, pub, _, _, _ = ectx.create(srk, TPM2B_SENSITIVE_CREATE(),
                                         signing_key_template(auth_policy=dup_policy))
        h = ectx.load(srk, priv, pub)
        sess = ectx.start_auth_session(ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                                       TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
        ectx.policy_command_code(sess, TPM2_CC.Duplicate)
        with pytest.raises(TSS2_Exception) as err:
            ectx.duplicate(h, ESYS_TR.NULL, b"", TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                           session1=sess)
        assert err.value.rc & 0xFF == TPM2_RC.ATTRIBUTES & 0xFF


def test_backend_key_cannot_be_duplicated(key: Tpm2Key, swtpm_tcti: str) -> None:
    key.close()
    with ESAPI(swtpm_tcti) as ectx:
        h = ectx.tr_from_tpmpublic(0x81010020)
        sess = ectx.start_auth_session(ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                                       TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
        ectx.policy_command_code(sess, TPM2_CC.Duplicate)
        with pytest.raises(TSS2_Exception):
            ectx.duplicate(h, ESYS_TR.NULL, b"", TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                           session1=sess)


def test_sign_after_close_is_a_typed_error(key: Tpm2Key) -> None:
    key.close()
    with pytest.raises(SecureElementError):
        key.sign(b"x")


def test_evict_removes_the_key(swtpm_tcti: str) -> None:
    cfg = Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010024)
    Tpm2Key.provision(cfg).evict()
    with pytest.raises(SecureElementError):
        Tpm2Key.open(cfg)


def test_rejects_non_owner_persistent_handle(swtpm_tcti: str) -> None:
    with pytest.raises(ValueError, match="owner persistent"):
        Tpm2Key.provision(Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81800001))


def test_open_refuses_a_restricted_or_duplicable_key_at_the_handle(swtpm_tcti: str) -> None:
    # A key someone else placed at the handle without fixedTPM is not accepted as ours.
    with ESAPI(swtpm_tcti) as ectx:
        srk, _, _, _, _ = ectx.create_primary(TPM2B_SENSITIVE_CREATE(), srk_template(),
                                              ESYS_TR.OWNER)
        tmpl = signing_key_template()
        tmpl.publicArea.objectAttributes &= ~(TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT)
        priv, pub, _, _, _ = ectx.create(srk, TPM2B_SENSITIVE_CREATE(), tmpl)
        h = ectx.load(srk, priv, pub)
        ectx.evict_control(ESYS_TR.OWNER, h, 0x81010025)
    with pytest.raises(SecureElementError, match="attributes"):
        Tpm2Key.open(Tpm2Config(tcti=swtpm_tcti, persistent_handle=0x81010025))
