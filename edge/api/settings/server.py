"""[server]: where and how gunicorn listens."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ecolens.edge.config import Section
from pydantic import Field, model_validator


def is_loopback_host(host: str) -> bool:
    """True only for addresses no other machine can reach (a host name counts as reachable:
    it may resolve to a LAN address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSection(Section):
    """The listening socket, the worker layout and TLS."""

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address to bind; localhost by default, a LAN address needs API keys",
    )
    port: int = Field(8080, ge=1, le=65535, description="TCP port")
    workers: int = Field(
        2, ge=1, le=64, description="gunicorn worker processes, each with its own interpreter"
    )
    threads: int = Field(4, ge=1, le=256, description="request threads per worker (decode in parallel)")
    timeout: int = Field(30, ge=1, le=3600, description="seconds before a stuck worker is restarted")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    insecure: bool = Field(
        False,
        description="allow serving on a non-loopback address without API keys (not recommended)",
    )
    wait_for_model: bool = Field(
        False,
        description="start even when the model file is missing; answer 503 until it appears",
    )
    model_poll_seconds: float = Field(
        2.0, gt=0, le=3600, description="how often a waiting worker looks for the model file"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"
