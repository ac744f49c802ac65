"""Alembic environment: storage.db.upgrade hands over an open connection."""
from alembic import context

from storage.db import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
