"""Integration tests use real swtpm, SoftHSM2, PostgreSQL and Mosquitto; their fixture plugins
are registered in ``tests/conftest.py`` (pytest allows ``pytest_plugins`` only at the top)."""
