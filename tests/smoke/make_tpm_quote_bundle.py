"""Regenerate tests/smoke/tpm-quote/: a TPM 2.0 quote from a real (simulated) TPM, for the
install-path smoke suite (scripts/ci-install-smoke), which runs where no TPM may be.

    .venv/bin/python -m tests.smoke.make_tpm_quote_bundle

Writes ``evidence.cbor`` (the quote Evidence: TPMS_ATTEST, signature, PCRs, compact event
log, AK public area), ``ak.pem`` (the AK's public key, activated against the TPM's EK),
``nonce.hex`` and ``refvals.yaml`` (the booted components' Reference Values).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from devattest.provisioning import dump_reference_values
from tests._support.swtpm import Swtpm
from tests.integration.tpm.conftest import make_device, reference_values

OUT = Path(__file__).resolve().parent / "tpm-quote"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    nonce = os.urandom(32)
    tpm = Swtpm().start()
    try:
        device = make_device(tpm)
        try:
            evidence = device.quote(nonce)
        finally:
            device.attester.close()
    finally:
        tpm.stop()
    (OUT / "evidence.cbor").write_bytes(evidence)
    (OUT / "nonce.hex").write_text(nonce.hex() + "\n")
    (OUT / "ak.pem").write_bytes(device.anchor.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (OUT / "refvals.yaml").write_text(yaml.safe_dump(dump_reference_values(reference_values()),
                                                     sort_keys=False))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
