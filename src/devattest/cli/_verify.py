"""``devattest verify`` and ``devattest ear verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from devattest.cli._common import dumps, parse_hex, parse_now, read_bytes, result_table
from devattest.cli.main import (
    EXIT_AFFIRMING,
    EXIT_CONTRAINDICATED,
    EXIT_WARNING,
    app,
    console,
    handle_errors,
)
from devattest.crypto.keys import load_verification_key
from devattest.errors import ConfigurationError, EvidenceError
from devattest.model import KeyAnchor, Status, TrustAnchors, VerifyOptions
from devattest.schemes import SchemeRegistry, default_registry
from devattest.schemes.tpm.eventlog import DEFAULT_MAX_EVENTLOG_BYTES

ear_app = typer.Typer(help="Verify and inspect Attestation Results (EAR).", no_args_is_help=True)
app.add_typer(ear_app, name="ear")

EXIT_BY_STATUS = {
    Status.AFFIRMING: EXIT_AFFIRMING,
    Status.WARNING: EXIT_WARNING,
    Status.CONTRAINDICATED: EXIT_CONTRAINDICATED,
    Status.NONE: EXIT_CONTRAINDICATED,
}


def sniff_media_type(data: bytes, registry: SchemeRegistry) -> str:
    """Pick the first registered scheme that can decode ``data`` (PSA before EAT)."""
    from devattest.model import DEFAULT_LIMITS

    lenient = VerifyOptions(allow_unprotected_alg=True)
    for mt in registry.media_types:
        scheme = registry.for_media_type(mt)
        try:
            scheme.decode(data, limits=DEFAULT_LIMITS, options=lenient)
        except EvidenceError:
            continue
        except Exception:  # noqa: S112 - a scheme that cannot decode is not the one
            continue
        return mt
    return registry.media_types[0]


@app.command("verify")
@handle_errors
def verify_command(
    file: Annotated[Path, typer.Argument(help="Evidence file (binary CBOR or hex).")],
    nonce: Annotated[str, typer.Option("--nonce", help="Expected nonce, hex.")],
    key: Annotated[Path | None, typer.Option(
        "--key", help="Verification key: PEM, JWK, or raw HMAC key file; it is the Trust "
        "Anchor for this token. Give it, or CA anchors (--anchors/--ca).")] = None,
    anchors: Annotated[Path | None, typer.Option(
        "--anchors", help="Trust Anchors (devattest trust-anchors YAML/JSON): keys and CA "
        "certificates for x5chain tokens.")] = None,
    ca: Annotated[list[Path] | None, typer.Option(
        "--ca", help="A manufacturer or owner CA certificate (PEM) trusted for x5chain "
        "tokens; repeatable.")] = None,
    crl: Annotated[list[Path] | None, typer.Option(
        "--crl", help="A current CRL of a trusted CA (PEM); repeatable.")] = None,
    require_hardware: Annotated[bool, typer.Option(
        "--require-hardware", help="Refuse keys not certified as hardware-backed "
        "(adds RequireHardwareBackedKey to the policy).")] = False,
    allow_unappraised_software: Annotated[bool, typer.Option(
        "--allow-unappraised-software", help="Explicitly accept signature-only appraisal: "
        "without Reference Values for its software the result may still affirm, marked "
        "signature-only (adds AllowUnappraisedSoftware to the policy). Without it such "
        "Evidence is at most a warning.")] = False,
    ear_out: Annotated[Path | None, typer.Option(
        "--ear-out", help="Also write the signed Attestation Result (EAR JWT) here.")] = None,
    ear_key: Annotated[Path | None, typer.Option(
        "--ear-key", help="The Verifier's private key (PEM/JWK) that signs --ear-out.")] = None,
    refvals: Annotated[Path | None, typer.Option(
        "--refvals", help="Reference Values (devattest JSON/YAML, or CoRIM).")] = None,
    policy: Annotated[Path | None, typer.Option(
        "--policy", help="Appraisal Policy (.rego, or devattest JSON/YAML).")] = None,
    media_type: Annotated[str | None, typer.Option(
        "--media-type", help="Evidence media type (guessed when absent).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the EAR claims as JSON.")] = False,
    allow_unprotected_alg: Annotated[bool, typer.Option(
        "--allow-unprotected-alg",
        help="Legacy: accept the COSE alg outside the protected header (reported).")] = False,
    now: Annotated[str | None, typer.Option(
        "--now", help="Appraise as of this time (ISO 8601 or POSIX seconds).")] = None,
    max_eventlog_size: Annotated[int, typer.Option(
        "--max-eventlog-size", min=1024, max=16 * 1024 * 1024,
        help="TPM quotes: the largest measured-boot event log accepted, in bytes "
        "(bare-metal logs exceed 64 KiB).")] = DEFAULT_MAX_EVENTLOG_BYTES,
) -> None:
    """Verify Evidence and print the Attestation Result.

    Exit code: 0 affirming, 1 warning, 2 contraindicated, 3 usage or input-file error.
    """
    from devattest.ear import result_to_claims
    from devattest.policy import DefaultPolicy, load_policy
    from devattest.verifier import verify

    evidence = read_bytes(file, what="evidence")
    expected = parse_hex(nonce, what="--nonce")
    trust = _trust_anchors(key, anchors, ca or [], crl or [])
    refs = _reference_values(refvals) if refvals else None
    pol = load_policy(policy) if policy else DefaultPolicy()
    if require_hardware:
        from devattest.policy import AllOf, RequireHardwareBackedKey

        pol = AllOf([pol, RequireHardwareBackedKey()])
    if allow_unappraised_software:
        from devattest.policy import AllOf, AllowUnappraisedSoftware

        pol = AllOf([pol, AllowUnappraisedSoftware()])
    if (ear_out is None) != (ear_key is None):
        raise ConfigurationError("--ear-out and --ear-key go together")
    registry = default_registry(tpm_max_eventlog_bytes=max_eventlog_size)
    mt = media_type or sniff_media_type(evidence, registry)
    registry.for_media_type(mt)  # an unknown media type is a usage error (exit 3)
    result = verify(
        evidence, media_type=mt, expected_nonce=expected, trust_anchors=trust,
        reference_values=refs, policy=pol, now=parse_now(now), registry=registry,
        options=VerifyOptions(allow_unprotected_alg=allow_unprotected_alg))
    if ear_out is not None and ear_key is not None:
        from devattest.crypto.keys import load_private_key
        from devattest.ear import sign_ear_jwt

        ear_out.write_text(sign_ear_jwt(result, load_private_key(ear_key)) + "\n")
    if json_out:
        console.print_json(dumps(result_to_claims(result)))
    else:
        console.print(f"media type: {mt}")
        console.print(result_table(result))
    raise typer.Exit(EXIT_BY_STATUS[result.status])


#: The first bytes of a CoRIM: tag 501 (unsigned corim-map) or tag 18 (COSE_Sign1).
_CORIM_STARTS = (b"\xd9\x01\xf5", b"\xd2")


def _reference_values(path: Path) -> Any:
    """``--refvals``: a CoRIM (CBOR, tag 501 or a signed tag 18) or a devattest
    reference-values document (YAML/JSON), told apart by the first bytes.

    Raises:
        CorimError: if a CoRIM is invalid (each defect has its own reason).
        ProvisioningSchemaError: if a devattest document is invalid.
    """
    from devattest.provisioning import load_corim_file, load_reference_values_file

    with path.open("rb") as fh:
        head = fh.read(3)
    if head.startswith(_CORIM_STARTS):
        return load_corim_file(path).reference_values
    return load_reference_values_file(path)


def _trust_anchors(key: Path | None, anchors: Path | None, ca: list[Path],
                   crl: list[Path]) -> TrustAnchors:
    """--key, or CA anchors (--anchors and/or --ca, with --crl): exactly one kind."""
    uses_ca = anchors is not None or bool(ca)
    if (key is None) == (not uses_ca):
        raise ConfigurationError("give exactly one of --key or CA anchors (--anchors/--ca)")
    if key is not None:
        if crl:
            raise ConfigurationError("--crl needs CA anchors (--anchors/--ca)")
        return TrustAnchors.of(keys=[KeyAnchor(public_key=load_verification_key(key),
                                               label=f"--key {key.name}")])
    from devattest.cli._pki import load_ca_anchors

    return load_ca_anchors(anchors_file=anchors, ca_certs=ca, crl_files=crl)


@ear_app.command("verify")
@handle_errors
def ear_verify_command(
    token: Annotated[Path, typer.Argument(help="EAR as a JWT (text) or a CWT (binary).")],
    key: Annotated[Path, typer.Option("--key", help="The Verifier's public key (PEM or JWK).")],
    now: Annotated[str | None, typer.Option("--now", help="Check exp/iat as of this time.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the claims as JSON.")] = False,
) -> None:
    """Verify a signed Attestation Result (EAR) and print it. Exit code as for verify."""
    from devattest.ear import result_to_claims, verify_ear_cwt, verify_ear_jwt

    raw = token.read_bytes()
    pub = load_verification_key(key)
    when = int(parse_now(now).timestamp())
    text = raw.strip()
    if text[:2] == b"ey":
        result = verify_ear_jwt(text.decode("ascii"), pub, now=when)
    else:
        result = verify_ear_cwt(raw, pub, now=when)
    if json_out:
        console.print_json(dumps(result_to_claims(result)))
    else:
        console.print("[green]signature valid[/]")
        console.print(result_table(result))
    raise typer.Exit(EXIT_BY_STATUS[result.status])
