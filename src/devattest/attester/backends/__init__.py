"""Secure-element backends and a factory that opens one from configuration.

Backends are imported lazily so that a device without tpm2-tss or a PKCS#11 module can still
use the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from devattest.attester.backends._base import SecureElement, SecureElementProperties
from devattest.errors import ConfigurationError, SecureElementError

BACKENDS = ("tpm2", "pkcs11", "unsafe_software")

__all__ = ["BACKENDS", "SecureElement", "SecureElementProperties", "open_secure_element"]


def _params(config: Mapping[str, Any] | Any) -> tuple[str, dict[str, Any]]:
    if isinstance(config, Mapping):
        params = dict(config)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        params = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    else:
        raise ConfigurationError("secure-element config must be a mapping or a dataclass")
    backend = params.pop("backend", None)
    if not isinstance(backend, str):
        raise ConfigurationError(f"secure-element config needs a 'backend' of {BACKENDS}")
    # Nested form: {"backend": "pkcs11", "pkcs11": {...}}.
    nested = params.pop(backend, None)
    if isinstance(nested, Mapping):
        params.update(nested)
    for other in BACKENDS:
        params.pop(other, None)
    return backend, params


def _build(cls: Any, params: dict[str, Any], backend: str) -> Any:
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigurationError(f"invalid {backend} secure-element config: {exc}") from exc


def open_secure_element(config: Mapping[str, Any] | Any) -> SecureElement:
    """Open the secure element a configuration describes.

    Args:
        config: A mapping or dataclass with ``backend`` (``"tpm2"``, ``"pkcs11"`` or
            ``"unsafe_software"``) and that backend's parameters, either flat
            (``{"backend": "pkcs11", "token_label": ...}``) or nested under the backend name
            (``{"backend": "pkcs11", "pkcs11": {...}}``).

    Returns:
        The opened backend.

    Raises:
        ConfigurationError: for an unknown backend, bad parameters, or a backend whose
            library is not installed.
        SecureElementError: if the secure element refuses to open the key.
    """
    backend, params = _params(config)
    if backend == "pkcs11":
        try:
            from devattest.attester.backends.pkcs11 import Pkcs11Config, Pkcs11Key
        except ImportError as exc:
            raise ConfigurationError(f"pkcs11 backend unavailable: {exc}") from exc
        if isinstance(params.get("key_id"), str):
            params["key_id"] = bytes.fromhex(params["key_id"])
        return Pkcs11Key(_build(Pkcs11Config, params, backend))
    if backend == "unsafe_software":
        from devattest.attester.backends.unsafe_software import (
            UnsafeSoftwareConfig,
            UnsafeSoftwareKey,
        )

        return UnsafeSoftwareKey.open(_build(UnsafeSoftwareConfig, params, backend))
    if backend == "tpm2":
        return _open_tpm2(params)
    raise ConfigurationError(f"unknown secure-element backend {backend!r}; "
                             f"expected one of {BACKENDS}")


def _open_tpm2(params: dict[str, Any]) -> SecureElement:
    try:
        from devattest.attester.backends.tpm2 import Tpm2Config, Tpm2Key
    except ImportError as exc:
        raise ConfigurationError(f"tpm2 backend unavailable: {exc}") from exc
    create = bool(params.pop("create", False))
    if isinstance(params.get("persistent_handle"), str):
        params["persistent_handle"] = int(params["persistent_handle"], 0)
    for name in ("owner_auth", "parent_auth", "key_auth"):
        if isinstance(params.get(name), str):
            params[name] = params[name].encode()
    config = _build(Tpm2Config, params, "tpm2")
    try:
        return Tpm2Key.open(config)
    except SecureElementError:
        if not create:
            raise
    # Open-or-create: only when asked, and provision() refuses an occupied handle.
    return Tpm2Key.provision(config)
