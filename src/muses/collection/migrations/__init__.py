"""Alembic migrations of the collection store (SQLite and PostgreSQL); see muses.collection.schema."""
