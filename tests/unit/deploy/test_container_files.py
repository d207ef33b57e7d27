"""The container deployment's files (Dockerfile, deploy/compose.yaml, Mosquitto's
configuration) say what docs/deploy.md and docs/mqtt.md promise. The stack itself is
brought up by tests/integration/deploy/test_container_stack.py (opt-in: slow)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy._commands import assert_devattest_accepts

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DEVATTEST_IMAGE = "${DEVATTEST_IMAGE:-localhost/devattest:latest}"
SECRET_WORDS = re.compile(r"PASSWORD|_URL|PIN|TOKEN|SECRET|KEY", re.IGNORECASE)


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _devattest_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _compose()["services"].items()
            if svc.get("image") == DEVATTEST_IMAGE}


def _dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into stages."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_compose_stack_has_database_broker_migration_two_verifiers_and_bridge() -> None:
    services = _compose()["services"]
    assert set(services) == {"db", "mqtt", "migrate", "verifier-1", "verifier-2", "bridge"}
    assert set(_devattest_services()) == {"migrate", "verifier-1", "verifier-2", "bridge"}
    assert services["migrate"]["command"][:2] == ["admin", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("verifier-1", "verifier-2", "bridge"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["db"] == {"condition": "service_healthy"}


def test_compose_secrets_come_from_files_never_from_the_environment() -> None:
    doc = _compose()
    defined = doc["secrets"]
    assert all(set(s) == {"file"} for s in defined.values())
    for name, svc in doc["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        for key, value in env.items():
            if key.endswith("_FILE"):
                secret = str(value).removeprefix("/run/secrets/")
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}={value}"
                assert secret in svc["secrets"] and secret in defined, f"{name}: {secret}"
            else:
                assert not SECRET_WORDS.search(key), f"{name}: secret {key} in environment"


def test_replicas_share_one_ear_signing_key_so_every_ear_verifies_with_published_keys() -> None:
    # without a shared key, each replica would generate its own: an EAR signed by one would
    # not verify against the JWK Set another one publishes
    services = _devattest_services()
    keys = {services[n]["environment"].get("DEVATTEST_SIGNING_KEY_FILE")
            for n in ("verifier-1", "verifier-2", "bridge")}
    assert keys == {"/run/secrets/ear_signing_key"}


def test_compose_containers_run_without_privileges() -> None:
    for name, svc in _devattest_services().items():
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name


@pytest.mark.parametrize("service", ["migrate", "verifier-1", "verifier-2", "bridge"])
def test_compose_commands_are_commands_devattest_has(service: str) -> None:
    assert_devattest_accepts(list(_devattest_services()[service]["command"]))


def _conf(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_broker_holds_a_fleet_wave_instead_of_silently_dropping_qos1_messages() -> None:
    # docs/mqtt.md, "Broker settings for a fleet": Mosquitto's defaults drop QoS 1 messages
    # past 1000 queued per client; the stack's broker uses the documented settings
    doc = (ROOT / "docs" / "mqtt.md").read_text()
    section = doc.split("## Broker settings for a fleet", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    documented = {line.split()[0]: line.split()[1] for line in block.splitlines()
                  if line.strip() and not line.startswith("#")}
    assert set(documented) >= {"max_queued_messages", "max_inflight_messages"}
    conf = _conf(DEPLOY / "mosquitto" / "mosquitto.conf")
    for key, value in documented.items():
        assert conf.get(key) == value, f"mosquitto.conf {key} {conf.get(key)} != {value}"


def test_broker_refuses_anonymous_clients_and_keeps_devices_on_their_own_topics() -> None:
    conf = _conf(DEPLOY / "mosquitto" / "mosquitto.conf")
    assert conf["allow_anonymous"] == "false"
    assert "password_file" in conf and "acl_file" in conf
    acl = [" ".join(line.split()) for line in
           (DEPLOY / "mosquitto" / "acl").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    for kind, access in (("events", "write"), ("evidence", "write"),
                         ("challenge", "read"), ("result", "read")):
        assert f"pattern {access} devattest/v1/%u/{kind}" in acl
    # a `topic` line before any `user` line would grant every client the whole tree
    first_user = next(i for i, line in enumerate(acl) if line.startswith("user "))
    assert not any(line.startswith("topic ") for line in acl[:first_user])
    assert acl[first_user] == "user verifier"


def test_image_is_multi_stage_and_runtime_installs_only_hash_checked_lock() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    assert " AS builder" in stages[0][0]
    runtime = " ".join(stages[-1])
    assert "--from=builder" in runtime
    install = re.search(r"pip install ([^&]*)-r (\S*requirements\.lock)", runtime)
    assert install is not None and "--require-hashes" in install.group(1)
    # the wheel itself goes in without resolving anything
    assert re.search(r"pip install [^&]*--no-deps [^&]*devattest-\*\.whl", runtime)


def test_image_runs_as_an_unprivileged_user() -> None:
    users = [i.split(None, 1)[1] for i in _dockerfile_stages()[-1]
             if i.upper().startswith("USER ")]
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")


def test_image_health_is_readiness_not_mere_liveness() -> None:
    (check,) = [i for i in _dockerfile_stages()[-1] if i.upper().startswith("HEALTHCHECK ")]
    assert "CMD" in check and "/readyz" in check


def test_image_entrypoint_and_default_command_are_devattest_serve() -> None:
    runtime = _dockerfile_stages()[-1]
    (entry,) = [i for i in runtime if i.upper().startswith("ENTRYPOINT ")]
    (cmd,) = [i for i in runtime if i.upper().startswith("CMD ")]
    assert json.loads(entry.split(None, 1)[1]) == ["devattest"]
    args = json.loads(cmd.split(None, 1)[1])
    assert args[0] == "serve" and "0.0.0.0" in args
    assert_devattest_accepts(args)


def test_build_context_leaves_out_virtualenvs_and_secrets() -> None:
    for name in (".dockerignore", ".containerignore"):
        lines = (ROOT / name).read_text().splitlines()
        assert lines[lines.index("*") if "*" in lines else -1] == "*", name
        allowed = {line[1:] for line in lines if line.startswith("!")}
        assert not any(a.startswith((".venv", "deploy/secrets", ".git")) for a in allowed)


def test_entrypoint_scripts_are_posix_shell() -> None:
    for script in (DEPLOY / "postgres" / "entrypoint.sh", DEPLOY / "mosquitto" / "entrypoint.sh"):
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n") and "set -eu" in text
        shlex.split(text, comments=True)  # balanced quotes
