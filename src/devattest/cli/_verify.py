"""``devattest verify`` and ``devattest ear verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from devattest.errors import EvidenceError
from devattest.model import KeyAnchor, Status, TrustAnchors, VerifyOptions
from devattest.schemes import SchemeRegistry, default_registry

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
    key: Annotated[Path, typer.Option("--key", help="Verification key: PEM, JWK, or raw HMAC key"
                                      " file; it is the Trust Anchor for this token.")],
    nonce: Annotated[str, typer.Option("--nonce", help="Expected nonce, hex.")],
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
) -> None:
    """Verify Evidence and print the Attestation Result.

    Exit code: 0 affirming, 1 warning, 2 contraindicated, 3 usage or input-file error.
    """
    from devattest.ear import result_to_claims
    from devattest.policy import DefaultPolicy, load_policy
    from devattest.provisioning import load_reference_values_file
    from devattest.verifier import verify

    evidence = read_bytes(file, what="evidence")
    expected = parse_hex(nonce, what="--nonce")
    anchors = TrustAnchors.of(keys=[KeyAnchor(public_key=load_verification_key(key),
                                              label=f"--key {key.name}")])
    refs = load_reference_values_file(refvals) if refvals else None
    pol = load_policy(policy) if policy else DefaultPolicy()
    registry = default_registry()
    mt = media_type or sniff_media_type(evidence, registry)
    registry.for_media_type(mt)  # an unknown media type is a usage error (exit 3)
    result = verify(
        evidence, media_type=mt, expected_nonce=expected, trust_anchors=anchors,
        reference_values=refs, policy=pol, now=parse_now(now), registry=registry,
        options=VerifyOptions(allow_unprotected_alg=allow_unprotected_alg))
    if json_out:
        console.print_json(dumps(result_to_claims(result)))
    else:
        console.print(f"media type: {mt}")
        console.print(result_table(result))
    raise typer.Exit(EXIT_BY_STATUS[result.status])


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
