"""[samples]: items sent to the fleet server for labelling (field adaptation)."""

from __future__ import annotations

from ecolens.core.config import Section
from pydantic import Field


class SamplesSection(Section):
    """Off by default: photos leave the bin only when the operator asks for them."""

    enabled: bool = Field(False, description="send samples on <prefix>/<device_id>/sample")
    random_share: float = Field(
        0.05, ge=0, le=1, description="share of confident items sent too (every uncertain one is sent)"
    )
    max_bytes_per_hour: int = Field(
        2_000_000,
        ge=10_000,
        description="budget of sample payload bytes per hour, so samples never crowd out results",
    )
    max_side: int = Field(320, ge=32, le=4096, description="longest side of the sent crop, pixels")
    quality: int = Field(85, ge=10, le=100, description="JPEG quality of the sent crop")
