"""[rollout]: accept signed model updates from the fleet server."""

from __future__ import annotations

from pathlib import Path

from ecolens.core.config import Section
from pydantic import Field


class RolloutSection(Section):
    """Off unless a public key is given: a bin never installs a model nobody signed."""

    public_key: str | None = Field(
        None,
        description="base64 Ed25519 public key from `ecolens rollout keygen`; unset = rollout off",
    )
    dir: Path | None = Field(
        None, description="where received models are kept; default: $STATE_DIRECTORY/models"
    )
    max_model_mb: float = Field(64.0, gt=0, le=64, description="larger announced models are refused")
    max_clock_skew_s: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="a manifest is refused once it expired this long ago: how far this bin's clock "
        "(NTP) may lag the fleet server's",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.public_key)
