"""A simulated TPM device: swtpm + the devattest TPM quote attester, with an AK activated
against its EK and registered as a Trust Anchor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("tpm2_pytss")

from devattest.attester.tpm_quote import TpmHandle, TpmQuoteAttester
from devattest.model import (
    ComponentReference,
    KeyAnchor,
    ReferenceValues,
    ReferenceValueSet,
)
from devattest.schemes.tpm.credential import finish_activation, start_activation
from tests._support.swtpm import Swtpm

CLASS_ID = "acme-gateway-v2"
BOOT = [("bootloader", b"u-boot 2024.01 image", "2024.1.0", 0),
        ("kernel", b"linux 6.6 image", "6.6.12", 4),
        ("rootfs", b"rootfs squashfs image", "3.1", 5)]


@dataclass
class Device:
    swtpm: Swtpm
    attester: TpmQuoteAttester
    ek: TpmHandle
    ak: TpmHandle
    anchor: KeyAnchor

    def boot(self) -> None:
        self.attester.compact_log.clear()
        self.attester.measure_class_id(CLASS_ID)
        for name, image, version, pcr in BOOT:
            self.attester.measure_image(name, image, version=version, pcr=pcr)

    def quote(self, nonce: bytes, **kw: object) -> bytes:
        from devattest.schemes.tpm import DEFAULT_PCR_SELECTION

        sel = kw.pop("selection", DEFAULT_PCR_SELECTION)
        return self.attester.quote(self.ak, nonce, sel, **kw)  # type: ignore[arg-type]


def make_device(tpm: Swtpm) -> Device:
    att = TpmQuoteAttester(tpm.tcti)
    ek = att.create_ek()
    ak = att.create_ak()
    pending = start_activation(ek.public, ak.public)
    secret = att.activate_credential(ak, ek, pending.challenge.credential_blob,
                                     pending.challenge.encrypted_secret)
    anchor = finish_activation(pending, secret, label="test device")
    att.esapi.flush_context(ek.handle)  # swtpm holds 3 transient objects
    dev = Device(tpm, att, ek, ak, anchor)
    dev.boot()
    return dev


@pytest.fixture
def device(swtpm: Swtpm) -> Iterator[Device]:
    dev = make_device(swtpm)
    yield dev
    dev.attester.close()


@pytest.fixture
def nonce() -> bytes:
    return os.urandom(32)


def reference_values() -> ReferenceValues:
    import hashlib

    comps = tuple(ComponentReference(name, frozenset({hashlib.sha256(img).digest()}),
                                     min_version=ver)
                  for name, img, ver, _ in BOOT)
    return ReferenceValues.of([ReferenceValueSet(CLASS_ID, comps, source="test")])
