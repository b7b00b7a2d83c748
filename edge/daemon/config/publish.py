"""[publish]: topics, device identity and what is published when."""

from __future__ import annotations

import re
import socket

from ecolens.core.config import Section
from ecolens.core.wire import check_level, check_prefix, device_topic
from pydantic import Field, field_validator


def default_device_id() -> str:
    """The host name, made safe for a topic level."""
    name = socket.gethostname().split(".")[0] or "bin"
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


class PublishSection(Section):
    """Results go to ``<topic_prefix>/<device_id>/result``, status and stats beside them."""

    device_id: str = Field(default_factory=default_device_id, description="default: host name")
    topic_prefix: str = Field("ecolens", description="first topic level(s)")
    qos: int = Field(1, ge=1, le=2, description="QoS of results (1 or 2; the broker must ack)")
    stats_interval_s: float = Field(30.0, ge=0, description="seconds between stats messages (0 = off)")
    max_inflight: int = Field(20, ge=1, le=1000, description="results sent but not yet acknowledged, at most")

    @field_validator("device_id")
    @classmethod
    def _check_device_id(cls, value: str) -> str:
        return check_level(value)

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_prefix(value)

    def topic(self, leaf: str) -> str:
        return device_topic(self.topic_prefix, self.device_id, leaf)
