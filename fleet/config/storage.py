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

    keep_results_days: float = Field(
        0,
        ge=0,
        le=36500,
        description="results seen longer ago than this are deleted (0: kept forever); the count of "
        "missing results does not count deleted ones",
    )
    keep_rejected_days: float = Field(
        30, gt=0, le=36500, description="refused messages (table rejected) are deleted after this many days"
    )
    max_rejected_rows: int = Field(
        100_000,
        ge=100,
        le=100_000_000,
        description="and beyond this many rows, oldest first (each keeps up to 4 KiB of what was sent)",
    )
    keep_status_days: float = Field(
        400, gt=0, le=36500, description="status events (a bin's online/offline history) kept this long"
    )
    prune_interval_s: float = Field(
        3600, ge=1, le=86400, description="how often the aggregator applies the limits above"
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        from ecolens.fleet.storage.database import parse_database_url

        parse_database_url(value)  # raises ValueError with a clear message
        return value
