"""Alembic's entry point. muses always hands it an open connection (muses.collection.schema),
so the store's URL, and any password in it, never sits in a config file."""
from alembic import context

from muses.collection.store import Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode copies the table instead
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
