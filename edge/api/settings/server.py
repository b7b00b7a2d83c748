"""[server]: where and how gunicorn listens."""

from __future__ import annotations

from ecolens.core.http.exposure import ListenSection
from pydantic import Field


class ServerSection(ListenSection):
    """The listening socket, the worker layout and TLS."""

    port: int = Field(8080, ge=1, le=65535, description="TCP port")
    workers: int = Field(
        2, ge=1, le=64, description="gunicorn worker processes, each with its own interpreter"
    )
    threads: int = Field(4, ge=1, le=256, description="request threads per worker (decode in parallel)")
    timeout: int = Field(30, ge=1, le=3600, description="seconds before a stuck worker is restarted")
    wait_for_model: bool = Field(
        False,
        description="start even when the model file is missing; answer 503 until it appears",
    )
    model_poll_seconds: float = Field(
        2.0, gt=0, le=3600, description="how often a waiting worker looks for the model file"
    )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"
