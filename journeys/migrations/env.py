"""Alembic's environment for the app store.

`journeys.migrations.upgrade` runs it on a connection it has opened and locked (passed in
`config.attributes["connection"]`); run by hand, e.g. to autogenerate a revision (see
docs/operations.md), it opens the configured `JOURNEYS_DATABASE_URL`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import journeys.store  # noqa: F401  (registers the tables in SQLModel.metadata)
from journeys.settings import load_settings


def run(connection: Connection) -> None:
    """Run the pending migrations on `connection`."""
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite alters most things only by copying the table: revisions use batch mode.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with create_engine(load_settings().database_url).begin() as opened:
        run(opened)
