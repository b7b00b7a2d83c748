"""One JSON access-log line per request (``edge.api.access_log``), refusals included. Composed
only when ``[logging] access_log`` is on."""

from __future__ import annotations

import time

from ecolens.edge.api.access_log import AccessLog
from ecolens.edge.api.context import RequestInfo
from ecolens.edge.api.middleware.answered import WhenAnswered
from starlette.types import ASGIApp, Scope


class AccessLogMiddleware(WhenAnswered):
    def __init__(self, app: ASGIApp, access_log: AccessLog) -> None:
        super().__init__(app)
        self.access_log = access_log

    def record(self, scope: Scope, info: RequestInfo) -> None:
        length = info.headers.get(b"content-length")
        labels = info.labels
        self.access_log.write(
            request_id=info.request_id,
            remote=info.remote,
            client=info.client,
            method=scope["method"],
            path=scope["path"],
            status=info.status,
            latency_ms=round((time.perf_counter() - info.started) * 1000.0, 3),
            bytes_in=int(length) if length and length.isdigit() else None,
            label=labels[0] if len(labels) == 1 else None,
            labels=labels if len(labels) > 1 else None,
            error=info.error,
        )
