"""Structured access log: one JSON object per request on stderr (journald keeps it), in the one
JSON log format of core.logs.

Only metadata is logged: never the body, never image bytes, never the API key (its short
hash id at most). The line is formatted by core.logs' JsonFormatter but written straight to the
stderr file descriptor, one ``write`` per line, without the logging module's logger and handler
(their lookups, locks and stream flush cost more than the rest of a small request's
bookkeeping); a single ``write`` of a line keeps lines from two worker processes apart."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any

from ecolens.core.logs import JsonFormatter
from ecolens.edge.api.context import RequestInfo

ACCESS_LOGGER = "ecolens.api.access"


class AccessLog:
    """``write(**fields)`` appends one JSON line; a disabled log costs one attribute check."""

    def __init__(self, enabled: bool, fd: int | None = None) -> None:
        self.enabled = enabled
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._formatter = JsonFormatter()

    def write(self, **fields: Any) -> None:
        if not self.enabled:
            return
        record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "access", None, None)
        record.access = {k: v for k, v in fields.items() if v is not None}
        with contextlib.suppress(OSError):  # a closed or full stderr must not fail the request
            os.write(self._fd, (self._formatter.format(record) + "\n").encode())

    def request(self, info: RequestInfo, method: str, path: str) -> None:
        """The line of one answered (or abandoned) request, from its facts."""
        length = info.headers.get(b"content-length")
        labels = info.labels
        self.write(
            request_id=info.request_id,
            remote=info.remote,
            client=info.client,
            method=method,
            path=path,
            status=info.status,
            latency_ms=round((time.perf_counter() - info.started) * 1000.0, 3),
            bytes_in=int(length) if length and length.isdigit() else None,
            label=labels[0] if len(labels) == 1 else None,
            labels=labels if len(labels) > 1 else None,
            error=info.error,
        )
