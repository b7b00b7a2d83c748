"""[rollout]: how the aggregator supervises staged rollouts (canary vs the rest of the fleet)."""

from __future__ import annotations

from pathlib import Path

from ecolens.core.config import Section
from pydantic import Field


class FleetRolloutSection(Section):
    """The aggregator's canary supervision of `ecolens rollout --canary`."""

    key_file: Path | None = Field(
        None,
        description="the rollout's private signing key (mode 600, owned by the aggregator's user): "
        "the aggregator signs rollbacks of a worse canary itself; unset = it only judges and logs",
    )
    check_interval_s: float = Field(
        5.0, gt=0, le=3600, description="how often canaries are compared with the rest of the fleet"
    )
