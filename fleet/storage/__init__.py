"""Result storage: one code path for SQLite and PostgreSQL, chosen by a database URL."""

from ecolens.fleet.storage.database import Database, open_database, parse_database_url
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult

__all__ = [
    "Database",
    "Rejected",
    "ResultStore",
    "StatusUpdate",
    "StoredResult",
    "open_database",
    "parse_database_url",
]
