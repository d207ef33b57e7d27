"""Test-support helpers (private simulators, fixtures)."""
