"""[homeassistant]: MQTT discovery, so each bin shows up as a device with sensors."""

from __future__ import annotations

from ecolens.core.config import Section
from pydantic import Field


class HomeAssistantSection(Section):
    """Announces the bin's entities under ``<discovery_prefix>/<component>/ecolens_<device_id>/
    <entity>/config`` (retained), and again whenever ``<discovery_prefix>/status`` says ``online``."""

    enabled: bool = Field(False, description="publish Home Assistant discovery messages")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix")
    name: str | None = Field(None, description="device name shown in Home Assistant")
    plastic_label: str = Field("plastic", description="the label counted by the plastic sensors")
