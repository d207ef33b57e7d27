"""docs/device-lifecycle.md is executable: every ```sh block runs, in order, in an empty
directory, against a private SoftHSM2 token, with the exit code (and reason codes) the page
announces.

A block whose first line is ``# expect: exit N (code, ...)`` must exit with N and print each
code; every other block must exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._support.softhsm import SoftHsm

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "device-lifecycle.md"
_FENCE = re.compile(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_EXPECT = re.compile(r"^# expect: exit (\d+)(?: \(([^)]*)\))?\s*$")
DOC_TOKEN = "device-0001"
DOC_PIN = "1234"


@dataclass(frozen=True)
class Block:
    index: int
    script: str
    exit_code: int
    codes: tuple[str, ...]


def doc_blocks(text: str) -> list[Block]:
    """The ```sh blocks of the page, with their announced outcome."""
    blocks = []
    for i, match in enumerate(_FENCE.finditer(text)):
        script = match.group(1)
        first = script.splitlines()[0] if script.strip() else ""
        expect = _EXPECT.match(first)
        exit_code, codes = 0, ()
        if expect:
            exit_code = int(expect.group(1))
            codes = tuple(c.strip() for c in (expect.group(2) or "").split(",") if c.strip())
        blocks.append(Block(i, script, exit_code, codes))
    return blocks


def test_doc_blocks_are_found_and_announce_the_rejections() -> None:
    blocks = doc_blocks(DOC.read_text())
    assert len(blocks) >= 15
    announced = [(b.exit_code, b.codes) for b in blocks if b.exit_code]
    # The previous owner's credentials after a transfer, and the revoked device.
    assert (2, ("certificate_revoked",)) in announced
    assert sum(1 for code, _ in announced if code == 2) >= 3


@pytest.fixture
def doc_env(softhsm: SoftHsm, tmp_path: Path) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    # A fresh token for the page's device, in the private installation. The commands run
    # in child processes, which load the PKCS#11 module (and see the token) afresh.
    hsm = SoftHsm(tmp_path / "softhsm")
    hsm.init_token(DOC_TOKEN, pin=DOC_PIN)
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "SOFTHSM2_CONF": str(hsm.conf), "PKCS11_MODULE": hsm.module,
            "DEVICE_PIN": DOC_PIN, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb"}


def test_device_lifecycle_doc_runs(doc_env: dict[str, str], tmp_path: Path) -> None:
    workdir = tmp_path / "walkthrough"
    workdir.mkdir()
    blocks = doc_blocks(DOC.read_text())
    for block in blocks:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.script], cwd=workdir,
                              env=doc_env, capture_output=True, text=True, timeout=300,
                              check=False)
        output = proc.stdout + proc.stderr
        where = f"block {block.index} of {DOC.name}:\n{block.script}\n--- output ---\n{output}"
        assert proc.returncode == block.exit_code, where
        for code in block.codes:
            assert code in output, where
