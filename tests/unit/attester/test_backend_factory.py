"""open_secure_element: configuration -> backend, failing closed on anything unknown."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devattest.attester.backends import open_secure_element
from devattest.attester.backends.unsafe_software import UnsafeSoftwareKey
from devattest.errors import ConfigurationError


def test_nested_and_flat_configs_open_the_same_backend(tmp_path) -> None:
    path = str(tmp_path / "k.pem")
    flat = open_secure_element({"backend": "unsafe_software", "key_path": path})
    nested = open_secure_element({"backend": "unsafe_software",
                                  "unsafe_software": {"key_path": path},
                                  "pkcs11": {"token_label": "ignored"}})
    assert isinstance(flat, UnsafeSoftwareKey)
    assert nested.public_key() == flat.public_key()


def test_dataclass_config(tmp_path) -> None:
    @dataclass
    class Cfg:
        backend: str
        key_path: str

    se = open_secure_element(Cfg("unsafe_software", str(tmp_path / "k.pem")))
    assert se.properties.backend == "unsafe_software"


@pytest.mark.parametrize("config", [
    {},
    {"backend": "hsm9000"},
    {"backend": 3},
    {"backend": "unsafe_software", "key_path": "/tmp/x", "colour": "red"},
    {"backend": "pkcs11"},  # token_label and pin are required
])
def test_rejects_bad_config(config) -> None:
    with pytest.raises(ConfigurationError):
        open_secure_element(config)


def test_rejects_non_mapping_config() -> None:
    with pytest.raises(ConfigurationError):
        open_secure_element(["backend", "tpm2"])


def test_tpm2_config_errors_are_configuration_errors() -> None:
    pytest.importorskip("tpm2_pytss")
    with pytest.raises(ConfigurationError):
        open_secure_element({"backend": "tpm2", "no_such_option": 1})
