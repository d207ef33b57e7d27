"""Certificate-chain validation cost: cold (new Trust Anchors generation every time), warm
(verified-chain cache hit), and the raw ES256 verify rate measured in the same run.

Run from the repository root: ``.venv/bin/python benchmarks/bench_chain.py [--seconds N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from devattest.crypto import pki
from devattest.crypto.chain import validate_chain
from devattest.model import CertificateAnchor, TrustAnchors

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    m = pki.create_manufacturer_pki("Bench", now=NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = pki.device_name(organization="Bench", serial="SN-1")
    leaf = pki.issue_attestation_certificate(m.issuing, pki.build_csr(key, subject=subject),
                                             subject=subject, now=NOW, hardware_backend="tpm2")
    crl = pki.issue_crl(m.issuing, revoked=(), now=NOW, crl_number=1)
    from devattest.attester.provisioning import chain_der

    x5chain = chain_der([leaf, m.issuing.certificate])
    root = CertificateAnchor(m.root.certificate, "manufacturer:Bench", (crl,))

    def cold() -> object:
        return validate_chain(x5chain, TrustAnchors.of(certificates=[root]), now=NOW)

    warm_anchors = TrustAnchors.of(certificates=[root])

    def warm() -> object:
        return validate_chain(tuple(bytes(c) for c in x5chain), warm_anchors, now=NOW)

    sig = key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()

    def raw() -> None:
        pub.verify(sig, b"x" * 200, ec.ECDSA(hashes.SHA256()))

    r_raw, r_cold, r_warm = rate(raw, args.seconds), rate(cold, args.seconds), rate(
        warm, args.seconds)
    print(f"raw ES256 verify        : {r_raw:10.0f}/s")
    print(f"chain validation (cold) : {r_cold:10.0f}/s  ({1e6 / r_cold:.0f} us per chain)")
    print(f"chain validation (warm) : {r_warm:10.0f}/s  ({1e6 / r_warm:.1f} us per chain)")


if __name__ == "__main__":
    main()
