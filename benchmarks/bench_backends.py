"""Signing rate of each secure-element backend (ES256 over a 256-byte Sig_structure).

Run from the repository root: ``.venv/bin/python benchmarks/bench_backends.py [--seconds N]``.
Sections: ``unsafe_software`` (in-process baseline), ``pkcs11`` (a private SoftHSM2 token, set
up like the integration fixture), ``tpm2`` (a persistent key in a private swtpm, over its TCP
TCTI). The simulators come from :mod:`devattest.attester.backends.simulated`.
``raw_verify`` adds the raw ES256 verify rate of the same run, for scale.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = bytes(range(256))


def rate(sign: Callable[[bytes], bytes], seconds: float) -> tuple[float, int]:
    """Signatures per second over about ``seconds``."""
    sign(DATA)  # warm up
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            sign(DATA)
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def bench_unsafe_software(seconds: float) -> None:
    from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey

    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    se = UnsafeSoftwareKey.generate()
    r, n = rate(se.sign, seconds)
    print(f"unsafe_software  ES256 sign: {r:10.0f}/s  ({n} signatures)")


def bench_pkcs11(seconds: float) -> None:
    from devattest.attester.backends.simulated import SoftHsm, softhsm_available

    if not softhsm_available():
        print("pkcs11           skipped: SoftHSM2 not installed")
        return
    with tempfile.TemporaryDirectory(prefix="devattest-bench-softhsm-") as tmp:
        hsm = SoftHsm(Path(tmp))
        token = hsm.init_token("bench")
        os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
        from devattest.attester.backends import open_secure_element

        t0 = time.perf_counter()
        se = open_secure_element(token.config(key_label="bench-key"))
        keygen_ms = (time.perf_counter() - t0) * 1000
        r, n = rate(se.sign, seconds)
        se.close()  # type: ignore[attr-defined]
    print(f"pkcs11 (SoftHSM2 {hsm.module}) ES256 sign: {r:10.0f}/s  ({n} signatures; "
          f"open+keygen {keygen_ms:.1f} ms)")


def bench_tpm2(seconds: float) -> None:
    from devattest.attester.backends.simulated import Swtpm, swtpm_available

    if not swtpm_available():
        print("tpm2             skipped: swtpm not installed")
        return
    from devattest.attester.backends.tpm2 import Tpm2Config, Tpm2Key

    with Swtpm() as tpm:
        t0 = time.perf_counter()
        se = Tpm2Key.provision(Tpm2Config(tcti=tpm.tcti))
        keygen_ms = (time.perf_counter() - t0) * 1000
        r, n = rate(se.sign, seconds)
        se.close()
    print(f"tpm2 (swtpm over TCP) ES256 sign: {r:10.0f}/s  ({n} signatures; "
          f"provision {keygen_ms:.1f} ms)")


def bench_raw_verify(seconds: float) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()

    def verify(_: bytes) -> bytes:
        pub.verify(sig, DATA, ec.ECDSA(hashes.SHA256()))
        return sig

    r, n = rate(verify, seconds)
    print(f"raw ES256 verify (same run): {r:10.0f}/s  ({n} verifications)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("sections", nargs="*",
                        default=["unsafe_software", "pkcs11", "tpm2", "raw_verify"])
    args = parser.parse_args()
    sections = {"unsafe_software": bench_unsafe_software, "pkcs11": bench_pkcs11,
                "tpm2": bench_tpm2, "raw_verify": bench_raw_verify}
    for name in args.sections:
        sections[name](args.seconds)


if __name__ == "__main__":
    main()
