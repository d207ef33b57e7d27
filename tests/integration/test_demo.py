"""The README's main job runs from the installed console script and catches every adversary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEVATTEST = Path(sys.executable).with_name("devattest")


@pytest.mark.skipif(shutil.which("swtpm") is None or shutil.which("softhsm2-util") is None,
                    reason="swtpm or SoftHSM2 is not installed (scripts/bootstrap)")
def test_demo_walkthrough_catches_every_adversary(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([str(DEVATTEST), "demo", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "TPM 2.0 (private swtpm" in out
    assert "7/7 adversaries caught, 9/9 honest devices trusted -> OK" in out
    for scenario in ("tampered firmware image", "rollback to BL 1.8.0", "debug enabled",
                     "replayed Evidence", "certificate from another manufacturer",
                     "device revoked (CRL)"):
        assert scenario in out
    table = out.split("3. adversaries")[1].split("fleet lifecycle")[0]
    assert "│   NO   │" not in table
    assert "every adversary caught" in out
