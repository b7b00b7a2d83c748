"""[logging]: the JSON access log."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from pydantic import Field


class LogSection(Section):
    """One JSON line per request on stderr (journald keeps it); never image bytes."""

    access_log: bool = Field(True, description="write one JSON line per request")
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="level of the server's own log"
    )
