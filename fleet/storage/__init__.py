"""Result storage: one code path for SQLite and PostgreSQL, chosen by a database URL."""

from collections.abc import Callable

from ecolens.fleet.storage.database import Database, connect_database, parse_database_url
from ecolens.fleet.storage.schema import migrate as apply_migrations
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult


def open_database(
    url: str, migrate: bool = True, create: bool = True, progress: Callable[[str], None] | None = None
) -> Database:
    """Connect and (by default) create or upgrade the schema, an upgrade's progress lines to
    ``progress`` (stderr by default); ``create=False`` refuses a SQLite file that does not exist yet."""
    database = connect_database(url, create)
    if migrate:
        apply_migrations(database, progress)
    return database


__all__ = [
    "Database",
    "Rejected",
    "ResultStore",
    "StatusUpdate",
    "StoredResult",
    "open_database",
    "parse_database_url",
]
