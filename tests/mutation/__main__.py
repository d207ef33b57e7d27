"""The mutation job: apply each kept mutant of a security check alone and check that the tests
chosen for it fail.

Each mutant in ``tests/mutation/mutants.toml`` names a file, an exact snippet that must occur
in it exactly once, its replacement (the weakened check), the attack the mutant lets through
and the tests that must kill it. The runner never edits the working tree: each worker copies
``src/`` into a temporary directory once, writes one mutant into the copy, runs the selected
tests with that copy first on ``PYTHONPATH`` (checked before any mutant runs), restores the
file and drops its bytecode, then takes the next mutant. A mutant is *killed* when its tests
fail (or time out); it *survives* when they pass. Before the mutants, the union of the
selected tests runs on the unmutated code and must pass, so no kill is an artefact.

Usage::

    python -m tests.mutation                      # every mutant
    python -m tests.mutation --changed            # mutants of files changed since main
    python -m tests.mutation --changed --sample 12   # ... plus 12 more, rotating daily
    python -m tests.mutation --module verifier/core.py --jobs 2 -v
    python -m tests.mutation --list

Exit status: 0 when every selected mutant is killed, 1 when one survives, 2 on a stale list
(a snippet no longer found exactly once) or a failing baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = Path(__file__).with_name("mutants.toml")
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
               "-W", "ignore")
#: No third-party pytest plugins (hypothesis, schemathesis, playwright, xdist...): they cost
#: two seconds of start-up per mutant, and the selected tests need none of them.
_FAST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    attack: str
    tests: tuple[str, ...]

    @property
    def module(self) -> str:
        return self.file.removeprefix("src/devattest/")


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    killed: bool
    seconds: float
    detail: str


def load(path: Path = MUTANTS) -> list[Mutant]:
    data = tomllib.loads(path.read_text())
    out = []
    seen: set[str] = set()
    for m in data["mutant"]:
        mutant = Mutant(id=m["id"], file=m["file"], original=m["original"],
                        replacement=m["replacement"], attack=m["attack"],
                        tests=tuple(m["tests"]))
        if mutant.id in seen:
            raise SystemExit(f"mutants.toml: duplicate id {mutant.id}")
        seen.add(mutant.id)
        out.append(mutant)
    return out


def stale(mutants: Sequence[Mutant]) -> list[str]:
    """Mutants whose snippet is not found exactly once (the code moved on: fix the list)."""
    problems = []
    for m in mutants:
        text = (ROOT / m.file).read_text()
        n = text.count(m.original)
        if n != 1:
            problems.append(f"{m.id}: snippet found {n} times in {m.file}")
        if m.original == m.replacement:
            problems.append(f"{m.id}: the replacement equals the original")
    return problems


def changed_files(base: str) -> set[str] | None:
    """Files changed since the merge base with ``base`` (or ``origin/base``); None when git
    cannot tell (no such branch, not a repository): the caller then runs every mutant."""
    for ref in (base, f"origin/{base}"):
        found = subprocess.run(["git", "merge-base", "HEAD", ref], cwd=ROOT,
                               capture_output=True, text=True, check=False)
        if found.returncode == 0:
            diff = subprocess.run(["git", "diff", "--name-only", found.stdout.strip()],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            return set(diff.stdout.split())
    return None


def touched(mutant: Mutant, files: set[str]) -> bool:
    """Whether a change touches the mutant: its module, or a test file it selects."""
    if mutant.file in files:
        return True
    selected = [t.split("::")[0].rstrip("/") for t in mutant.tests]
    return any(f == t or f.startswith(t + "/") for f in files for t in selected)


def rotating_sample(mutants: Sequence[Mutant], n: int, *, day: int | None = None
                    ) -> list[Mutant]:
    """``n`` consecutive mutants of the list starting at a daily offset (days since the
    epoch, or ``day``): every mutant is run within ``len(mutants) / n`` days."""
    if not mutants:
        return []
    n = min(n, len(mutants))
    day = int(time.time() // 86400) if day is None else day
    start = (day * n) % len(mutants)
    return [mutants[(start + i) % len(mutants)] for i in range(n)]


class Workspace:
    """A private copy of ``src/`` that one worker mutates, one mutant at a time."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="devattest-mutant-"))
        shutil.copytree(ROOT / "src", self.dir / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        self.env = {**os.environ, **_FAST, "PYTHONPATH": str(self.dir / "src"),
                    "PYTHONDONTWRITEBYTECODE": "1"}
        self.env.pop("PYTEST_ADDOPTS", None)
        where = subprocess.run(
            [sys.executable, "-c", "import devattest; print(devattest.__file__)"],
            env=self.env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        if not where.strip().startswith(str(self.dir)):
            raise SystemExit(f"the mutant copy is not imported first (got {where.strip()})")

    def run(self, mutant: Mutant, timeout: float) -> Outcome:
        target = self.dir / mutant.file
        original = target.read_text()
        start = time.monotonic()
        try:
            target.write_text(original.replace(mutant.original, mutant.replacement, 1))
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pytest", *PYTEST_ARGS, *mutant.tests],
                    env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                    check=False)
            except subprocess.TimeoutExpired:
                return Outcome(mutant, True, time.monotonic() - start, "timed out")
        finally:
            target.write_text(original)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("FAILED") or ln.startswith("ERROR")),
                      lines[-1] if lines else proc.stderr.strip()[-200:])
        # pytest exit 1: tests failed (killed). 0: all passed (survived). Anything else
        # (collection error, usage error) is a kill only if it is the mutant's doing: an
        # import of the mutated module that fails is a kill too.
        return Outcome(mutant, proc.returncode != 0, time.monotonic() - start, detail)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def baseline(mutants: Sequence[Mutant], timeout: float) -> tuple[bool, str]:
    tests = sorted({t for m in mutants for t in m.tests})
    proc = subprocess.run([sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests], cwd=ROOT,
                          env={**os.environ, **_FAST},
                          capture_output=True, text=True, timeout=timeout * 4, check=False)
    tail = "\n".join(proc.stdout.splitlines()[-15:])
    return proc.returncode == 0, tail


def run_all(mutants: Sequence[Mutant], jobs: int, timeout: float,
            verbose: bool) -> Iterator[Outcome]:
    pool: Queue[Workspace] = Queue()
    spaces = [Workspace() for _ in range(max(1, min(jobs, len(mutants))))]
    for s in spaces:
        pool.put(s)

    def one(m: Mutant) -> Outcome:
        space = pool.get()
        try:
            return space.run(m, timeout)
        finally:
            pool.put(space)

    try:
        with ThreadPoolExecutor(max_workers=len(spaces)) as ex:
            for outcome in ex.map(one, mutants):
                if verbose or not outcome.killed:
                    mark = "killed  " if outcome.killed else "SURVIVED"
                    print(f"  {mark} {outcome.mutant.id:<44} {outcome.seconds:5.1f}s  "
                          f"{outcome.detail[:90]}", flush=True)
                yield outcome
    finally:
        for s in spaces:
            s.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--changed", action="store_true",
                    help="only mutants whose module or selected tests changed since the merge "
                         "base with --base")
    ap.add_argument("--base", default="main", help="branch for --changed (default main)")
    ap.add_argument("--module", action="append", default=[],
                    help="only mutants whose file ends with this (repeatable)")
    ap.add_argument("--id", action="append", default=[], help="only this mutant (repeatable)")
    ap.add_argument("--sample", type=int, default=0,
                    help="with --changed: add N more mutants, a slice that rotates daily so "
                         "that successive runs cover the whole list")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MUTANT_JOBS", "2")))
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds per mutant's tests (a timeout counts as killed)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the unmutated run of the selected tests")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every mutant")
    args = ap.parse_args(argv)

    mutants = load()
    problems = stale(mutants)
    if problems:
        print("mutants.toml is stale:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    files = changed_files(args.base) if args.changed else None
    if args.changed and files is None:
        print(f"mutation: no merge base with {args.base}: running every mutant")
    elif args.changed and files is not None:
        chosen = [m for m in mutants if touched(m, files)]
        if args.sample > 0:
            rest = [m for m in mutants if not touched(m, files)]
            chosen += rotating_sample(rest, args.sample)
        mutants = chosen
    if args.module:
        mutants = [m for m in mutants if any(m.file.endswith(x) for x in args.module)]
    if args.id:
        mutants = [m for m in mutants if m.id in set(args.id)]
    if args.list:
        for m in mutants:
            print(f"{m.id:<44} {m.module:<28} {m.attack}")
        return 0
    if not mutants:
        print("mutation: no mutants selected")
        return 0

    start = time.monotonic()
    if not args.no_baseline:
        ok, tail = baseline(mutants, args.timeout)
        if not ok:
            print("mutation: the selected tests fail on the unmutated code:\n" + tail,
                  file=sys.stderr)
            return 2
    print(f"mutation: {len(mutants)} mutants, {args.jobs} jobs", flush=True)
    by_module: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in run_all(mutants, args.jobs, args.timeout, args.verbose):
        by_module[outcome.mutant.module].append(outcome)
    total = killed = 0
    print(f"\n{'module':<32} {'killed':>7} {'total':>6}  score")
    for module in sorted(by_module):
        outs = by_module[module]
        k = sum(o.killed for o in outs)
        total += len(outs)
        killed += k
        print(f"{module:<32} {k:>7} {len(outs):>6}  {100 * k / len(outs):5.1f} %")
    print(f"{'all':<32} {killed:>7} {total:>6}  {100 * killed / total:5.1f} %"
          f"   ({time.monotonic() - start:.0f} s)")
    survivors = [o.mutant.id for outs in by_module.values() for o in outs if not o.killed]
    if survivors:
        print("survived: " + ", ".join(survivors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
