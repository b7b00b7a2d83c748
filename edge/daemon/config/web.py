"""[web]: the bin page (live frame, detection region editor, last results, stats) and the
daemon's Prometheus /metrics."""

from __future__ import annotations

from ecolens.core.http.hosts import PageListenSection
from ecolens.core.http.keys import KeysSection
from pydantic import Field


class WebSection(PageListenSection):
    """Off by default; on localhost unless told otherwise, and a LAN address needs keys (the
    API's kind of keys: ``[web.auth] key_hashes``). host, port, tls_cert, tls_key, insecure
    and allowed_hosts are the shared listening settings."""

    enabled: bool = Field(False, description="serve the bin page and /metrics while running")
    port: int = Field(8091, ge=0, le=65535, description="listen port (0 = any free port)")
    frame_interval_s: float = Field(
        1.0, ge=0.2, le=60, description="how often an open bin page fetches a new frame"
    )
    auth: KeysSection = Field(default_factory=KeysSection, description="who may open the page")
