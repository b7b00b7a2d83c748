"""[audit]: a small JPEG per classified item, for audits and relabelling."""

from __future__ import annotations

from pathlib import Path

from ecolens.core.config import Section
from pydantic import Field


class AuditSection(Section):
    """Off by default. Files are ``<dir>/<date>/<event_id>_<label>.jpg``; the oldest files are
    deleted when the folder grows past ``max_mb``."""

    enabled: bool = Field(False, description="save one JPEG per published item")
    dir: Path | None = Field(None, description="default: <state dir>/audit")
    max_mb: float = Field(200.0, gt=0, description="disk budget; oldest images deleted past it")
    max_side: int = Field(320, ge=32, le=4096, description="longest side of the saved image")
    quality: int = Field(85, ge=10, le=100, description="JPEG quality")
