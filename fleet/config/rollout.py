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
    manifest_ttl_s: float = Field(
        86400.0,
        ge=2,
        le=30 * 86400,
        description="how long a signed manifest is valid; the aggregator with key_file re-signs the "
        "current ones at half this age. A bin offline while a newer model was pushed can be handed "
        "the older one (a freeze) for at most this long",
    )
