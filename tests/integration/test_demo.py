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


# A plain install (no [hardware] extra): importing tpm2-pytss or python-pkcs11 fails, as it
# does in a venv without them (sys.modules[name] = None makes ``import name`` raise
# ImportError through the real import path of the backends).
_WITHOUT_HARDWARE_EXTRA = """
import sys
for name in ("tpm2_pytss", "pkcs11"):
    sys.modules[name] = None
from devattest.cli.main import app
app(sys.argv[1:])
"""


def test_demo_without_hardware_extra_says_what_it_skipped_instead_of_a_traceback(
        tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_HARDWARE_EXTRA, "demo",
                           "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode == 0, out
    skipped = [line for line in out.splitlines() if line.startswith("demo: skipping")]
    expected = []
    if shutil.which("swtpm"):
        expected.append("tpm2-pytss")
    if shutil.which("softhsm2-util"):
        expected.append("python-pkcs11")
    if expected:
        assert skipped == [
            "demo: skipping the TPM 2.0 and PKCS#11 secure elements: "
            f"{' and '.join(expected)} not installed (pip install 'devattest[hardware]'); "
            "using the test-only unsafe_software key"]
    assert "every adversary caught" in proc.stdout
