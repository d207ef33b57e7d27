"""Alembic environment: always run programmatically with a live connection.

:func:`devattest.store.migrate` passes the connection in ``config.attributes["connection"]``;
there is no ``alembic.ini`` and no URL here.
"""

from __future__ import annotations

from alembic import context

from devattest.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - misuse
    raise RuntimeError("run migrations through devattest.store.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
