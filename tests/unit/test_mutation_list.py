"""The kept mutant list stays in step with the code (issue 14): every snippet is still found
exactly once in its file, and every test selection it names exists. A change to a security
check that breaks this must update tests/mutation/mutants.toml with it."""

from __future__ import annotations

from pathlib import Path

from tests.mutation.__main__ import ROOT, load, rotating_sample, stale, touched


def test_every_mutant_snippet_is_found_exactly_once_in_its_file() -> None:
    assert stale(load()) == []


def test_every_mutant_names_tests_that_exist() -> None:
    for m in load():
        assert m.tests, m.id
        for selection in m.tests:
            assert (ROOT / selection.split("::")[0]).exists(), (m.id, selection)


def test_the_list_covers_the_security_modules() -> None:
    modules = {m.module for m in load()}
    assert len(load()) >= 73
    for required in ("cose/_algorithms.py", "verifier/core.py", "verifier/_refvals.py",
                     "crypto/chain.py", "schemes/tpm/scheme.py", "store/batch_repo.py"):
        assert required in modules


def test_changed_selection_and_rotating_sample() -> None:
    mutants = load()
    core = next(m for m in mutants if m.file.endswith("verifier/core.py"))
    assert touched(core, {core.file})
    assert touched(core, {core.tests[0].split("::")[0] + ("/x.py" if Path(
        ROOT / core.tests[0]).is_dir() else "")})
    assert not touched(core, {"README.md"})
    days = [rotating_sample(mutants, 10, day=d) for d in range(len(mutants))]
    seen = {m.id for sample in days for m in sample}
    assert seen == {m.id for m in mutants}
    assert all(len(s) == 10 for s in days)
