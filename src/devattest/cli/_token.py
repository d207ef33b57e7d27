"""``devattest token inspect`` and ``devattest token create``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from devattest._documents import loads_strict_yaml
from devattest.cli._common import dumps, read_bytes
from devattest.cli.main import app, console, handle_errors
from devattest.errors import ConfigurationError

token_app = typer.Typer(help="Create and inspect attestation tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("inspect")
@handle_errors
def inspect_command(
    file: Annotated[Path, typer.Argument(help="Token file (binary CBOR or hex).")],
) -> None:
    """Decode a COSE/CWT token and print its headers and claims (nothing is verified)."""
    from devattest.cose import decode_cose, strict_loads
    from devattest.model import DEFAULT_LIMITS, VerifyOptions

    data = read_bytes(file, what="token")
    msg = decode_cose(data, limits=DEFAULT_LIMITS, options=VerifyOptions(
        allow_unprotected_alg=True))
    claims = strict_loads(msg.payload, limits=DEFAULT_LIMITS)
    out: dict[str, Any] = {
        "structure": msg.kind,
        "tagged": msg.tagged,
        "protected": dict(msg.protected),
        "unprotected": dict(msg.unprotected),
        "claims": _named_claims(claims),
        "signature": msg.signature,
    }
    console.print_json(dumps(out))


def _named_claims(claims: Any) -> Any:
    if not isinstance(claims, dict):
        return claims
    names: dict[int, str] = {}
    for module in ("devattest.schemes.eat", "devattest.schemes.psa"):
        try:
            mod = __import__(module, fromlist=["CLAIM_NAMES"])
        except ImportError:
            continue
        names.update(getattr(mod, "CLAIM_NAMES", {}))
    return {names.get(k, k) if isinstance(k, int) else k: v for k, v in claims.items()}


@token_app.command("create")
@handle_errors
def create_command(
    claims: Annotated[Path, typer.Option("--claims", help="Claims as YAML (see docs/cli.md).")],
    key: Annotated[Path, typer.Option(
        "--key", help="Signing key (PEM/JWK private key; a raw HMAC key file makes a Mac0).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the token.")],
    token_type: Annotated[str, typer.Option(
        "--type", help="psa (RFC 9783) or eat (RFC 9711).")] = "psa",
    nonce: Annotated[str | None, typer.Option(
        "--nonce", help="Override the nonce/challenge claim (hex).")] = None,
) -> None:
    """Create a signed PSA token or EAT from a YAML claims file (for tests and demos)."""
    from devattest.cose import PrivateKeySigner
    from devattest.crypto.keys import load_private_key, load_symmetric_key

    data = loads_strict_yaml(claims.read_text())
    if not isinstance(data, dict):
        raise ConfigurationError(f"{claims}: the claims file must hold a mapping")
    if nonce is not None:
        nonce_bytes = bytes.fromhex(nonce)
        if token_type == "psa":
            data["challenge"] = nonce_bytes
        else:
            data["eat_nonce"] = nonce_bytes
    signer: Any
    try:
        signer = PrivateKeySigner(load_private_key(key))
    except ConfigurationError:
        signer = load_symmetric_key(key)  # a raw HMAC key makes a COSE_Mac0
    if token_type == "psa":
        from devattest.schemes.psa import create_psa_token

        token = create_psa_token(data, signer)
    elif token_type == "eat":
        from devattest.schemes.eat import create_eat

        token = create_eat(data, signer)
    else:
        raise ConfigurationError(f"--type must be psa or eat, not {token_type!r}")
    out.write_bytes(token)
    console.print(f"wrote {len(token)} bytes to {out}")
