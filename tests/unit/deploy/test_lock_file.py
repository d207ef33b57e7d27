"""requirements.lock (scripts/lock) stays in step with pyproject.toml: every runtime
dependency is pinned, at a version pyproject allows, with hashes; no development tool is in it.
A stale lock would make the image install what pyproject no longer allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins(text: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) of each pinned requirement of a hashed lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            assert current not in pins, f"{current} pinned twice"
            pins[current] = (Version(m.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"unexpected lock line: {line!r}")
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_stale_lock_cannot_pin_a_dependency_pyproject_no_longer_allows() -> None:
    pins = _pins((ROOT / "requirements.lock").read_text())
    for req in _runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run scripts/lock"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {req.name}=={version}, outside pyproject's "
            f"{req.specifier}: run scripts/lock")


def test_every_locked_package_carries_hashes_so_a_swapped_artifact_is_refused() -> None:
    pins = _pins((ROOT / "requirements.lock").read_text())
    assert len(pins) >= len(_runtime_requirements())
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"pinned without --hash: {unhashed}"


def test_lock_holds_no_development_or_hardware_extra() -> None:
    pins = _pins((ROOT / "requirements.lock").read_text())
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    runtime = {canonicalize_name(r.name) for r in _runtime_requirements()}
    for extra in ("dev", "hardware"):
        for spec in optional[extra]:
            name = canonicalize_name(Requirement(spec).name)
            if name not in runtime:
                assert name not in pins, f"{name} ({extra} extra) is in requirements.lock"


def test_lock_parser_sees_a_version_outside_the_bound() -> None:
    # the checks above are only as good as this parser: an out-of-range pin is seen
    pins = _pins("cbor2==5.5.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert not Requirement("cbor2>=5.6").specifier.contains(pins["cbor2"][0])
    assert pins["cbor2"][1] == 1
