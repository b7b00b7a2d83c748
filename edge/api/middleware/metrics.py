"""Requests by endpoint, method and status, and their duration (``edge.api.metrics``), refusals
included."""

from __future__ import annotations

import time
from typing import Any

from ecolens.edge.api import metrics
from ecolens.edge.api.context import RequestInfo
from ecolens.edge.api.middleware.answered import WhenAnswered
from starlette.types import ASGIApp, Scope


def endpoint(scope: Scope, routes: list[Any]) -> str:
    """The route's template (``/v1/models/{name}:predict``), also for requests refused before
    routing; "unmatched" for unknown paths."""
    route = scope.get("route")
    if route is None:
        from starlette.routing import Match

        route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware(WhenAnswered):
    def __init__(self, app: ASGIApp, routes: list[Any]) -> None:
        super().__init__(app)
        self.routes = routes

    def record(self, scope: Scope, info: RequestInfo) -> None:
        seconds = time.perf_counter() - info.started
        metrics.record_request(endpoint(scope, self.routes), scope["method"], info.status, seconds)
