"""[report]: what the summaries call plastic and when a silent bin counts as offline."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from pydantic import Field


class ReportSection(Section):
    """Defaults of `ecolens report`, the HTTP API and the dashboard."""

    plastic_label: str = Field("plastic", description="the label counted as plastic")
    stale_after_s: int = Field(
        3600,
        ge=0,
        description="a bin that says online but sent no result for this long is listed as stale (0 = never)",
    )
    window: str = Field("24h", description="default time window: 90m, 24h, 7d, or ISO time")
    bucket: Literal["minute", "hour", "day"] = Field(
        "hour", description="default bucket for time series: minute, hour or day"
    )
