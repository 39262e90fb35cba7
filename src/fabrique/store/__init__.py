"""Storage: SQLAlchemy Core tables, Alembic migrations; SQLite by default, PostgreSQL by URL."""

from fabrique.store.db import Database

__all__ = ["Database"]
