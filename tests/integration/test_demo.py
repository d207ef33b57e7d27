"""The README's main job runs from the installed console script and catches every adversary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEVATTEST = Path(sys.executable).with_name("devattest")


@pytest.mark.skipif(shutil.which("softhsm2-util") is None,
                    reason="SoftHSM2 is not installed (apt-get install softhsm2)")
def test_demo_walkthrough_catches_every_adversary(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([str(DEVATTEST), "demo", "--no-fleet", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "SoftHSM2 token via PKCS#11" in out
    for scenario in ("tampered firmware image", "rollback to BL 1.8.0", "debug enabled",
                     "replayed Evidence", "certificate from another manufacturer",
                     "device revoked (CRL)"):
        assert scenario in out
    assert "NO" not in out.split("3. adversaries")[1].split("demo:")[0].replace("NONE", "")
    assert "every adversary caught" in out
