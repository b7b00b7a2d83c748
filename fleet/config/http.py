"""[http]: the JSON endpoints and dashboard served by `ecolens aggregate`."""

from __future__ import annotations

from ecolens.core.http.hosts import PageListenSection
from pydantic import Field


class HttpSection(PageListenSection):
    """Read-only HTTP API and dashboard; keys for it live in [auth]."""

    enabled: bool = Field(True, description="serve the API and dashboard while aggregating")
    port: int = Field(8090, ge=0, le=65535, description="listen port (0 = any free port)")
