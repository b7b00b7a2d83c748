"""The ASGI app factory: wiring only. Each job (auth, parsing, errors, metrics, logs, rate
limits, the inference pool) lives in its own module; the model work is the shared Classifier's.

Every request passes the middlewares of ``middleware/``, one concern each, before Starlette
routes it, so refusals cost no routing, no body read and no model work (see
:func:`middleware_stack` for their order)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from ecolens.core.http.keys import KeyStore
from ecolens.edge.api.errors import from_http_exception
from ecolens.edge.api.settings import ApiConfig
from ecolens.edge.api.state import ApiState, build_state, close_state


def middleware_stack(state: ApiState, routes: list[Any]) -> list[Any]:
    """Outermost first. The headers, the request id, the access log and the metrics wrap the
    error mapping, so every answer (a refusal, an error) gets them; the refusals come last,
    before routing, so a refused request costs no routing, body read or model work. A check
    with nothing to check (no allow-list, no keys, no rate, no access log) is left out rather
    than asked on every request."""
    from ecolens.edge.api.middleware.access_log import AccessLogMiddleware
    from ecolens.edge.api.middleware.allow_list import AllowListMiddleware
    from ecolens.edge.api.middleware.api_key import ApiKeyMiddleware
    from ecolens.edge.api.middleware.body_size import BodySizeMiddleware
    from ecolens.edge.api.middleware.errors import ErrorMiddleware
    from ecolens.edge.api.middleware.metrics import MetricsMiddleware
    from ecolens.edge.api.middleware.rate_limit import RateLimitMiddleware
    from ecolens.edge.api.middleware.request_id import RequestIdMiddleware
    from ecolens.edge.api.middleware.security_headers import SecurityHeadersMiddleware
    from starlette.middleware import Middleware

    stack = [Middleware(SecurityHeadersMiddleware), Middleware(RequestIdMiddleware)]
    if state.access_log.enabled:
        stack.append(Middleware(AccessLogMiddleware, access_log=state.access_log))
    stack += [Middleware(MetricsMiddleware, routes=routes), Middleware(ErrorMiddleware)]
    if state.clients.enabled:
        stack.append(Middleware(AllowListMiddleware, clients=state.clients))
    if state.keys.enabled:
        stack.append(Middleware(ApiKeyMiddleware, keys=state.keys, config=state.config))
    if state.rate.enabled:
        stack.append(Middleware(RateLimitMiddleware, rate=state.rate))
    stack.append(Middleware(BodySizeMiddleware, limit=state.config.limits.max_body_bytes))
    return stack


def create_app(config: ApiConfig, keys: KeyStore | None = None) -> Any:
    """Build the app; load the model now (or in the background with wait_for_model: /readyz
    says when), so a worker accepts connections only once it can answer."""
    from ecolens.edge.api.routes import routes
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException

    state = build_state(config, keys)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        close_state(state)

    async def raise_routing_error(_request: Any, exc: Exception) -> None:
        raise from_http_exception(exc)

    endpoints = routes()
    app = Starlette(
        routes=endpoints,
        middleware=middleware_stack(state, endpoints),
        lifespan=lifespan,
        exception_handlers={HTTPException: raise_routing_error},
    )
    app.state.ecolens = state
    return app


def app_from_environment() -> Any:
    """The factory each uvicorn worker process calls: the validated configuration travels in
    the environment (API keys as hashes only)."""
    from ecolens.edge.api.server import WORKER_CONFIG_ENV

    config = ApiConfig.model_validate(json.loads(os.environ[WORKER_CONFIG_ENV]))
    return create_app(config)
