"""Alembic migrations for the devattest store (run with :func:`devattest.store.migrate`)."""
