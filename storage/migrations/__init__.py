"""Alembic migrations of the search index, shipped in the package (see storage.db.upgrade)."""
