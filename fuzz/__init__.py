"""Fuzzing that stays on: atheris targets for every parser of untrusted bytes (issue 14).

``python -m fuzz`` runs each target for a bounded time from the kept corpus
(``fuzz/corpus/<target>/``); ``python -m fuzz.seeds`` rebuilds the seeds from the public
vectors and the builders. See ``fuzz/targets.py`` for what each target asserts.
"""
