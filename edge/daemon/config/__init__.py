"""The daemon's configuration: one section per job, each in its own module.

[model] [mqtt] [source] [detect] [publish] [store] [audit] [homeassistant] [service] [rollout] [samples] [web]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecolens.core.config import ModelSection, Section, load_config
from ecolens.core.mqtt import BrokerSection
from ecolens.edge.daemon.config.audit import AuditSection
from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection
from ecolens.edge.daemon.config.rollout import RolloutSection
from ecolens.edge.daemon.config.samples import SamplesSection
from ecolens.edge.daemon.config.service import ServiceSection
from ecolens.edge.daemon.config.source import SourceSection
from ecolens.edge.daemon.config.store import StoreSection
from ecolens.edge.daemon.config.web import WebSection
from pydantic import Field

__all__ = ["DaemonConfig", "load_daemon_config"]


class DaemonConfig(Section):
    """Everything ``ecolens run`` reads from /etc/ecolens/edge.toml."""

    model: ModelSection = Field(default_factory=ModelSection)
    mqtt: BrokerSection = Field(default_factory=BrokerSection)
    source: SourceSection = Field(default_factory=SourceSection)
    detect: DetectSection = Field(default_factory=DetectSection)
    publish: PublishSection = Field(default_factory=PublishSection)
    store: StoreSection = Field(default_factory=StoreSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    homeassistant: HomeAssistantSection = Field(default_factory=HomeAssistantSection)
    service: ServiceSection = Field(default_factory=ServiceSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    samples: SamplesSection = Field(default_factory=SamplesSection)
    web: WebSection = Field(default_factory=WebSection)


def load_daemon_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> DaemonConfig:
    """File -> ECOLENS_* environment -> command-line flags."""
    return load_config(DaemonConfig, path, overrides, environ)
