"""The container stack of deploy/compose.yaml, built and run with podman from Debian: base
images by mmdebstrap (no registry), the image by the Dockerfile, then PostgreSQL, Mosquitto,
the one-shot migration, two Verifier replicas and the MQTT bridge. One attestation goes
through HTTP (challenge from one replica, Evidence to the other) and one through MQTT (event,
challenge, Evidence, result), and the stack is torn down.

Opt-in (several minutes the first time: mmdebstrap and the image build):
    DEVATTEST_CONTAINER_TESTS=1 .venv/bin/pytest -q tests/integration/deploy
It needs podman, runc or crun, mmdebstrap and podman-compose (deploy/test-stack-tools
installs them); docs/deploy.md lists what this host needed.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devattest.ear import public_key_from_jwk, verify_ear_jwt
from devattest.model import AttestationResult
from devattest.transport.mqtt import b64d, event_message, evidence_message, loads, topic
from tests.integration.deploy._podman import (
    BASE_IMAGES,
    DEPLOY,
    build_image,
    free_port,
    podman_env,
    run,
    tool,
)
from tests.integration.service._sim import (
    MEDIA_TYPE,
    PsaDevice,
    reference_values_json,
    trust_anchors_json,
)

pytestmark = [
    pytest.mark.integration, pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DEVATTEST_CONTAINER_TESTS") != "1",
                       reason="opt-in: set DEVATTEST_CONTAINER_TESTS=1 (builds images)"),
    pytest.mark.timeout(1800),
]

IMAGE = "localhost/devattest:stack-test"
WAIT = 180.0


@dataclass
class Stack:
    env: dict[str, str]
    project: str
    http: tuple[str, str]
    mqtt_port: int
    secrets: Path
    podman: str

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def exec(self, service: str, *argv: str) -> str:
        return run([self.podman, "exec", self.container(service), *argv], self.env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    podman = tool("podman")
    compose = tool("podman-compose")
    tmp = tmp_path_factory.mktemp("stack")
    env = podman_env(tmp, podman)
    # 1. base images from Debian's packages; 2. the image, offline
    build_image(podman, env, IMAGE)
    # 3. secrets, and an MQTT account for the test device
    sec = tmp / "secrets"
    run([str(DEPLOY / "make-secrets"), str(sec)], env)
    project = f"dtest{secrets.token_hex(3)}"
    ports = (free_port(), free_port(), free_port())
    env |= {"DEVATTEST_IMAGE": IMAGE, "DEVATTEST_SECRETS_DIR": str(sec),
            "DEVATTEST_HTTP_PORT_1": f"127.0.0.1:{ports[0]}",
            "DEVATTEST_HTTP_PORT_2": f"127.0.0.1:{ports[1]}",
            "DEVATTEST_MQTT_PORT": f"127.0.0.1:{ports[2]}"}
    st = Stack(env, project, (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"),
               ports[2], sec, podman)
    base = [compose, "-p", project, "-f", str(DEPLOY / "compose.yaml")]
    try:
        run([*base, "up", "-d"], env, timeout=600, cwd=DEPLOY)
        yield st
    finally:
        for service in ("migrate", "verifier-1", "verifier-2", "bridge", "mqtt"):
            logs = subprocess.run([podman, "logs", "--tail", "30", st.container(service)],
                                  env=env, capture_output=True, text=True, check=False)
            print(f"--- {service}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        subprocess.run([*base, "down", "-v", "-t", "5"], env=env, cwd=DEPLOY,
                       capture_output=True, timeout=300, check=False)
        subprocess.run([podman, "rmi", IMAGE], env=env, capture_output=True, check=False)


def _wait_ready(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/readyz", timeout=5)
            if r.status_code == 200:
                return dict(r.json())
            last = f"{r.status_code} {r.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(1)
    raise AssertionError(f"{url}/readyz never ready: {last}")


def _provision(stack: Stack, admin: str, device: PsaDevice) -> None:
    auth = {"Authorization": f"Bearer {admin}"}
    r = httpx.post(f"{stack.http[0]}/v1/devices", json={
        "id": device.device_id, "instance_id": device.instance_id.hex()}, headers=auth)
    assert r.status_code == 201, r.text
    for kind, body in (("trust-anchors", trust_anchors_json([device])),
                       ("reference-values", reference_values_json())):
        r = httpx.post(f"{stack.http[1]}/v1/{kind}", params={"name": device.device_id},
                       content=body, headers=auth | {"Content-Type": "application/json"})
        assert r.status_code == 201, r.text


def _jwks(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/.well-known/devattest/keys", timeout=10).json())


def _verify_ear(ear: str, url: str) -> AttestationResult:
    """The EAR, verified as a Relying Party does: with the key a replica publishes."""
    (jwk,) = _jwks(url)["keys"]
    return verify_ear_jwt(ear, public_key_from_jwk(jwk), now=int(time.time()))


def test_stack_comes_up_migrated_with_both_replicas_ready_and_healthy(stack: Stack) -> None:
    schemas = {_wait_ready(url)["schema"] for url in stack.http}
    assert len(schemas) == 1
    # the image's HEALTHCHECK (podman runs it on demand without systemd timers)
    run([stack.podman, "healthcheck", "run", stack.container("verifier-1")], stack.env)
    # both replicas publish the one shared EAR key
    assert _jwks(stack.http[0]) == _jwks(stack.http[1])
    # nothing runs as root in the devattest containers
    assert stack.exec("verifier-2", "id", "-u").strip() == "10001"


def test_http_attestation_across_replicas_is_affirmed_and_signed(stack: Stack) -> None:
    for url in stack.http:
        _wait_ready(url)
    admin = stack.exec("verifier-1", "devattest", "admin", "create-token",
                       "--role", "admin").strip().splitlines()[-1]
    device = PsaDevice(f"http-{secrets.token_hex(4)}")
    _provision(stack, admin, device)
    auth = {"Authorization": f"Bearer {admin}"}
    ch = httpx.post(f"{stack.http[0]}/v1/challenges", json={"device_id": device.device_id},
                    headers=auth, timeout=30)
    assert ch.status_code == 201, ch.text
    nonce = base64.urlsafe_b64decode(ch.json()["nonce"] + "==")
    r = httpx.post(f"{stack.http[1]}/v1/challenges/{ch.json()['id']}/evidence",
                   content=device.token(nonce), headers=auth | {"Content-Type": MEDIA_TYPE},
                   timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    # signed by replica 2, verified with the key replica 1 publishes
    result = _verify_ear(body["ear"], stack.http[0])
    assert result.status.value == "affirming", json.dumps(body["result"], indent=1)


def _add_mqtt_account(stack: Stack, user: str, password: str) -> None:
    passwd = stack.secrets / "mosquitto_passwd"
    run([stack.podman, "run", "--rm", "-v", f"{stack.secrets}:/s:z",
          BASE_IMAGES["services"],
          "mosquitto_passwd", "-b", "/s/mosquitto_passwd", user, password], stack.env)
    passwd.chmod(0o644)
    run([stack.podman, "restart", stack.container("mqtt")], stack.env)


def test_mqtt_attestation_through_the_bridge_is_affirmed(stack: Stack) -> None:
    for url in stack.http:
        _wait_ready(url)
    admin = stack.exec("verifier-1", "devattest", "admin", "create-token",
                       "--role", "admin").strip().splitlines()[-1]
    device = PsaDevice(f"mqtt-{secrets.token_hex(4)}")
    _provision(stack, admin, device)
    password = secrets.token_hex(16)
    _add_mqtt_account(stack, device.device_id, password)

    inbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    subscribed = queue.Queue[bool]()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device.device_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(device.device_id, password)
    client.on_connect = lambda c, *_: c.subscribe(
        [(topic(device.device_id, "challenge"), 1), (topic(device.device_id, "result"), 1)])
    client.on_subscribe = lambda *_: subscribed.put(True)
    client.on_message = lambda _c, _u, m: inbox.put((m.topic, loads(bytes(m.payload))))
    deadline = time.monotonic() + WAIT
    while True:  # the broker was just restarted
        try:
            client.connect("127.0.0.1", stack.mqtt_port)
            break
        except OSError:
            assert time.monotonic() < deadline, "broker never came back"
            time.sleep(1)
    client.loop_start()
    try:
        assert subscribed.get(timeout=60)
        # the bridge reconnects after the broker restart; repeat the event until answered,
        # as the device agent does
        challenge = None
        while challenge is None:
            assert time.monotonic() < deadline, "no challenge for the event"
            client.publish(topic(device.device_id, "events"),
                           event_message("firmware_update", event_id="e1",
                                         details={"firmware_version": "1.1"}), qos=1)
            try:
                name, challenge = inbox.get(timeout=5)
                assert name == topic(device.device_id, "challenge"), name
            except queue.Empty:
                continue
        nonce = b64d(challenge["nonce"], what="nonce")
        client.publish(topic(device.device_id, "evidence"),
                       evidence_message(challenge["challenge_id"], device.token(nonce),
                                        MEDIA_TYPE), qos=1)
        while True:
            name, result = inbox.get(timeout=WAIT)
            if name == topic(device.device_id, "result"):
                break
    finally:
        client.loop_stop()
        client.disconnect()
    assert result["challenge_id"] == challenge["challenge_id"]
    assert result["status"] == "affirming", result
    assert _verify_ear(result["ear"], stack.http[1]).status.value == "affirming"
