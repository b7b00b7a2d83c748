"""[http]: the JSON endpoints and dashboard served by `ecolens aggregate`."""

from __future__ import annotations

from ecolens.edge.config import Section
from pydantic import Field


class HttpSection(Section):
    """Read-only HTTP API and dashboard."""

    enabled: bool = Field(True, description="serve the API and dashboard while aggregating")
    host: str = Field("127.0.0.1", description="listen address; 0.0.0.0 exposes it to the network")
    port: int = Field(8090, ge=0, le=65535, description="listen port (0 = any free port)")
