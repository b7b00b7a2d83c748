"""One JSON access-log line per request (``edge.api.access_log``), refusals included. Composed
only when ``[logging] access_log`` is on."""

from __future__ import annotations

from ecolens.edge.api.access_log import AccessLog
from ecolens.edge.api.context import RequestInfo
from ecolens.edge.api.middleware.answered import WhenAnswered
from starlette.types import ASGIApp, Scope


class AccessLogMiddleware(WhenAnswered):
    def __init__(self, app: ASGIApp, access_log: AccessLog) -> None:
        super().__init__(app)
        self.access_log = access_log

    def record(self, scope: Scope, info: RequestInfo) -> None:
        self.access_log.request(info, scope["method"], scope["path"])
