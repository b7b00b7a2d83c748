"""The ASGI app factory: wiring only. Each job (auth, parsing, errors, metrics, logs, rate
limits, the inference pool) lives in its own module; the model work is the shared Classifier's.

Every request passes the :class:`Gate` (client allow-list, API key, rate limit, body size
announced in Content-Length, request id, security headers, metrics, access log) before Starlette
routes it, so refusals cost no routing, no body read and no model work."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecolens.core.classifier import Classifier
from ecolens.core.http.keys import KeyStore, presented_key
from ecolens.edge.api import metrics
from ecolens.edge.api.access_log import AccessLog
from ecolens.edge.api.auth import ClientFilter
from ecolens.edge.api.body import ClientGone
from ecolens.edge.api.errors import ApiError, InternalError, PayloadTooLarge, error_json, from_http_exception
from ecolens.edge.api.inference import InferencePool
from ecolens.edge.api.model_holder import ModelHolder
from ecolens.edge.api.ratelimit import RateLimit
from ecolens.edge.api.settings import ApiConfig

log = logging.getLogger("ecolens.api")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Endpoints that need a key when keys are configured (TF Serving's routes are under /v1/models/).
PROTECTED = frozenset({"/predict", "/v1/model", "/metrics"})
TF_SERVING_PREFIX = "/v1/models/"
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff")]


@dataclass
class ApiState:
    """What every request of this worker shares."""

    config: ApiConfig
    keys: KeyStore
    clients: ClientFilter
    rate: RateLimit
    access_log: AccessLog
    holder: ModelHolder
    pool: InferencePool


@dataclass
class RequestInfo:
    """Per-request facts the endpoints add to and the gate logs (``scope["ecolens"]``)."""

    request_id: str
    client: str
    labels: list[str] = field(default_factory=list)


def is_predict(method: str, path: str) -> bool:
    return method == "POST" and (
        path == "/predict" or (path.startswith(TF_SERVING_PREFIX) and path.endswith(":predict"))
    )


def is_protected(path: str, config: ApiConfig) -> bool:
    if path == "/metrics":
        return not config.auth.public_metrics
    return path in PROTECTED or path.startswith(TF_SERVING_PREFIX)


class Gate:
    """Pure ASGI middleware (no per-request objects beyond a closure)."""

    def __init__(self, app: Any, state: ApiState, routes: list[Any]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])  # lower-case names; a repeated header keeps its last value
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex
        remote = scope["client"][0] if scope.get("client") else None
        info = RequestInfo(request_id, remote or "unknown")
        scope["ecolens"] = info
        response_headers = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        status = 500
        error_code: str | None = None
        started_response = recorded = False

        def record() -> None:
            """Metrics and the access log line, once, before the last byte of the answer leaves
            (a client that reads the log right after its answer finds its line)."""
            nonlocal recorded
            if recorded:
                return
            recorded = True
            seconds = time.perf_counter() - started
            metrics.record_request(self.endpoint(scope), scope["method"], status, seconds)
            labels = info.labels
            length = headers.get(b"content-length")
            self.state.access_log.write(
                request_id=request_id,
                remote=remote,
                client=info.client,
                method=scope["method"],
                path=scope["path"],
                status=status,
                latency_ms=round(seconds * 1000.0, 3),
                bytes_in=int(length) if length and length.isdigit() else None,
                label=labels[0] if len(labels) == 1 else None,
                labels=labels if len(labels) > 1 else None,
                error=error_code,
            )

        async def send_with_headers(message: dict) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                extra = list(response_headers)
                if not any(name == b"cache-control" for name, _ in message.get("headers", ())):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", ()), *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        try:
            self.admit(scope, headers, info)
            await self.app(scope, receive, send_with_headers)
        except ClientGone:
            status, error_code = 499, "client_closed_request"  # nobody is left to answer
        except Exception as exc:  # every failure leaves as JSON, never a traceback page
            if not isinstance(exc, ApiError):
                exc = from_http_exception(exc) if hasattr(exc, "status_code") else unexpected(exc, request_id)
            error_code = exc.code
            if not started_response:
                tf_serving = scope["path"].startswith(TF_SERVING_PREFIX)
                await send_error(send_with_headers, exc, request_id, tf_serving)
        finally:
            record()

    def endpoint(self, scope: dict) -> str:
        """The route's template for metrics (``/v1/models/{name}:predict``), also for requests
        refused before routing; "unmatched" for unknown paths."""
        route = scope.get("route")
        if route is None:
            from starlette.routing import Match

            route = next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        return getattr(route, "path", None) or "unmatched"

    def admit(self, scope: dict, headers: dict[bytes, bytes], info: RequestInfo) -> None:
        """Allow-list, key, rate limit and announced size: refusals before any body is read."""
        state = self.state
        state.clients.check(scope["client"][0] if scope.get("client") else None)
        path = scope["path"]
        if state.keys.enabled and is_protected(path, state.config):
            authorization = headers.get(b"authorization")
            api_key = headers.get(b"x-api-key")
            info.client = state.keys.check(
                presented_key(
                    authorization.decode("latin-1") if authorization is not None else None,
                    api_key.decode("latin-1") if api_key is not None else None,
                )
            )
        if is_predict(scope["method"], path):
            state.rate.check(info.client)
            length = headers.get(b"content-length")
            limit = state.config.limits.max_body_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                raise PayloadTooLarge(
                    f"body of {int(length)} bytes is over the limit of {limit} (limits.max_body_bytes)",
                    headers={"Connection": "close"},
                )


def unexpected(exc: Exception, request_id: str) -> ApiError:
    log.error("unexpected error (request %s)", request_id, exc_info=exc)
    return InternalError("internal error; see the server log")


async def send_error(send: Any, exc: ApiError, request_id: str, tf_serving: bool) -> None:
    body = error_json(exc.code, exc.message, request_id, tf_serving)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def classifier_loader(config: ApiConfig):
    """How this worker builds its Classifier (one interpreter per worker process)."""

    def load(path: Path) -> Classifier:
        return Classifier.from_settings(config.model, path=path, max_pixels=config.limits.max_pixels)

    return load


def create_app(config: ApiConfig, keys: KeyStore | None = None) -> Any:
    """Build the app; load the model now (or in the background with wait_for_model: /readyz
    says when), so a worker accepts connections only once it can answer."""
    from ecolens.edge.api.routes import routes
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException

    if keys is None:
        keys = KeyStore.from_settings(config.auth)
    config.auth.keys = []  # only hashes are kept
    state = ApiState(
        config=config,
        keys=keys,
        clients=ClientFilter(config.auth.allow_cidrs),
        rate=RateLimit(config.limits.rate),
        access_log=AccessLog(config.logging.access_log),
        holder=ModelHolder(
            config.model.resolved_path(),
            classifier_loader(config),
            wait=config.server.wait_for_model,
            poll_seconds=config.server.model_poll_seconds,
            on_loaded=lambda c: metrics.record_model(c.model_info),
        ).start(),
        pool=InferencePool(config.server.threads),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        state.holder.stop()
        state.pool.close()
        metrics.worker_exiting()

    async def raise_routing_error(_request: Any, exc: Exception) -> None:
        raise from_http_exception(exc)

    app = Starlette(
        routes=routes(), lifespan=lifespan, exception_handlers={HTTPException: raise_routing_error}
    )
    app.state.ecolens = state
    app.add_middleware(Gate, state=state, routes=app.routes)
    return app


def app_from_environment() -> Any:
    """The factory each uvicorn worker process calls: the validated configuration travels in
    the environment (API keys as hashes only)."""
    from ecolens.edge.api.server import WORKER_CONFIG_ENV

    config = ApiConfig.model_validate(json.loads(os.environ[WORKER_CONFIG_ENV]))
    return create_app(config)
