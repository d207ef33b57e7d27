"""Run the fuzz targets for a bounded time each, from the kept corpus.

Usage::

    python -m fuzz                          # every target, 10 s each, 2 at a time
    python -m fuzz --seconds 60 psa eat     # longer, some targets
    python -m fuzz --replay                 # only replay the corpus (no atheris needed)
    python -m fuzz --asan                   # replay every corpus through an AddressSanitizer
                                            # build of the C scanner (cose/_cbor_scan.c)

First the regression inputs (``fuzz/regressions/<target>/``: inputs that once broke a
target's contract) are replayed. Then each target is a libFuzzer run under atheris
(``fuzz/_atheris.py``) whose first corpus directory is a temporary one (new inputs are not
written into the repository) and whose seeds are ``fuzz/corpus/<target>/``. A finding (an
exception other than the project's typed errors, a "verifier malfunction" result, a result
that cannot be signed) fails the run: the input is kept in ``--artifacts`` (a temporary
directory by default) and its traceback printed. Prints the executions per target. Exit
status 1 on a finding, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
CORPUS = ROOT / "corpus"
REGRESSIONS = ROOT / "regressions"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)")


@dataclass(frozen=True)
class Run:
    target: str
    executions: int
    seconds: float
    ok: bool
    detail: str


def _executions(output: str) -> int:
    done = _DONE.findall(output)
    if done:
        return int(done[-1][0])
    stats = _STAT.findall(output)
    return int(stats[-1]) if stats else 0


def fuzz_one(target: str, seconds: int, artifacts: Path, max_len: int) -> Run:
    work = Path(tempfile.mkdtemp(prefix=f"devattest-fuzz-{target}-"))
    prefix = artifacts / f"{target}-"
    cmd = [sys.executable, "-m", "fuzz._atheris", target, str(work), str(CORPUS / target),
           f"-max_total_time={seconds}", f"-max_len={max_len}", "-timeout=20",
           "-rss_limit_mb=2048", f"-artifact_prefix={prefix}", "-print_final_stats=1"]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=seconds * 4 + 120, check=False)
    except subprocess.TimeoutExpired:
        return Run(target, 0, time.monotonic() - start, False, "the fuzzer itself hung")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = proc.stdout + proc.stderr
    runs = _executions(out)
    if proc.returncode != 0:
        lines = out.splitlines()
        start_at = next((i for i, ln in enumerate(lines) if "Uncaught Python exception" in ln
                         or "ERROR: libFuzzer" in ln or "ERROR: AddressSanitizer" in ln), 0)
        detail = "\n".join(lines[start_at:start_at + 40])
        return Run(target, runs, time.monotonic() - start, False, detail)
    return Run(target, runs, time.monotonic() - start, runs > 0,
               "" if runs > 0 else "no executions recorded:\n" + out[-2000:])


def replay(targets: Sequence[str], roots: Sequence[Path] = (CORPUS, REGRESSIONS)
           ) -> list[Run]:
    """Every kept input (seeds and regressions) through its target, in this process."""
    out = []
    for name in targets:
        start = time.monotonic()
        files = sorted(f for root in roots for f in (root / name).glob("*"))
        bad = []
        for f in files:
            try:
                TARGETS[name](f.read_bytes())
            except Exception as exc:  # a finding: report, go on with the corpus
                bad.append(f"{f.name}: {type(exc).__name__}: {str(exc)[:300]}")
        out.append(Run(name, len(files), time.monotonic() - start, not bad, "\n".join(bad)))
    return out


def build_asan_scanner(into: Path) -> Path:
    """Build ``_cbor_scan.c`` with AddressSanitizer into ``into`` (a package directory that
    shadows the installed extension when first on ``sys.path``)."""
    src = REPO / "src" / "devattest" / "cose" / "_cbor_scan.c"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    out = into / f"_cbor_scan{suffix}"
    cmd = ["gcc", "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address,undefined",
           "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined", f"-I{include}",
           str(src), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


_ASAN_REPLAY = """
import sys
from pathlib import Path
import importlib.util
spec = importlib.util.spec_from_file_location("_cbor_scan", sys.argv[1])
scan_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scan_mod)
assert scan_mod.SCAN_ABI == 2, f"the replay speaks SCAN_ABI 2, the scanner {scan_mod.SCAN_ABI}"
n = 0
for d in sys.argv[2:]:
    for f in sorted(Path(d).glob("*")):
        data = f.read_bytes()
        # scan(data, max_depth, max_container_items, max_bignum_bits): SCAN_ABI 2.
        for depth, items, bits in ((16, 4096, 64), (4, 8, 0), (1, 1, 8), (64, 1 << 20, 4096)):
            scan_mod.scan(data, depth, items, bits)
            for cut in (1, 2, len(data) // 2):
                scan_mod.scan(data[:-cut] if cut < len(data) else b"", depth, items, bits)
        n += 1
print(f"replayed {n} inputs through the ASan scanner")
"""


def asan_replay() -> tuple[bool, str]:
    """Replay every corpus file (and truncations) through an ASan build of the scanner."""
    if not (REPO / "src" / "devattest" / "cose" / "_cbor_scan.c").exists():
        return True, "no C scanner in the tree: nothing to replay"
    tmp = Path(tempfile.mkdtemp(prefix="devattest-asan-"))
    try:
        try:
            lib = build_asan_scanner(tmp)
        except (OSError, subprocess.CalledProcessError) as exc:
            err = getattr(exc, "stderr", "") or str(exc)
            return False, f"cannot build the ASan scanner: {err[-800:]}"
        libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        libubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        env = {**os.environ, "LD_PRELOAD": f"{libasan} {libubsan}",
               "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        dirs = [str(d) for root in (CORPUS, REGRESSIONS) if root.is_dir()
                for d in sorted(root.iterdir()) if d.is_dir()]
        proc = subprocess.run([sys.executable, "-c", _ASAN_REPLAY, str(lib), *dirs],
                              env=env, capture_output=True, text=True, check=False,
                              timeout=600)
        text = (proc.stdout + proc.stderr).strip()
        return proc.returncode == 0, text[-3000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help=f"targets (default all: {', '.join(TARGETS)})")
    ap.add_argument("--seconds", type=int,
                    default=int(os.environ.get("DEVATTEST_FUZZ_SECONDS", "10")))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=8192)
    ap.add_argument("--artifacts", type=Path, default=None,
                    help="where findings are written (default: a temporary directory)")
    ap.add_argument("--replay", action="store_true", help="only replay the corpus")
    ap.add_argument("--asan", action="store_true",
                    help="only replay the corpus through an ASan build of the C scanner")
    args = ap.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets: {unknown}")

    if args.asan:
        ok, text = asan_replay()
        print(text)
        print("asan: " + ("clean" if ok else "FAILED"))
        return 0 if ok else 1
    regressions: list[Run] = []
    if args.replay:
        runs = replay(targets)
    else:
        # The inputs that once broke a contract are replayed first, every time.
        regressions = [r for r in replay(targets, (REGRESSIONS,)) if r.executions]
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("fuzz: atheris is not installed (pip install atheris); replaying the "
                  "corpus only", file=sys.stderr)
            runs = replay(targets)
        else:
            artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="devattest-findings-"))
            artifacts.mkdir(parents=True, exist_ok=True)
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
                runs = list(ex.map(lambda t: fuzz_one(t, args.seconds, artifacts,
                                                      args.max_len), targets))
            if any(not r.ok for r in runs):
                print(f"fuzz: findings are in {artifacts}", file=sys.stderr)
    what = "inputs replayed" if args.replay else "executions"
    print(f"\n{'target':<16} {what:>16} {'seconds':>8}  verdict")
    for r in runs:
        print(f"{r.target:<16} {r.executions:>16} {r.seconds:8.1f}  "
              f"{'ok' if r.ok else 'FINDING'}")
    if regressions:
        print(f"\n{'regressions':<16} {'inputs replayed':>16}")
        for r in regressions:
            print(f"{r.target:<16} {r.executions:>16} {'':8}  "
                  f"{'ok' if r.ok else 'FINDING'}")
    failed = [r for r in (*regressions, *runs) if not r.ok]
    for r in failed:
        print(f"\n== {r.target}\n{r.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
