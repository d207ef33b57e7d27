"""Helpers of the container tests: podman with this host's quirks, Debian base images made by
mmdebstrap, and the devattest image built offline."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BASE_IMAGES = {"runtime": "localhost/devattest-base-runtime:bookworm",
               "build": "localhost/devattest-base-build:bookworm",
               "services": "localhost/devattest-services:bookworm"}


def tool(name: str) -> str:
    """The path of a tool, from PATH or .cache/deploy-tools (deploy/test-stack-tools)."""
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".cache/deploy-tools/bin"))
    if found is None:
        pytest.skip(f"{name} is not installed (deploy/test-stack-tools installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(argv: list[str], env: dict[str, str], timeout: float = 1200,
        cwd: Path = ROOT) -> str:
    """Run a command; its stdout, or an assertion error with the end of its output."""
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
        f"{result.stderr[-4000:]}")
    return result.stdout


def podman_env(tmp: Path, podman: str) -> dict[str, str]:
    """The environment for podman with a configuration for this host's quirks, in the test's
    own directory (the host's is left alone): crun 1.8 refuses a cgroup v1/v2 hybrid with a
    controller on v2, and without CAP_SYS_RESOURCE podman's default rlimits for root
    (nofile 1048576) cannot be set (docs/deploy.md)."""
    conf = tmp / "containers.conf"
    lines = ["[containers]", 'default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]']
    if shutil.which("runc"):
        lines += ["[engine]", 'runtime = "runc"']
    conf.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    run([podman, "info"], env, timeout=120)
    return env


def image_exists(podman: str, env: dict[str, str], image: str) -> bool:
    return subprocess.run([podman, "image", "exists", image], env=env,
                          check=False).returncode == 0


def ensure_base_images(podman: str, env: dict[str, str]) -> None:
    """Build the missing Debian base images (kept between runs: they change rarely)."""
    missing = [name for name, image in BASE_IMAGES.items()
               if not image_exists(podman, env, image)]
    if missing:
        tool("mmdebstrap")
        run([str(DEPLOY / "base" / "build-base-images"), "podman", *missing], env)


def build_image(podman: str, env: dict[str, str], tag: str) -> None:
    """The Dockerfile's image, offline from a hash-checked wheelhouse."""
    ensure_base_images(podman, env)
    run([str(DEPLOY / "fetch-wheels")], env, timeout=600)
    run([podman, "build", "--format", "docker", "--build-arg", "PIP_NO_INDEX=1",
         "-t", tag, "."], env)
