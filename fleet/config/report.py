"""[report]: what the summaries call plastic and when a silent bin counts as offline."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from ecolens.fleet.attention import Attention
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
    # "Needs attention": the dashboard, the bin view and the report's status judge by these.
    slow_inference_ms: float = Field(
        Attention.slow_inference_ms, gt=0, description="inference p95 above this is slow (ms)"
    )
    queue_attention: int = Field(
        Attention.queue_depth, ge=1, description="a bin's offline queue this deep and rising needs attention"
    )
    uncertain_attention: float = Field(
        Attention.uncertain_share, ge=0, le=1, description="an uncertain share above this needs attention"
    )
    stats_fresh_s: int = Field(
        Attention.stats_fresh_s, ge=60, description="stats older than this are not judged (seconds)"
    )
    refresh_s: int = Field(15, ge=2, le=3600, description="how often the dashboard and label page refresh")

    def attention(self) -> Attention:
        """The thresholds as the report takes them."""
        return Attention(
            self.slow_inference_ms, self.queue_attention, self.uncertain_attention, self.stats_fresh_s
        )
