"""Which requests need a key or count against the rate limit, and the refusals decided from the
request line and headers alone (before any body is read). Plain functions: the ASGI middlewares
call them one each, and :func:`admit` calls them all, in the same order, for the Flask adapter.
The client allow-list is ``auth.ClientFilter``, the rate limit ``ratelimit.RateLimit``."""

from __future__ import annotations

from ecolens.core.http.keys import KeyStore, presented_key
from ecolens.edge.api.context import RequestInfo
from ecolens.edge.api.errors import PayloadTooLarge
from ecolens.edge.api.settings import ApiConfig
from ecolens.edge.api.state import ApiState

# Endpoints that need a key when keys are configured (TF Serving's routes are under /v1/models/).
PROTECTED = frozenset({"/predict", "/v1/model", "/metrics"})
TF_SERVING_PREFIX = "/v1/models/"


def is_predict(method: str, path: str) -> bool:
    return method == "POST" and (
        path == "/predict" or (path.startswith(TF_SERVING_PREFIX) and path.endswith(":predict"))
    )


def is_protected(path: str, config: ApiConfig) -> bool:
    if path == "/metrics":
        return not config.auth.public_metrics
    return path in PROTECTED or path.startswith(TF_SERVING_PREFIX)


def is_tf_serving(path: str) -> bool:
    """TF Serving's routes, whose errors have TF Serving's shape."""
    return path.startswith(TF_SERVING_PREFIX)


def key_client(keys: KeyStore, authorization: str | None, api_key: str | None) -> str:
    """The presented key's client id (``Authorization: Bearer`` or ``X-API-Key``); raises
    Unauthorized."""
    return keys.check(presented_key(authorization, api_key))


def check_announced_size(length: bytes | str | None, limit: int) -> None:
    """Refuse a body whose Content-Length is over ``limit`` before reading it (a chunked body
    announces none: the body reader counts it instead)."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(
            f"body of {int(length)} bytes is over the limit of {limit} (limits.max_body_bytes)",
            headers={"Connection": "close"},
        )


def admit(state: ApiState, info: RequestInfo, method: str, path: str) -> None:
    """Every refusal made before routing, in the order of ``app.middleware_stack`` (client
    allow-list, API key, rate limit, announced size), each only when configured; a valid key's id
    becomes ``info.client``. Raises the refusal's ApiError."""
    if state.clients.enabled:
        state.clients.check(info.remote)
    if state.keys.enabled and is_protected(path, state.config):
        info.client = key_client(state.keys, info.header(b"authorization"), info.header(b"x-api-key"))
    if is_predict(method, path):
        if state.rate.enabled:
            state.rate.check(info.client)
        check_announced_size(info.headers.get(b"content-length"), state.config.limits.max_body_bytes)
