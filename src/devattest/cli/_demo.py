"""``devattest demo``: the README's main job, on embedded defaults.

Part 1 takes one device from the factory line to a signed Attestation Result, with its key
inside a secure element (a private SoftHSM2 token when SoftHSM2 is installed), and shows the
Verifier catching a row of adversaries. Part 2 runs the fleet simulator's lifecycle scenario
when that part is installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.panel import Panel
from rich.table import Table

from devattest.cli._common import STATUS_STYLE
from devattest.cli.main import app, console, handle_errors
from devattest.errors import DevattestError
from devattest.model import (
    CertificateAnchor,
    ComponentReference,
    ReferenceValues,
    ReferenceValueSet,
    Status,
    TrustAnchors,
)

PSA = "application/psa-attestation-token"
IMPLEMENTATION_ID = bytes.fromhex(
    "7f454c4602010100000000000000000003003e00010000005058000000000000")


@dataclass
class _Outcome:
    scenario: str
    expected: str
    status: Status
    reason: str
    ok: bool


def _secure_element(workdir: Path, stack: contextlib.ExitStack) -> tuple[Any, str]:
    """The walkthrough's secure element: a TPM 2.0 (a private swtpm, the same code that drives
    /dev/tpmrm0) when swtpm and tpm2-pytss are installed, else a SoftHSM2 token when SoftHSM2
    and python-pkcs11 are, else the loud test-only software key, saying in one line what was
    skipped. (The fleet part uses SoftHSM2, which must be first initialised there.)"""
    from devattest.attester.backends import open_secure_element
    from devattest.attester.backends.simulated import (
        SoftHsm,
        Swtpm,
        softhsm_available,
        swtpm_available,
    )

    missing: list[str] = []
    if swtpm_available():
        try:
            from devattest.attester.backends.tpm2 import Tpm2Config, Tpm2Key
        except ImportError:
            missing.append("tpm2-pytss")
        else:
            tpm = stack.enter_context(Swtpm(workdir / "swtpm"))
            return (Tpm2Key.provision(Tpm2Config(tcti=tpm.tcti)),
                    "TPM 2.0 (private swtpm via tpm2-pytss; fixedTPM, non-exportable)")
    if softhsm_available():
        try:
            import devattest.attester.backends.pkcs11  # noqa: F401
        except ImportError:
            missing.append("python-pkcs11")
        else:
            hsm = SoftHsm(workdir / "softhsm")
            os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
            token = hsm.init_token("demo-device", pin="4711")
            se = open_secure_element({"backend": "pkcs11", "module": token.module,
                                      "token_label": token.label, "pin": token.pin,
                                      "key_label": "attestation"})
            return se, "SoftHSM2 token via PKCS#11 (CKA_SENSITIVE, not extractable)"
    from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey

    if missing:
        console.print(f"demo: skipping the TPM 2.0 and PKCS#11 secure elements: "
                      f"{' and '.join(missing)} not installed (pip install "
                      "'devattest[hardware]'); using the test-only unsafe_software key",
                      highlight=False, soft_wrap=True, markup=False)
        return UnsafeSoftwareKey.generate(), "unsafe_software (devattest[hardware] not installed!)"
    return UnsafeSoftwareKey.generate(), "unsafe_software (no swtpm or SoftHSM2 installed!)"


def _write_images(workdir: Path) -> dict[str, Any]:
    images = workdir / "images"
    images.mkdir()
    fw = []
    for name, version, svn in (("BL", "1.9.0", 3), ("PRoT", "2.1.0", 5), ("ARoT", "1.4.2", 2)):
        path = images / f"{name.lower()}.bin"
        path.write_bytes(f"{name} firmware image {version}\n".encode() * 512)
        fw.append({"type": name, "image": str(path), "version": version,
                   "security_version": svn, "signer_id": "a5" * 32})
    return {"implementation_id": IMPLEMENTATION_ID.hex(), "hardware_model": "acme-sensor-v2",
            "security_lifecycle": "secured", "debug": "disabled", "boot_count": 1,
            "firmware": fw}


def _walkthrough(workdir: Path, stack: contextlib.ExitStack) -> list[_Outcome]:
    from devattest.attester.claims import measure_device
    from devattest.attester.evidence import attest_psa, instance_id_of
    from devattest.crypto.chain import with_crls
    from devattest.crypto.pki import (
        build_csr,
        create_manufacturer_pki,
        device_name,
        issue_attestation_certificate,
        revoke,
    )
    from devattest.ear import verify_ear_jwt
    from devattest.policy import AllOf, DefaultPolicy, RequireReferenceValues
    from devattest.verifier import NonceBook, contraindicated_result, verify, verify_and_sign

    now = datetime.now(UTC)
    t = int(now.timestamp())

    # --- Factory ------------------------------------------------------------------------
    acme = create_manufacturer_pki("Acme Devices", now=now - timedelta(days=1))
    se, se_desc = _secure_element(workdir, stack)
    description = _write_images(workdir)
    state = measure_device(description)
    iid = instance_id_of(se)
    csr = build_csr(se, subject=device_name(organization="Acme Devices", serial="SN-0001"))
    backend = se.properties.backend if se.properties.hardware_backed else None
    cert = issue_attestation_certificate(acme.issuing, csr, now=now - timedelta(hours=1),
                                         subject=device_name(organization="Acme Devices",
                                                             serial="SN-0001", ueid=iid),
                                         hardware_backend=backend)
    x5chain = (cert.public_bytes(serialization.Encoding.DER),
               acme.issuing.certificate.public_bytes(serialization.Encoding.DER))
    console.print(Panel.fit(
        f"[bold]Factory[/]: Acme Devices root CA (offline, P-384) and issuing CA (P-256)\n"
        f"device SN-0001: attestation key generated inside the secure element: {se_desc}\n"
        f"CSR signed by that key (proof of possession) -> certificate serial "
        f"{cert.serial_number:x}\nInstance ID {iid.hex()}", title="1. provision"))

    # --- Verifier provisioning ----------------------------------------------------------
    anchors = TrustAnchors.of(certificates=[CertificateAnchor(
        acme.root.certificate, authority="manufacturer:Acme Devices")])
    # Golden measurements of every release ever signed (the old BL 1.8.0 among them): a
    # rollback is caught by the minimum version, not by an unknown digest.
    old_bl = measure_device(_rollback(description, workdir)).firmware[0]
    refvals = ReferenceValues.of([ReferenceValueSet(
        class_id=IMPLEMENTATION_ID, source="demo golden measurements",
        components=tuple(ComponentReference(
            measurement_type=c.measurement_type,
            measurement_values=frozenset({c.measurement_value, old_bl.measurement_value}
                                         if c.measurement_type == "BL"
                                         else {c.measurement_value}),
            signer_ids=frozenset({c.signer_id}) if c.signer_id else frozenset(),
            min_version=c.version) for c in state.firmware))])
    policy = AllOf([DefaultPolicy(), RequireReferenceValues()])
    result_key = ec.generate_private_key(ec.SECP256R1())
    book = NonceBook(ttl=120)

    def appraise(token: bytes, nonce: bytes, trust: TrustAnchors = anchors) -> Any:
        return verify(token, media_type=PSA, expected_nonce=nonce, trust_anchors=trust,
                      reference_values=refvals, policy=policy, now=t)

    # --- Attest: challenge, Evidence signed in the secure element, signed EAR -----------
    nonce = book.issue(now=t)
    token = attest_psa(state, se, nonce=nonce, x5chain=x5chain)
    signed = verify_and_sign(token, media_type=PSA, expected_nonce=book.consume(nonce, now=t),
                             trust_anchors=anchors, reference_values=refvals, policy=policy,
                             now=t, signing_key=result_key, signing_kid="demo-verifier")
    ear = verify_ear_jwt(signed.ear_jwt, result_key.public_key(), now=t)
    sub = next(iter(ear.submods.values()))
    console.print(Panel.fit(
        f"nonce {nonce.hex()[:16]}... -> PSA token of {len(token)} bytes (x5chain, ES256)\n"
        f"Attestation Result: [{STATUS_STYLE[ear.status]}]{ear.status.value}[/]   "
        f"trust vector {sub.trust_vector.as_ear()}\n"
        f"EAR JWT ({len(signed.ear_jwt)} chars) verified with the Verifier's public key",
        title="2. attest"))
    outcomes = [_Outcome("honest device", "affirming", ear.status,
                         "; ".join(m for _, m in ear.reasons) or "-",
                         ear.status is Status.AFFIRMING)]

    # --- Adversaries --------------------------------------------------------------------
    def attack(name: str, expected: Status, run: Callable[[], Any]) -> None:
        res = run()
        reason = "; ".join(f"{c}: {m}" for c, m in res.reasons) or "-"
        outcomes.append(_Outcome(name, expected.value, res.status, reason,
                                 res.status is expected))

    def fresh(st: Any = state, signer: Any = se, chain: tuple[bytes, ...] = x5chain,
              trust: TrustAnchors = anchors) -> Any:
        n = book.issue(now=t)
        return appraise(attest_psa(st, signer, nonce=n, x5chain=chain),
                        book.consume(n, now=t), trust)

    tampered = measure_device(_tamper(description, workdir))
    attack("tampered firmware image", Status.CONTRAINDICATED, lambda: fresh(tampered))
    rollback = measure_device(_rollback(description, workdir, write=False))
    attack("rollback to BL 1.8.0", Status.CONTRAINDICATED, lambda: fresh(rollback))
    debug = measure_device({**description, "debug": "enabled"})
    attack("debug enabled", Status.CONTRAINDICATED, lambda: fresh(debug))

    def replay() -> Any:
        try:
            expected = book.consume(nonce, now=t)
        except DevattestError as err:  # NonceReplayed becomes a result, never a crash
            return contraindicated_result(err, evidence=token, media_type=PSA,
                                          expected_nonce=nonce, now=t)
        return appraise(token, expected)

    attack("replayed Evidence", Status.CONTRAINDICATED, replay)

    def stale() -> Any:
        n = book.issue(now=t)
        return appraise(token, book.consume(n, now=t))

    attack("Evidence for an old challenge", Status.CONTRAINDICATED, stale)

    from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey

    logging.getLogger("devattest.unsafe").setLevel(logging.ERROR)
    cloned = UnsafeSoftwareKey.generate()
    attack("stolen certificate, attacker's key", Status.CONTRAINDICATED,
           lambda: fresh(signer=cloned))
    rogue = create_manufacturer_pki("Rogue Fab", now=now - timedelta(days=1))
    rogue_cert = issue_attestation_certificate(
        rogue.issuing, build_csr(cloned, subject=device_name(organization="Rogue", serial="X")),
        now=now - timedelta(hours=1), subject=device_name(organization="Rogue", serial="X"),
        hardware_backend="tpm2")
    rogue_chain = (rogue_cert.public_bytes(serialization.Encoding.DER),
                   rogue.issuing.certificate.public_bytes(serialization.Encoding.DER))
    attack("certificate from another manufacturer", Status.CONTRAINDICATED,
           lambda: fresh(signer=cloned, chain=rogue_chain))
    crl = revoke(acme.issuing, None, cert.serial_number, now=now)
    revoked = with_crls(anchors, "manufacturer:Acme Devices", [crl])
    attack("device revoked (CRL)", Status.CONTRAINDICATED, lambda: fresh(trust=revoked))
    return outcomes


def _tamper(description: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / "images" / "bl-tampered.bin"
    path.write_bytes(Path(description["firmware"][0]["image"]).read_bytes() + b"\x90backdoor")
    fw = [dict(description["firmware"][0], image=str(path)), *description["firmware"][1:]]
    return {**description, "firmware": fw}


def _rollback(description: dict[str, Any], workdir: Path, *, write: bool = True
              ) -> dict[str, Any]:
    path = workdir / "images" / "bl-1.8.0.bin"
    if write:
        path.write_bytes(b"BL firmware image 1.8.0\n" * 512)
    fw = [dict(description["firmware"][0], image=str(path), version="1.8.0",
               security_version=2), *description["firmware"][1:]]
    return {**description, "firmware": fw}


def _outcome_table(outcomes: list[_Outcome]) -> Table:
    table = Table(title="3. adversaries: every outcome is an Attestation Result")
    table.add_column("scenario")
    table.add_column("expected")
    table.add_column("result")
    table.add_column("reason", overflow="fold")
    table.add_column("caught", justify="center")
    for o in outcomes:
        table.add_row(o.scenario, o.expected, f"[{STATUS_STYLE[o.status]}]{o.status.value}[/]",
                      o.reason, "[green]yes[/]" if o.ok else "[bold red]NO[/]")
    return table


@app.command("demo")
@handle_errors
def demo_command(
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Keep the demo's files here (default: a temporary directory).")
    ] = None,
    mqtt: Annotated[str | None, typer.Option(
        "--mqtt", help="Run the fleet part against this MQTT broker URL.")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Run the fleet part against this database URL (e.g. PostgreSQL).")
    ] = None,
    fleet: Annotated[bool, typer.Option(help="Run the fleet lifecycle part too.")] = True,
) -> None:
    """Provision a device, attest it, catch adversaries, then run a fleet scenario."""
    os.environ.setdefault("TSS2_LOG", "all+NONE")  # tpm2-tss probes log expected misses
    with tempfile.TemporaryDirectory(prefix="devattest-demo-") as tmp:
        workdir = data_dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            outcomes = _walkthrough(workdir, stack)
        console.print(_outcome_table(outcomes))
        ok = all(o.ok for o in outcomes)
        if fleet:
            ok = _fleet(workdir, mqtt=mqtt, db=db) and ok
    if not ok:
        console.print("[bold red]demo: some outcome was not the expected one[/]")
        raise typer.Exit(1)
    console.print("[bold green]demo: every honest device affirmed, every adversary caught[/]")


def _fleet(workdir: Path, *, mqtt: str | None, db: str | None) -> bool:
    try:
        from devattest.transport.simulator import run_demo
    except ImportError:
        console.print("(fleet simulator not installed: skipping the fleet part)")
        return True
    result: bool = run_demo(db_url=db, mqtt_url=mqtt, console=console, workdir=workdir)
    return result
