"""The API's configuration: one TOML file (``ecolens serve --config FILE``), overridden by
``ECOLENS_<SECTION>__<KEY>`` environment variables and then by command-line flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecolens.core.config import ModelSection, Section, load_config
from ecolens.edge.api.settings.auth import AuthSection
from ecolens.edge.api.settings.limits import LimitsSection
from ecolens.edge.api.settings.logs import LogSection
from ecolens.edge.api.settings.server import ServerSection
from pydantic import Field


class ApiConfig(Section):
    """Everything ``ecolens serve`` reads."""

    model: ModelSection = Field(default_factory=ModelSection, description="the model to serve")
    server: ServerSection = Field(default_factory=ServerSection, description="listening socket")
    auth: AuthSection = Field(default_factory=AuthSection, description="who may call the API")
    limits: LimitsSection = Field(default_factory=LimitsSection, description="input bounds")
    logging: LogSection = Field(default_factory=LogSection, description="access log")


def load_api_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiConfig:
    """File -> environment -> flags, validated (raises ConfigError with every problem named)."""
    return load_config(ApiConfig, path, overrides, environ)


__all__ = [
    "ApiConfig",
    "AuthSection",
    "LimitsSection",
    "LogSection",
    "ServerSection",
    "load_api_config",
]
