"""[http]: the JSON endpoints and dashboard served by `ecolens aggregate`."""

from __future__ import annotations

from pathlib import Path

from ecolens.edge.config import Section
from pydantic import Field, model_validator


class HttpSection(Section):
    """Read-only HTTP API and dashboard; keys for it live in [auth]."""

    enabled: bool = Field(True, description="serve the API and dashboard while aggregating")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="listen address; a non-loopback address (e.g. 0.0.0.0) needs [auth] keys",
    )
    port: int = Field(8090, ge=0, le=65535, description="listen port (0 = any free port)")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    insecure: bool = Field(
        False, description="allow serving on a non-loopback address without keys (not recommended)"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @property
    def tls(self) -> tuple[Path, Path] | None:
        """(certificate, key) when HTTPS is configured."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return self.tls_cert, self.tls_key
