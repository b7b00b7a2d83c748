"""uvicorn's httptools protocol with a header deadline.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends its
request line and headers a byte at a time (slowloris) is never cut off. Here every request must
deliver its headers within ``header_timeout`` seconds of the connection opening or of the
previous response ending; otherwise the connection is closed. Bodies have their own deadline,
enforced by the app (``body.read_body``: 408).

At shutdown an idle TLS connection is dropped, not closed politely: a TLS close waits for the
client's close_notify, which a client holding a kept-alive connection in its pool never sends
until it reads again, so each such client held the stop up to asyncio's 30 s TLS shutdown
timeout (and under systemd's TimeoutStopSec=20, ended it in a SIGKILL)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """The deadline comes from ``config.header_timeout`` (set on uvicorn's Config by
    ``server.uvicorn_config``; the Config travels to every worker process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout: float = getattr(self.config, "header_timeout", DEFAULT_HEADER_TIMEOUT)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request whose headers already arrived has just started: no deadline then.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self._arm_header_deadline()

    def shutdown(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("ssl_object") is not None:
            self.transport.abort()  # nothing is in flight; a plain close would wait for the client
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
