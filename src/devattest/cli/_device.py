"""``devattest device``: provision a device on the factory line, onboard it to an owner after a
successful attestation, transfer it to another owner, revoke it.

Onboarding and transfer never trust a bare claim that "the device attested fine": they take the
Verifier's signed EAR (JWT) with the Verifier's public key, the Evidence that EAR is about and
the device's manufacturer chain, and check (:func:`devattest.attester.provisioning.
issue_owner_certificate`) that the EAR verifies and is affirming and fresh, that it is about this
Evidence, that the chain is valid against the manufacturer anchors, and that the Evidence was
signed by the chain's certified key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509

from devattest.cli._attester import load_chain_der, load_device_state, opened_secure_element
from devattest.cli._common import parse_hex, parse_now, read_bytes
from devattest.cli._pki import (
    PassphraseEnvOption,
    PassphraseFileOption,
    PinEnvOption,
    PinFileOption,
    ca_secret,
    load_ca_anchors,
    parse_reason,
)
from devattest.cli.main import console, handle_errors
from devattest.errors import ConfigurationError, OnboardingRefused

app = typer.Typer(help="Provision, onboard, transfer and revoke devices.", no_args_is_help=True)

NowOption = Annotated[str | None, typer.Option(
    "--now", help="Act as of this time (ISO 8601 or POSIX seconds; default: the clock).")]
ChainOption = Annotated[Path, typer.Option(
    "--chain", help="The device's manufacturer chain (PEM, leaf first), from provisioning.")]
EvidenceOption = Annotated[Path, typer.Option(
    "--evidence", help="The Evidence the EAR is about (the token the device presented).")]
ResultOption = Annotated[Path, typer.Option(
    "--result", help="The Verifier's signed Attestation Result for that Evidence (EAR JWT).")]
VerifierKeyOption = Annotated[Path, typer.Option(
    "--verifier-key", help="The Verifier's public key (PEM or JWK), to check the EAR.")]
ManufacturerCaOption = Annotated[list[Path] | None, typer.Option(
    "--manufacturer-ca", help="Manufacturer CA certificate trusted for the device chain "
    "(PEM, or a CA directory); repeatable.")]
AnchorsOption = Annotated[Path | None, typer.Option(
    "--anchors", help="Manufacturer Trust Anchors (devattest trust-anchors YAML/JSON).")]
CrlOption = Annotated[list[Path] | None, typer.Option(
    "--crl", help="A current CRL of a manufacturer CA (PEM); repeatable.")]


@app.command("provision")
@handle_errors
def provision_command(
    ca: Annotated[Path, typer.Option("--ca", help="The manufacturer's issuing CA directory.")],
    se: Annotated[Path, typer.Option("--se", help="The device's secure-element config (YAML).")],
    serial: Annotated[str, typer.Option("--serial", help="Device serial number.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for cert.pem and chain.pem.")],
    firmware: Annotated[Path | None, typer.Option(
        "--firmware", help="Device description (YAML) whose firmware measurements are "
        "recorded in the certificate as TCG DICE TcbInfo.")] = None,
    ueid: Annotated[str | None, typer.Option(
        "--ueid", help="Device UEID, hex (default: the PSA Instance ID of its key).")] = None,
    days: Annotated[int, typer.Option("--days", help="Certificate validity in days.")] = 7300,
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
) -> None:
    """Factory line: generate the attestation key inside the secure element, have it sign a CSR
    (proof of possession), and issue its attestation-key certificate."""
    from devattest.attester.evidence import instance_id_of
    from devattest.attester.provisioning import CaDirectory, provision_device
    from devattest.crypto import pki

    if not (ca / "cert.pem").is_file():
        raise ConfigurationError(f"{ca} is not a CA directory (no cert.pem)")
    tcb_info: pki.TcbInfo | None = None
    measurements: list[bytes] | None = None
    if firmware is not None:
        state = load_device_state(firmware)
        measurements = [c.measurement_value for c in state.firmware]
        tcb_info = pki.TcbInfo(model=state.hardware_model, version=state.hardware_version)
    with opened_secure_element(se, create=True) as element:
        device_ueid = parse_hex(ueid, what="--ueid") if ueid else instance_id_of(element)
        chain = provision_device(element, manufacturer_ca=CaDirectory(ca), now=parse_now(now),
                                 serial=serial, ueid=device_ueid, fw_measurements=measurements,
                                 tcb_info=tcb_info, days=days, password=ca_secret(
                                     key_passphrase_file, key_passphrase_env, pin_file,
                                     pin_env))
        props = element.properties
    out.mkdir(parents=True, exist_ok=True)
    pki.save_certificates(out / "cert.pem", chain[:1])
    pki.save_certificates(out / "chain.pem", chain)
    leaf = chain[0]
    console.print(f"provisioned {serial}: key generated in {props.backend} "
                  f"({'hardware-backed' if props.hardware_backed else 'NOT hardware-backed'}, "
                  f"{'non-exportable' if props.non_exportable else 'exportable'})")
    console.print(f"certificate serial {leaf.serial_number:x}, UEID {device_ueid.hex()}")
    console.print(f"wrote {out / 'cert.pem'} and {out / 'chain.pem'} ({len(chain)} certificates)")


def _verified_result(result: Path, verifier_key: Path, *, now: int) -> Any:
    """Step 0 of onboarding: the EAR's signature (RFC 7515) and times, under the Verifier's
    key. The rest of the checks are issue_owner_certificate's."""
    from devattest.crypto.keys import load_verification_key
    from devattest.ear import verify_ear_cwt, verify_ear_jwt
    from devattest.errors import DevattestError

    raw = read_bytes(result, what="attestation result", limit=1024 * 1024)
    pub = load_verification_key(verifier_key)
    try:
        text = raw.strip()
        if text[:2] == b"ey":
            return verify_ear_jwt(text.decode("ascii"), pub, now=now)
        return verify_ear_cwt(raw, pub, now=now)
    except DevattestError as exc:
        raise OnboardingRefused(f"the Attestation Result does not verify: "
                                f"{exc.diagnostics()}", step="0") from exc


def _attested_inputs(chain: Path, evidence: Path, result: Path, verifier_key: Path,
                     anchors: Path | None, manufacturer_ca: list[Path] | None,
                     crl: list[Path] | None, now: str | None) -> dict[str, Any]:
    when = parse_now(now)
    return {
        "result": _verified_result(result, verifier_key, now=int(when.timestamp())),
        "evidence": read_bytes(evidence, what="evidence"),
        "device_chain": load_chain_der(chain),
        "manufacturer_anchors": load_ca_anchors(anchors_file=anchors,
                                                ca_certs=manufacturer_ca or [],
                                                crl_files=crl or []),
        "now": when,
    }


def _write_owner_cert(out: Path, cert: x509.Certificate, epoch: int) -> None:
    from devattest.crypto import pki

    out.parent.mkdir(parents=True, exist_ok=True)
    pki.save_certificates(out, [cert])
    console.print(f"issued owner certificate serial {cert.serial_number:x} for "
                  f"{cert.subject.rfc4514_string()} (owner epoch {epoch}) -> {out}")


@app.command("onboard")
@handle_errors
def onboard_command(
    owner_ca: Annotated[Path, typer.Option("--owner-ca", help="The owner CA directory.")],
    chain: ChainOption,
    evidence: EvidenceOption,
    result: ResultOption,
    verifier_key: VerifierKeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the owner certificate.")],
    anchors: AnchorsOption = None,
    manufacturer_ca: ManufacturerCaOption = None,
    crl: CrlOption = None,
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
) -> None:
    """Onboard a device to an owner: issue an owner certificate for its secure-element key, only
    after a successful attestation (a fresh, affirming, signed EAR about this device)."""
    from devattest.attester.provisioning import CaDirectory, issue_owner_certificate

    inputs = _attested_inputs(chain, evidence, result, verifier_key, anchors, manufacturer_ca,
                              crl, now)
    cred = issue_owner_certificate(CaDirectory(owner_ca), owner_epoch=1, password=ca_secret(
        key_passphrase_file, key_passphrase_env, pin_file, pin_env), **inputs)
    _write_owner_cert(out, cred.certificate, cred.owner_epoch)


@app.command("transfer")
@handle_errors
def transfer_command(
    from_owner_ca: Annotated[Path, typer.Option(
        "--from-owner-ca", help="The current owner's CA directory.")],
    to_owner_ca: Annotated[Path, typer.Option(
        "--to-owner-ca", help="The new owner's CA directory.")],
    owner_cert: Annotated[Path, typer.Option(
        "--owner-cert", help="The device's current owner certificate (PEM).")],
    chain: ChainOption,
    evidence: EvidenceOption,
    result: ResultOption,
    verifier_key: VerifierKeyOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the new owner certificate.")],
    anchors: AnchorsOption = None,
    manufacturer_ca: ManufacturerCaOption = None,
    crl: CrlOption = None,
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
    from_key_passphrase_file: Annotated[Path | None, typer.Option(
        "--from-key-passphrase-file", help="The current owner CA key's passphrase file.")
    ] = None,
    from_key_passphrase_env: Annotated[str | None, typer.Option(
        "--from-key-passphrase-env", help="NAME of a variable holding that passphrase.")
    ] = None,
    from_pin_file: Annotated[Path | None, typer.Option(
        "--from-pin-file", help="The current owner CA token's PIN file.")] = None,
    from_pin_env: Annotated[str | None, typer.Option(
        "--from-pin-env", help="NAME of a variable holding that PIN.")] = None,
) -> None:
    """Transfer a device to a new owner (after a successful attestation): issue the new owner's
    certificate with the next owner epoch, and revoke the previous owner's on its CRL."""
    from devattest.attester.provisioning import CaDirectory, transfer_ownership
    from devattest.crypto.pki import load_certificate

    inputs = _attested_inputs(chain, evidence, result, verifier_key, anchors, manufacturer_ca,
                              crl, now)
    previous = CaDirectory(from_owner_ca)
    moved = transfer_ownership(previous_owner_ca=previous,
                               previous_certificate=load_certificate(owner_cert),
                               new_owner_ca=CaDirectory(to_owner_ca),
                               new_password=ca_secret(key_passphrase_file, key_passphrase_env,
                                                      pin_file, pin_env),
                               previous_password=ca_secret(
                                   from_key_passphrase_file, from_key_passphrase_env,
                                   from_pin_file, from_pin_env), **inputs)
    _write_owner_cert(out, moved.credential.certificate, moved.credential.owner_epoch)
    console.print(f"revoked the previous owner certificate on {previous.crl_path} "
                  f"({len(moved.previous_owner_crl)} entries)")


@app.command("revoke")
@handle_errors
def revoke_command(
    ca: Annotated[Path, typer.Option("--ca", help="The CA directory that issued the "
                                     "certificate (manufacturer issuing CA or owner CA).")],
    cert: Annotated[Path, typer.Option("--cert", help="The device's certificate or chain "
                                       "(PEM; the first certificate is revoked).")],
    reason: Annotated[str | None, typer.Option(
        "--reason", help="CRLReason (default key_compromise).")] = "key_compromise",
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
) -> None:
    """Revoke a device: put its certificate on the issuing CA's CRL. Verifiers that load the
    new CRL reject its Evidence from then on."""
    from devattest.attester.provisioning import CaDirectory, revoke
    from devattest.crypto.pki import device_identity, load_certificate

    leaf = load_certificate(cert)
    device_serial, ueid = device_identity(leaf.subject)
    if device_serial is None and ueid is None:
        raise ConfigurationError(f"{cert}: not a device certificate (no serial or UEID)")
    directory = CaDirectory(ca)
    crl = revoke(directory, leaf, now=parse_now(now), reason=parse_reason(reason),
                 password=ca_secret(key_passphrase_file, key_passphrase_env, pin_file, pin_env))
    console.print(f"revoked device {device_serial or (ueid.hex() if ueid else '')} "
                  f"(certificate serial {leaf.serial_number:x}); {directory.crl_path} now "
                  f"lists {len(crl)} certificate(s)")
