"""[service]: process behaviour: logging, reload, shutdown."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from pydantic import Field


class ServiceSection(Section):
    """How the daemon runs as a service."""

    log_format: Literal["json", "text"] = Field("json", description="log line format (stderr)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error (`ecolens -v run` forces debug)"
    )
    watch_interval_s: float = Field(
        5.0,
        ge=0,
        description="check the config and model files for changes this often and reload (0 = only on SIGHUP)",
    )
    drain_timeout_s: float = Field(
        10.0,
        ge=0,
        description="on stop, wait up to this long for queued results to be acknowledged",
    )
    exit_at_end: bool = Field(
        True,
        description="stop when a non-looping file or folder source ends (after draining)",
    )
