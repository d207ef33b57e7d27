"""``DEVATTEST_<NAME>_FILE``: settings (secrets) read from files, as container secrets and
systemd credentials provide them, instead of from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from devattest.errors import ConfigurationError
from devattest.service.settings import MAX_SECRET_FILE_BYTES, Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVATTEST_DATABASE_URL", "DEVATTEST_CONFIG_FILE",
                 "DEVATTEST_SIGNING_KEY_PKCS11_PIN", "DEVATTEST_CHALLENGE_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def test_database_password_comes_from_a_secret_file_not_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://verifier:s3cret@db/devattest\n")
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(secret))
    settings = Settings()
    # the trailing newline an editor or `echo` adds is not part of the secret
    assert settings.database_url == "postgresql://verifier:s3cret@db/devattest"


def test_pkcs11_pin_and_typed_settings_come_from_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pin").write_text("1234")
    (tmp_path / "ttl").write_text("30\n")
    monkeypatch.setenv("DEVATTEST_SIGNING_KEY_PKCS11_PIN_FILE", str(tmp_path / "pin"))
    monkeypatch.setenv("DEVATTEST_CHALLENGE_TTL_SECONDS_FILE", str(tmp_path / "ttl"))
    settings = Settings()
    assert settings.signing_key_pkcs11_pin == "1234"
    assert settings.challenge_ttl_seconds == 30
    assert "1234" not in repr(settings)


def test_secret_given_both_inline_and_as_a_file_is_refused_not_silently_chosen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "url").write_text("postgresql://a@db/x")
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("DEVATTEST_DATABASE_URL", "postgresql://b@db/x")
    with pytest.raises(ConfigurationError, match="both set"):
        Settings()


def test_missing_secret_file_is_a_configuration_error_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="DEVATTEST_DATABASE_URL_FILE: cannot read"):
        Settings()


def test_device_file_as_secret_cannot_make_settings_read_without_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_SECRET_FILE_BYTES + 1))
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(big))
    with pytest.raises(ConfigurationError, match="larger than"):
        Settings()
    # /dev/zero never ends: the read stops at the bound
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", "/dev/zero")
    with pytest.raises(ConfigurationError, match="larger than"):
        Settings()


def test_binary_secret_file_is_refused_as_not_utf8(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    monkeypatch.setenv("DEVATTEST_DATABASE_URL_FILE", str(tmp_path / "bin"))
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        Settings()


def test_mqtt_bridge_refuses_a_password_given_twice(tmp_path: Path) -> None:
    from devattest.cli.main import app

    (tmp_path / "pw").write_text("pw")
    result = CliRunner().invoke(app, ["mqtt", "bridge", "--mqtt", "mqtt://127.0.0.1:1",
                                      "--password", "x", "--password-file",
                                      str(tmp_path / "pw")])
    assert result.exit_code == 3, result.output
    assert "not both" in result.output


def test_mqtt_bridge_reads_its_password_file_and_reports_an_unreadable_one(
        tmp_path: Path) -> None:
    from devattest.cli.main import app

    result = CliRunner().invoke(app, ["mqtt", "bridge", "--mqtt", "mqtt://127.0.0.1:1",
                                      "--password-file", str(tmp_path / "absent")])
    assert result.exit_code == 3, result.output
    assert "DEVATTEST_MQTT_PASSWORD_FILE: cannot read" in result.output


def test_no_file_variant_can_be_mistaken_for_another_setting() -> None:
    # DEVATTEST_<NAME>_FILE must not also be the plain variable of a setting named
    # <name>_file (signing_key_file is a path setting of its own): one meaning per variable
    names = set(Settings.model_fields)
    assert not {f"{name}_file" for name in names} & names
