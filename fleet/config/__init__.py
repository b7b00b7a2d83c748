"""`ecolens aggregate` configuration: one TOML file, one small section module each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecolens.core.config import Section, load_config
from ecolens.core.http.keys import KeysSection
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config.http import HttpSection
from ecolens.fleet.config.report import ReportSection
from ecolens.fleet.config.rollout import FleetRolloutSection
from ecolens.fleet.config.storage import StorageSection
from ecolens.fleet.config.subscriber import SubscriberSection
from pydantic import Field


class FleetConfig(Section):
    """The whole aggregator configuration ([mqtt], [subscriber], [storage], [http], [auth],
    [report], [rollout])."""

    mqtt: BrokerSection = Field(default_factory=BrokerSection)
    subscriber: SubscriberSection = Field(default_factory=SubscriberSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    http: HttpSection = Field(default_factory=HttpSection)
    auth: KeysSection = Field(default_factory=KeysSection, description="who may read the dashboard")
    report: ReportSection = Field(default_factory=ReportSection)
    rollout: FleetRolloutSection = Field(
        default_factory=FleetRolloutSection, description="canary supervision of staged rollouts"
    )


def load_fleet_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FleetConfig:
    """TOML file -> ECOLENS_* environment -> command-line flags."""
    return load_config(FleetConfig, path, overrides)


__all__ = [
    "FleetConfig",
    "FleetRolloutSection",
    "HttpSection",
    "ReportSection",
    "StorageSection",
    "SubscriberSection",
    "load_fleet_config",
]
