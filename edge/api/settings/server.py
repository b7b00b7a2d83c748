"""[server]: where and how the server (uvicorn, or Flask under gunicorn) listens."""

from __future__ import annotations

from typing import Literal

from ecolens.core.http.exposure import ListenSection
from pydantic import Field


class ServerSection(ListenSection):
    """The listening socket, the worker layout, timeouts and TLS."""

    port: int = Field(8080, ge=1, le=65535, description="TCP port")
    kind: Literal["uvicorn", "flask"] = Field(
        "uvicorn",
        description="uvicorn (the Starlette app, default) or flask (the Flask Blueprint under gunicorn, "
        "needs pip install 'ecolens[flask]')",
    )
    workers: int = Field(
        2, ge=1, le=64, description="worker processes, each with its own interpreter and event loop"
    )
    threads: int = Field(
        1,
        ge=1,
        le=64,
        description="images a worker decodes and classifies at once (its inference pool); each "
        "holds at most one decoded image, so this bounds memory",
    )
    flask_threads: int = Field(
        8,
        ge=1,
        le=256,
        description="kind = flask: requests a gunicorn worker serves at once (its gthread threads); a "
        "client sending slowly holds one until it is done",
    )
    timeout: int = Field(
        30, ge=1, le=3600, description="seconds a stopping worker may take to finish its requests"
    )
    header_timeout: float = Field(
        10.0, gt=0, le=3600, description="seconds a client has to send its request line and headers"
    )
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="seconds a client has to send its whole body (else 408)"
    )
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
