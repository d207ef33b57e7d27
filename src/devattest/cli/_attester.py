"""``devattest attester``: run the Attester on a device: measure it, sign Evidence inside its
secure element.

The secure element is described by a small YAML file (what
:func:`devattest.attester.backends.open_secure_element` takes; docs/secure-elements.md)::

    backend: pkcs11                 # or tpm2, or unsafe_software (tests only)
    pkcs11:
      module: /usr/lib/softhsm/libsofthsm2.so
      token_label: device-0001
      pin_env: DEVICE_PIN           # or pin: "1234"
      key_label: attestation

Relative paths in it (``module``, ``key_path``) are resolved against the file's directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from devattest._documents import loads_strict_yaml
from devattest.cli._common import dumps, parse_hex
from devattest.cli.main import console, handle_errors
from devattest.errors import ConfigurationError

app = typer.Typer(help="Run the Attester: collect claims, sign Evidence.", no_args_is_help=True)

_PATH_KEYS = ("module", "key_path")


def _yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    try:
        data = loads_strict_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the {what} must be a mapping")
    return data


def load_se_config(path: Path, *, create: bool) -> dict[str, Any]:
    """Read a secure-element config file into the flat mapping ``open_secure_element`` takes.

    ``pin_env``/``*_auth_env`` name environment variables holding the secret; ``create``
    sets whether the key may be generated when absent (unless the file says so itself).

    Raises:
        ConfigurationError: if the file is malformed or a named variable is unset.
    """
    raw = _yaml_mapping(path, what="secure-element config")
    backend = raw.get("backend")
    if not isinstance(backend, str):
        raise ConfigurationError(f"{path}: needs 'backend: tpm2 | pkcs11 | unsafe_software'")
    params = {k: v for k, v in raw.items() if k != backend}
    nested = raw.get(backend)
    if isinstance(nested, Mapping):
        params.update(nested)
    elif nested is not None:
        raise ConfigurationError(f"{path}: '{backend}' must be a mapping")
    for key in [k for k in params if k.endswith("_env")]:
        var = str(params.pop(key))
        if var not in os.environ:
            raise ConfigurationError(f"{path}: {key} names ${var}, which is not set")
        params[key.removesuffix("_env")] = os.environ[var]
    for key in _PATH_KEYS:
        if isinstance(params.get(key), str) and not Path(params[key]).is_absolute():
            params[key] = str((path.parent / params[key]).resolve())
    params.setdefault("create", create)
    return params


@contextlib.contextmanager
def opened_secure_element(path: Path, *, create: bool) -> Iterator[Any]:
    """Open the secure element a config file describes, closing it afterwards.

    Raises:
        ConfigurationError: bad config (see :func:`load_se_config`).
        SecureElementError: the element refuses to open the key.
    """
    from devattest.attester.backends import open_secure_element

    se = open_secure_element(load_se_config(path, create=create))
    try:
        yield se
    finally:
        close = getattr(se, "close", None)
        if callable(close):
            close()


def load_device_state(description: Path) -> Any:
    """Measure the device a description file names (images relative to the file)."""
    from devattest.attester.claims import measure_device

    return measure_device(_yaml_mapping(description, what="device description"),
                          base=description.parent)


def load_chain_der(path: Path) -> tuple[bytes, ...]:
    """The certificates of a PEM chain file, as DER for COSE ``x5chain`` (leaf first).

    Raises:
        ConfigurationError: if the file holds no certificate.
    """
    from devattest.attester.provisioning import chain_der
    from devattest.crypto.pki import load_certificates

    certs = load_certificates(path)
    if not certs:
        raise ConfigurationError(f"{path}: no PEM certificate")
    return chain_der(certs)


def _state_doc(state: Any) -> dict[str, Any]:
    def comp(c: Any) -> dict[str, Any]:
        return {k: v for k, v in (
            ("type", c.measurement_type), ("measurement", c.measurement_value),
            ("version", c.version), ("security_version", c.security_version),
            ("signer_id", c.signer_id)) if v is not None}

    return {
        "implementation_id": state.implementation_id,
        "hardware_model": state.hardware_model,
        "hardware_version": state.hardware_version,
        "security_lifecycle": f"{state.security_lifecycle:#06x}",
        "secure_boot": state.secure_boot,
        "debug": state.debug,
        "boot_count": state.boot_count,
        "provisioning_epoch": state.provisioning_epoch,
        "owner_id": state.owner_id,
        "owner_epoch": state.owner_epoch,
        "firmware": [comp(c) for c in state.firmware],
        "components": [comp(c) for c in state.components],
    }


def reference_values_doc(state: Any, *, source: str | None = None) -> dict[str, Any]:
    """A devattest Reference Values document accepting exactly ``state``'s measurements (what
    a release build publishes for its golden images)."""
    comps = []
    for c in (*state.firmware, *state.components):
        entry: dict[str, Any] = {"measurement_type": c.measurement_type,
                                 "measurement_values": [c.measurement_value.hex()]}
        if c.signer_id is not None:
            entry["signer_ids"] = [c.signer_id.hex()]
        if c.version is not None:
            entry["min_version"] = c.version
        comps.append(entry)
    cls: dict[str, Any] = {"implementation_id": state.implementation_id.hex(),
                           "components": comps}
    if source:
        cls["source"] = source
    return {"format": "devattest.reference-values/v1", "classes": [cls]}


@app.command("measure")
@handle_errors
def measure_command(
    description: Annotated[Path, typer.Argument(help="Device description (YAML).")],
    reference_values: Annotated[Path | None, typer.Option(
        "--reference-values", help="Also write these measurements as devattest Reference "
        "Values (what a release build publishes for its golden images).")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Source label for the Reference Values.")] = None,
) -> None:
    """Measure the firmware images a device description names and print the claims."""
    state = load_device_state(description)
    console.print_json(dumps(_state_doc(state)))
    if reference_values is not None:
        reference_values.write_text(yaml.safe_dump(
            reference_values_doc(state, source=source), sort_keys=False))
        console.print(f"wrote Reference Values to {reference_values}")


@app.command("attest")
@handle_errors
def attest_command(
    description: Annotated[Path, typer.Argument(help="Device description (YAML).")],
    se: Annotated[Path, typer.Option("--se", help="Secure-element config (YAML).")],
    nonce: Annotated[str, typer.Option("--nonce", help="The Verifier's challenge, hex "
                                       "(32, 48 or 64 bytes).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the PSA token.")],
    chain: Annotated[Path | None, typer.Option(
        "--chain", help="The attestation key's certificate chain (PEM, leaf first), sent as "
        "COSE x5chain.")] = None,
) -> None:
    """Measure the device and sign a PSA attestation token inside the secure element."""
    from devattest.attester.evidence import attest_psa, instance_id_of

    state = load_device_state(description)
    x5chain = load_chain_der(chain) if chain is not None else ()
    challenge = parse_hex(nonce, what="--nonce")
    with opened_secure_element(se, create=False) as element:
        if x5chain:
            from cryptography import x509

            leaf = x509.load_der_x509_certificate(x5chain[0])
            if leaf.public_key() != element.public_key():
                raise ConfigurationError(f"{chain}: its leaf certifies another key than the "
                                         "secure element's")
        token = attest_psa(state, element, nonce=challenge, x5chain=x5chain)
        iid = instance_id_of(element)
    out.write_bytes(token)
    console.print(f"wrote {len(token)}-byte PSA token to {out} (instance ID {iid.hex()}, "
                  f"{len(x5chain)} certificate(s) in x5chain)")
