"""``devattest pki``: manufacturer and owner CAs, certificates and CRLs.

CA state lives in directories (see :mod:`devattest.attester.provisioning`)::

    devattest pki init-manufacturer acme-pki --org "Acme Devices" \
        --key-passphrase-file /run/secrets/acme-ca      # root/, issuing/ (keys encrypted)
    devattest pki init-owner owner-a --org "Fleet A" --pkcs11-module /usr/lib/softhsm/...so \
        --token-label fleet-a --key-label owner-ca --pin-env FLEET_A_PIN   # key in a token
    devattest pki revoke acme-pki/issuing --cert device/cert.pem
    devattest pki crl acme-pki/issuing [--reissue] [--pem]
    devattest pki show device/cert.pem

Keep a manufacturer root directory offline: only the issuing CA is needed on the factory line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from devattest.cli._common import dumps, parse_now
from devattest.cli.main import console, handle_errors
from devattest.errors import ConfigurationError, ProvisioningError
from devattest.model import CertificateAnchor, TrustAnchors

app = typer.Typer(help="Manufacturer and owner CAs, certificates and CRLs.",
                  no_args_is_help=True)

REASONS = {r.name: r for r in x509.ReasonFlags
           if r not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)}

NowOption = Annotated[str | None, typer.Option(
    "--now", help="Act as of this time (ISO 8601 or POSIX seconds; default: the clock).")]

# How a CA key is kept: the secrets come from a file or an environment variable, never from an
# argument value (which other users can read in the process list and shell history).
PassphraseFileOption = Annotated[Path | None, typer.Option(
    "--key-passphrase-file", help="File holding the CA key's passphrase (first line).")]
PassphraseEnvOption = Annotated[str | None, typer.Option(
    "--key-passphrase-env", help="NAME of an environment variable holding the CA key's "
    "passphrase.")]
PinFileOption = Annotated[Path | None, typer.Option(
    "--pin-file", help="File holding the PKCS#11 token's user PIN (first line).")]
PinEnvOption = Annotated[str | None, typer.Option(
    "--pin-env", help="NAME of an environment variable holding the token's user PIN.")]
Pkcs11ModuleOption = Annotated[str | None, typer.Option(
    "--pkcs11-module", help="Keep the CA key in a PKCS#11 token: the module (.so).")]
TokenLabelOption = Annotated[str | None, typer.Option(
    "--token-label", help="The PKCS#11 token's label.")]
KeyLabelOption = Annotated[str, typer.Option(
    "--key-label", help="The CA key's label on the token (init-manufacturer adds -root and "
    "-issuing).")]
UnsafePlaintextOption = Annotated[bool, typer.Option(
    "--unsafe-plaintext-key", help="UNSAFE, tests only: write the CA key unencrypted.")]


def read_secret(file: Path | None, env: str | None, *, what: str, option: str
                ) -> bytes | None:
    """A secret from ``--<option>-file`` (its first line) or ``--<option>-env`` (a variable's
    NAME), or ``None`` when neither is given.

    Raises:
        ConfigurationError: if both are given, the variable is unset, or the secret is empty.
    """
    if file is not None and env is not None:
        raise ConfigurationError(f"give one of --{option}-file or --{option}-env")
    if file is not None:
        lines = file.read_bytes().splitlines()
        value = lines[0] if lines else b""
        source = str(file)
    elif env is not None:
        if env not in os.environ:
            raise ConfigurationError(f"--{option}-env: the environment variable {env} is not "
                                     "set")
        value = os.environ[env].encode()
        source = f"${env}"
    else:
        return None
    if not value:
        raise ConfigurationError(f"the {what} in {source} is empty")
    return value


def ca_secret(passphrase_file: Path | None, passphrase_env: str | None,
              pin_file: Path | None, pin_env: str | None) -> bytes | None:
    """What unlocks an existing CA's key: its passphrase, or its token's PIN.

    Raises:
        ConfigurationError: if both a passphrase and a PIN are given.
    """
    passphrase = read_secret(passphrase_file, passphrase_env, what="passphrase",
                             option="key-passphrase")
    pin = read_secret(pin_file, pin_env, what="PIN", option="pin")
    if passphrase is not None and pin is not None:
        raise ConfigurationError("give a CA key passphrase or a token PIN, not both")
    return passphrase if passphrase is not None else pin


def _key_protection(*, passphrase_file: Path | None, passphrase_env: str | None,
                    pkcs11_module: str | None, token_label: str | None, key_label: str,
                    pin_file: Path | None, pin_env: str | None, unsafe_plaintext: bool
                    ) -> dict[str, Any]:
    """The ``password``/``pkcs11``/``unsafe_plaintext`` arguments of ``init_*_ca``.

    Raises:
        ConfigurationError: if not exactly one way of keeping the key is chosen, or its
            inputs are incomplete.
    """
    from devattest.attester.provisioning import Pkcs11CaKeyRef

    passphrase = read_secret(passphrase_file, passphrase_env, what="passphrase",
                             option="key-passphrase")
    pin = read_secret(pin_file, pin_env, what="PIN", option="pin")
    ways = [w for w, on in (("--key-passphrase-file/-env", passphrase is not None),
                            ("--pkcs11-module", pkcs11_module is not None),
                            ("--unsafe-plaintext-key", unsafe_plaintext)) if on]
    if not ways:
        raise ConfigurationError(
            "choose how to keep the CA key: --key-passphrase-file FILE or --key-passphrase-env"
            " NAME (encrypted PEM), or --pkcs11-module/--token-label/--key-label with "
            "--pin-file or --pin-env (in a token); --unsafe-plaintext-key only for tests")
    if len(ways) > 1:
        raise ConfigurationError(f"choose one way to keep the CA key, not {' and '.join(ways)}")
    if pkcs11_module is not None:
        if token_label is None or pin is None:
            raise ConfigurationError("--pkcs11-module needs --token-label and --pin-file or "
                                     "--pin-env")
        return {"password": pin,
                "pkcs11": Pkcs11CaKeyRef(pkcs11_module, token_label, key_label)}
    if pin is not None or token_label is not None:
        raise ConfigurationError("--token-label and --pin-file/--pin-env need --pkcs11-module")
    return {"password": passphrase, "unsafe_plaintext": unsafe_plaintext}


# --------------------------------------------------------------------------------------
# Helpers shared with ``devattest device`` and ``devattest verify``
# --------------------------------------------------------------------------------------
def parse_reason(value: str | None) -> x509.ReasonFlags | None:
    """``--reason`` as an RFC 5280 section 5.3.1 CRLReason."""
    if value is None:
        return None
    name = value.strip().replace("-", "_")
    if name not in REASONS:
        raise ConfigurationError(f"--reason must be one of {', '.join(sorted(REASONS))}")
    return REASONS[name]


def authority_of(certificate: x509.Certificate) -> str:
    """``owner:<O>`` for a devattest owner CA (``CN=<O> Owner CA``), else ``manufacturer:<O>``."""
    orgs = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = str(orgs[0].value) if orgs else certificate.subject.rfc4514_string()
    cn = str(cns[0].value) if cns else ""
    return f"{'owner' if cn.endswith('Owner CA') else 'manufacturer'}:{org}"


def _ca_certificate(path: Path) -> x509.Certificate:
    from devattest.crypto.pki import load_certificate

    cert = load_certificate(path / "cert.pem" if path.is_dir() else path)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ConfigurationError(f"{path}: not a CA certificate (basicConstraints cA is not "
                                 "true); a Trust Anchor must be a CA")
    return cert


def load_ca_anchors(*, anchors_file: Path | None, ca_certs: Sequence[Path],
                    crl_files: Sequence[Path]) -> TrustAnchors:
    """Trust Anchors from a devattest trust-anchors document and/or CA certificates (PEM, or a
    CA directory's ``cert.pem``), with CRLs attached.

    A CRL rides on the anchor whose subject issued it, else on an anchor of the same
    organisation (chain validation finds CRLs by issuer name and checks their signature with
    the issuer's key in the validated path).

    Raises:
        ConfigurationError: if no CA is given, a file is not a CA certificate or a CRL.
        ProvisioningSchemaError: if the trust-anchors document is invalid.
    """
    from devattest.crypto.pki import load_crl
    from devattest.provisioning import load_trust_anchors_file

    certs: list[CertificateAnchor] = []
    keys: tuple[Any, ...] = ()
    if anchors_file is not None:
        doc = load_trust_anchors_file(anchors_file)
        certs.extend(doc.certificates)
        keys = doc.keys
    for path in ca_certs:
        cert = _ca_certificate(path)
        certs.append(CertificateAnchor(cert, authority_of(cert)))
    if not certs and not keys:
        raise ConfigurationError("no CA Trust Anchor given (--anchors with certificates, "
                                 "or --ca)")
    extra: dict[int, list[x509.CertificateRevocationList]] = {}
    for path in crl_files:
        try:
            crl = load_crl(path)
        except ValueError as exc:
            raise ConfigurationError(f"{path}: not a PEM CRL") from exc
        extra.setdefault(_crl_home(crl, certs), []).append(crl)
    anchored = tuple(CertificateAnchor(a.certificate, a.authority,
                                       (*a.crls, *extra.get(i, ()))) for i, a in enumerate(certs))
    return TrustAnchors(keys=keys, certificates=anchored)


def _crl_home(crl: x509.CertificateRevocationList, certs: Sequence[CertificateAnchor]) -> int:
    for i, a in enumerate(certs):
        if a.certificate.subject == crl.issuer:
            return i
    orgs = crl.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    for i, a in enumerate(certs):
        if orgs and a.certificate.subject.get_attributes_for_oid(
                NameOID.ORGANIZATION_NAME) == orgs:
            return i
    raise ConfigurationError(f"the CRL of {crl.issuer.rfc4514_string()} belongs to none of "
                             "the given CAs")


def certificate_summary(cert: x509.Certificate) -> dict[str, Any]:
    """What ``pki show`` prints: identity, validity, purposes and devattest extensions."""
    from devattest.crypto import pki

    out: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key_id": pki.key_identifier(cert.public_key()).hex(),
    }
    device_serial, ueid = pki.device_identity(cert.subject)
    if device_serial is not None:
        out["device_serial"] = device_serial
    if ueid is not None:
        out["ueid"] = ueid.hex()
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        out["ca"] = bc.ca
        if bc.ca:
            out["path_length"] = bc.path_length
    except x509.ExtensionNotFound:
        out["ca"] = None
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        out["key_usage"] = [n for n in ("digital_signature", "key_cert_sign", "crl_sign")
                            if getattr(ku, n)]
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        out["key_purposes"] = ["devattest-attestation-key" if o == pki.OID_KP_ATTESTATION_KEY
                               else (o._name if o._name != "Unknown OID" else o.dotted_string)
                               for o in eku]
    except x509.ExtensionNotFound:
        pass
    out["hardware_backed"] = pki.hardware_backend_of(cert)
    epoch = pki.owner_epoch_of(cert)
    if epoch is not None:
        out["owner_epoch"] = epoch
    tcb = pki.tcb_info_of(cert)
    if tcb is not None:
        out["tcb_info"] = {
            **{k: v for k in ("vendor", "model", "version", "svn", "layer", "index")
               if (v := getattr(tcb, k)) is not None},
            "fwids": [{"hash_alg": f.hash_alg, "digest": f.digest.hex()} for f in tcb.fwids],
        }
    return out


def _crl_summary(crl: x509.CertificateRevocationList) -> dict[str, Any]:
    from devattest.crypto import pki

    return {
        "issuer": crl.issuer.rfc4514_string(),
        "crl_number": pki.crl_number_of(crl),
        "this_update": crl.last_update_utc.isoformat(),
        "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
        "revoked": [{"serial": f"{e.serial_number:x}",
                     "date": e.revocation_date.isoformat(),
                     "reason": e.reason.name if e.reason else None}
                    for e in pki.crl_entries(crl)],
    }


def _ca_dir(path: Path) -> Any:
    from devattest.attester.provisioning import CaDirectory

    if not (path / "cert.pem").is_file():
        raise ProvisioningError(f"{path} is not a CA directory (no cert.pem)")
    return CaDirectory(path)


def _print_ca(label: str, cert: x509.Certificate, path: Path) -> None:
    console.print(f"{label}: {cert.subject.rfc4514_string()}  ->  {path}")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
@app.command("init-manufacturer")
@handle_errors
def init_manufacturer(
    directory: Annotated[Path, typer.Argument(
        help="Where to create root/ (keep offline) and issuing/ (factory line).")],
    org: Annotated[str, typer.Option("--org", help="Manufacturer name (subject O).")],
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pkcs11_module: Pkcs11ModuleOption = None,
    token_label: TokenLabelOption = None,
    key_label: KeyLabelOption = "devattest-manufacturer-ca",
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
    unsafe_plaintext_key: UnsafePlaintextOption = False,
) -> None:
    """Create a manufacturer's offline root CA (P-384; P-256 in a token) and its issuing CA
    (P-256), with the keys encrypted under a passphrase or inside a PKCS#11 token."""
    from devattest.attester.provisioning import init_manufacturer_ca

    protection = _key_protection(
        passphrase_file=key_passphrase_file, passphrase_env=key_passphrase_env,
        pkcs11_module=pkcs11_module, token_label=token_label, key_label=key_label,
        pin_file=pin_file, pin_env=pin_env, unsafe_plaintext=unsafe_plaintext_key)
    root, issuing = init_manufacturer_ca(directory / "root", directory / "issuing", org,
                                         now=parse_now(now), **protection)
    _print_ca("root CA (keep offline)", root.certificate(), root.path)
    _print_ca("issuing CA", issuing.certificate(), issuing.path)
    console.print(f"Verifiers trust {root.cert_path} (with the issuing CA's CRL "
                  f"{issuing.crl_path}).")


@app.command("init-owner")
@handle_errors
def init_owner(
    directory: Annotated[Path, typer.Argument(help="Where to create the owner CA.")],
    org: Annotated[str, typer.Option("--org", help="Owner name (subject O).")],
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pkcs11_module: Pkcs11ModuleOption = None,
    token_label: TokenLabelOption = None,
    key_label: KeyLabelOption = "devattest-owner-ca",
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
    unsafe_plaintext_key: UnsafePlaintextOption = False,
) -> None:
    """Create an owner CA, which issues owner (LDevID-like) certificates on onboarding, with
    its key encrypted under a passphrase or inside a PKCS#11 token."""
    from devattest.attester.provisioning import init_owner_ca

    protection = _key_protection(
        passphrase_file=key_passphrase_file, passphrase_env=key_passphrase_env,
        pkcs11_module=pkcs11_module, token_label=token_label, key_label=key_label,
        pin_file=pin_file, pin_env=pin_env, unsafe_plaintext=unsafe_plaintext_key)
    ca = init_owner_ca(directory, org, now=parse_now(now), **protection)
    _print_ca("owner CA", ca.certificate(), ca.path)


@app.command("revoke")
@handle_errors
def revoke_command(
    ca_dir: Annotated[Path, typer.Argument(help="The issuing CA's directory.")],
    serial: Annotated[str | None, typer.Option("--serial", help="Serial number, hex.")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="The certificate (PEM; the "
                                              "first one of a chain file).")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="CRLReason, e.g. key_compromise, superseded, cessation_of_operation."
    )] = None,
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
) -> None:
    """Revoke a certificate: add it to the CA's CRL and re-sign the CRL."""
    from devattest.attester.provisioning import revoke
    from devattest.crypto.pki import load_certificate

    if (serial is None) == (cert is None):
        raise ConfigurationError("give exactly one of --serial or --cert")
    ca = _ca_dir(ca_dir)
    target: x509.Certificate | int
    if cert is not None:
        target = load_certificate(cert)
    else:
        try:
            target = int(str(serial).removeprefix("0x"), 16)
        except ValueError:
            raise ConfigurationError("--serial must be hexadecimal") from None
    crl = revoke(ca, target, now=parse_now(now), reason=parse_reason(reason),
                 password=ca_secret(key_passphrase_file, key_passphrase_env, pin_file, pin_env))
    number = target.serial_number if isinstance(target, x509.Certificate) else target
    console.print(f"revoked serial {number:x}; {ca.crl_path} is now CRL number "
                  f"{_crl_summary(crl)['crl_number']} with {len(crl)} entries")


@app.command("crl")
@handle_errors
def crl_command(
    ca_dir: Annotated[Path, typer.Argument(help="The CA's directory.")],
    reissue: Annotated[bool, typer.Option(
        "--reissue", help="Re-sign the CRL with a new validity first (run before nextUpdate)."
    )] = False,
    pem: Annotated[bool, typer.Option("--pem", help="Print the CRL as PEM.")] = False,
    now: NowOption = None,
    key_passphrase_file: PassphraseFileOption = None,
    key_passphrase_env: PassphraseEnvOption = None,
    pin_file: PinFileOption = None,
    pin_env: PinEnvOption = None,
) -> None:
    """Print a CA's current CRL (optionally re-issuing it first)."""
    ca = _ca_dir(ca_dir)
    crl = (ca.refresh_crl(now=parse_now(now), password=ca_secret(
        key_passphrase_file, key_passphrase_env, pin_file, pin_env)) if reissue else ca.crl())
    if pem:
        console.out(crl.public_bytes(Encoding.PEM).decode(), end="")
    else:
        console.print_json(dumps(_crl_summary(crl)))


@app.command("show")
@handle_errors
def show_command(
    cert: Annotated[Path, typer.Argument(help="Certificate (PEM; every one in the file).")],
) -> None:
    """Show certificates: subject, UEID, key purpose, hardware marker, TcbInfo, owner epoch."""
    from devattest.crypto.pki import load_certificates

    certs = load_certificates(cert)
    if not certs:
        raise ConfigurationError(f"{cert}: no PEM certificate")
    summaries = [certificate_summary(c) for c in certs]
    console.print_json(dumps(summaries[0] if len(summaries) == 1 else summaries))
