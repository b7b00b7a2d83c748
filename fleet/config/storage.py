"""[storage]: where results are kept, chosen by one URL."""

from __future__ import annotations

from ecolens.core.config import Section
from pydantic import Field, field_validator

DEFAULT_DATABASE_URL = "sqlite:///ecolens-fleet.db"


class StorageSection(Section):
    """Database of the fleet: SQLite (embedded, default) or PostgreSQL (several aggregators)."""

    url: str = Field(
        DEFAULT_DATABASE_URL,
        description="sqlite:///relative.db, sqlite:////absolute/path.db or "
        "postgresql://user:password@host:5432/dbname (password better in "
        "ECOLENS_STORAGE__URL or PGPASSWORD)",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        from ecolens.fleet.storage.database import parse_database_url

        parse_database_url(value)  # raises ValueError with a clear message
        return value
