"""Fixtures for integration tests: private simulators started on free ports."""

pytest_plugins = [
    "tests._support.swtpm",
    "tests._support.softhsm",
    "tests._support.postgres",
]
